"""strongSwan's ITA (PEN 0x00902A) attributes, as exchanged by its Test IMC/IMV and OS IMC.

Layouts (facts from strongSwan's libimcv ``ita/``; this code is our own):
Command (1): the command string ("allow", "isolate", "block", "retry", ...) is the value.
Dummy (2): arbitrary filler octets (strongSwan fills with 0xdd).
Get Settings (3): Settings Count (32), then per name: Name Length (16), Name.
Settings (4): Settings Count (32), then Name Length (16), Name, Value Length (16), Value.
Start Angel (5) / Stop Angel (6): empty value.
Device ID (8): the device identifier string is the value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

from nea.pa._wire import Reader, u32, vec16
from nea.pa.attribute import Attribute, Vendor, register

__all__ = [
    "ItaAttributeType",
    "ItaCommand",
    "ItaDeviceId",
    "ItaDummy",
    "ItaGetSettings",
    "ItaSetting",
    "ItaSettings",
    "ItaStartAngel",
    "ItaStopAngel",
]


class ItaAttributeType(enum.IntEnum):
    """ITA attribute types (strongSwan libimcv ita_attr.h)."""

    COMMAND = 1
    DUMMY = 2
    GET_SETTINGS = 3
    SETTINGS = 4
    START_ANGEL = 5
    STOP_ANGEL = 6
    ECHO = 7
    DEVICE_ID = 8


@register
@dataclass(frozen=True)
class ItaCommand(Attribute):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.COMMAND
    NAME = "ITA Command"

    command: str

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.rest_text("command"), flags=flags)

    def serialize_value(self) -> bytes:
        return self.command.encode("utf-8")


@register
@dataclass(frozen=True)
class ItaDummy(Attribute):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.DUMMY
    NAME = "ITA Dummy"

    data: bytes = b""

    @classmethod
    def of_size(cls, size: int) -> Self:
        """A dummy attribute of ``size`` octets, filled the way strongSwan does (0xdd)."""
        return cls(b"\xdd" * size)

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.rest(), flags=flags)

    def serialize_value(self) -> bytes:
        return self.data

    def details(self) -> dict[str, Any]:
        return {"size": len(self.data)}


@register
@dataclass(frozen=True)
class ItaGetSettings(Attribute):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.GET_SETTINGS
    NAME = "ITA Get Settings"

    names: tuple[str, ...] = ()

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        count = reader.u32("settings count")
        names = []
        for _ in range(count):
            names.append(reader.text16("setting name"))
        reader.expect_end(f"{count} setting names")
        return cls(tuple(names), flags=flags)

    def serialize_value(self) -> bytes:
        return u32(len(self.names), "settings count") + b"".join(
            vec16(n, "setting name") for n in self.names
        )


class ItaSetting(NamedTuple):
    name: str
    value: bytes


@register
@dataclass(frozen=True)
class ItaSettings(Attribute):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.SETTINGS
    NAME = "ITA Settings"

    settings: tuple[ItaSetting, ...] = ()

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        count = reader.u32("settings count")
        out = []
        for _ in range(count):
            name = reader.text16("setting name")
            out.append(ItaSetting(name, reader.vec16("setting value")))
        reader.expect_end(f"{count} settings")
        return cls(tuple(out), flags=flags)

    def serialize_value(self) -> bytes:
        return u32(len(self.settings), "settings count") + b"".join(
            vec16(s.name, "setting name") + vec16(s.value, "setting value")
            for s in self.settings
        )

    def details(self) -> dict[str, Any]:
        return {
            "settings": [
                {"name": s.name, "value": s.value.decode("utf-8", "backslashreplace")}
                for s in self.settings
            ]
        }


@dataclass(frozen=True)
class _Empty(Attribute):
    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(flags=flags)

    def serialize_value(self) -> bytes:
        return b""


@register
@dataclass(frozen=True)
class ItaStartAngel(_Empty):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.START_ANGEL
    NAME = "ITA Start Angel"


@register
@dataclass(frozen=True)
class ItaStopAngel(_Empty):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.STOP_ANGEL
    NAME = "ITA Stop Angel"


@register
@dataclass(frozen=True)
class ItaDeviceId(Attribute):
    VENDOR = Vendor.ITA
    TYPE = ItaAttributeType.DEVICE_ID
    NAME = "ITA Device ID"

    device_id: str

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.rest_text("device ID"), flags=flags)

    def serialize_value(self) -> bytes:
        return self.device_id.encode("utf-8")
