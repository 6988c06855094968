"""PA-TNC attribute header, attribute base class, registry and ``UnknownAttribute``.

RFC 5792, 4.2: every attribute is a 12-octet header (flags with NOSKIP 0x80, 24-bit vendor
ID, 32-bit type, 32-bit length including the header) followed by the value. Each known
(vendor, type) is one frozen dataclass with ``parse_value`` / ``serialize_value``,
registered in :data:`ATTRIBUTE_REGISTRY`; anything else becomes :class:`UnknownAttribute`,
kept intact so that it re-encodes identically and a NOSKIP one can be reported.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from nea.pa._wire import Reader, u8, u24, u32
from nea.pa.errors import InvalidParameter, LocalPaTncError

__all__ = [
    "ATTRIBUTE_HEADER_LEN",
    "ATTRIBUTE_REGISTRY",
    "FLAG_NOSKIP",
    "RESERVED_TYPE",
    "Attribute",
    "AttributeHeader",
    "UnknownAttribute",
    "Vendor",
    "attribute_name",
    "jsonable",
    "parse_attribute",
    "register",
]

ATTRIBUTE_HEADER_LEN = 12
#: RFC 5792, 4.2: the only defined flag; the rest are reserved.
FLAG_NOSKIP = 0x80
#: RFC 5792, 4.2 / 7.2: attribute type 0xffffffff and vendor ID 0xffffff are reserved.
RESERVED_TYPE = 0xFFFFFFFF


class Vendor(enum.IntEnum):
    """SMI Private Enterprise Numbers of the attribute namespaces we know (RFC 5792, 4.2)."""

    IETF = 0
    PWG = 0x000A8B
    TCG = 0x005597
    ITA = 0x00902A
    RESERVED = 0xFFFFFF


def _vendor_name(vendor: int) -> str:
    try:
        return Vendor(vendor).name
    except ValueError:
        return f"vendor {vendor:#08x}"


@dataclass(frozen=True)
class AttributeHeader:
    """The 12-octet PA-TNC attribute header."""

    flags: int
    vendor_id: int
    attr_type: int
    length: int

    @property
    def noskip(self) -> bool:
        return bool(self.flags & FLAG_NOSKIP)

    def serialize(self) -> bytes:
        return (
            u8(self.flags, "flags")
            + u24(self.vendor_id, "vendor ID")
            + u32(self.attr_type, "attribute type")
            + u32(self.length, "attribute length")
        )

    @classmethod
    def parse(cls, reader: Reader) -> AttributeHeader:
        start = reader.offset
        reader.need(ATTRIBUTE_HEADER_LEN, "PA-TNC attribute header")
        flags = reader.u8("flags")
        vendor = reader.u24("vendor ID")
        attr_type = reader.u32("attribute type")
        length = reader.u32("attribute length")
        if length < ATTRIBUTE_HEADER_LEN:
            raise InvalidParameter(
                f"attribute length {length} is shorter than the header", offset=start + 8
            )
        return cls(flags, vendor, attr_type, length)


@dataclass(frozen=True)
class Attribute:
    """Base of every PA-TNC attribute. Subclasses set VENDOR, TYPE and NAME."""

    VENDOR: ClassVar[int] = -1
    TYPE: ClassVar[int] = -1
    NAME: ClassVar[str] = "attribute"

    #: The attribute flags octet (NOSKIP 0x80; other bits reserved but kept as received).
    flags: int = field(default=0, kw_only=True)

    @property
    def vendor_id(self) -> int:
        return self.VENDOR

    @property
    def attr_type(self) -> int:
        return self.TYPE

    @property
    def key(self) -> tuple[int, int]:
        return (self.vendor_id, self.attr_type)

    @property
    def noskip(self) -> bool:
        return bool(self.flags & FLAG_NOSKIP)

    @property
    def name(self) -> str:
        return self.NAME

    # -- codec ------------------------------------------------------------------------
    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        """Parse the whole value from ``reader`` (which holds exactly the value)."""
        raise NotImplementedError

    def serialize_value(self) -> bytes:
        raise NotImplementedError

    def serialize(self) -> bytes:
        value = self.serialize_value()
        header = AttributeHeader(
            self.flags, self.vendor_id, self.attr_type, ATTRIBUTE_HEADER_LEN + len(value)
        )
        return header.serialize() + value

    @classmethod
    def from_value(cls, value: bytes, *, flags: int = 0, base: int = 0) -> Self:
        """Parse a value on its own (``base`` = offset of value[0] used in errors)."""
        reader = Reader(value, base)
        attr = cls.parse_value(reader, flags=flags)
        reader.expect_end(f"{cls.NAME} value")
        return attr

    # -- presentation -----------------------------------------------------------------
    def details(self) -> dict[str, Any]:
        """The value fields as JSON-able data (bytes as hex)."""
        return {
            f.name: jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "flags" and not (f.name == "reserved" and not getattr(self, f.name))
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor_id": int(self.vendor_id),
            "type": int(self.attr_type),
            "name": self.name,
            "flags": self.flags,
            "noskip": self.noskip,
            "value": self.details(),
        }

    def summary(self) -> str:
        """One line of the value for humans (``describe`` prefixes name and type)."""
        return ", ".join(f"{k}={_short(v)}" for k, v in self.details().items())

    def describe(self) -> str:
        parts = self.summary()
        noskip = "[NOSKIP] " if self.noskip else ""
        return (
            f"{noskip}{self.name} ({self.vendor_id:#08x}/{self.attr_type}): {parts}"
            if parts
            else f"{noskip}{self.name} ({self.vendor_id:#08x}/{self.attr_type})"
        )


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def jsonable(value: Any) -> Any:
    """Turn attribute field values into JSON-able data."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return int(value.value) if isinstance(value.value, int) else str(value.value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


@dataclass(frozen=True)
class UnknownAttribute(Attribute):
    """An attribute of a (vendor, type) we do not decode, kept byte for byte."""

    vendor: int
    type_code: int
    value: bytes = b""

    @property
    def vendor_id(self) -> int:
        return self.vendor

    @property
    def attr_type(self) -> int:
        return self.type_code

    @property
    def name(self) -> str:
        return f"{_vendor_name(self.vendor)}/unknown"

    def serialize_value(self) -> bytes:
        return self.value

    def details(self) -> dict[str, Any]:
        return {"value": self.value.hex()}


#: {(vendor ID, attribute type): attribute class}, filled by :func:`register`.
ATTRIBUTE_REGISTRY: dict[tuple[int, int], type[Attribute]] = {}

_A = TypeVar("_A", bound=type[Attribute])


def register(cls: _A) -> _A:
    """Class decorator: add an attribute class to :data:`ATTRIBUTE_REGISTRY`."""
    key = (cls.VENDOR, cls.TYPE)
    if key in ATTRIBUTE_REGISTRY:
        raise LocalPaTncError(f"attribute {key} registered twice")
    ATTRIBUTE_REGISTRY[key] = cls
    return cls


def attribute_name(vendor_id: int, attr_type: int) -> str:
    cls = ATTRIBUTE_REGISTRY.get((vendor_id, attr_type))
    if cls is not None:
        return cls.NAME
    return f"{_vendor_name(vendor_id)}/{attr_type:#x}"


def parse_attribute(
    reader: Reader,
    registry: Mapping[tuple[int, int], type[Attribute]] | None = None,
    *,
    on_value_error: Callable[[AttributeHeader, bytes, InvalidParameter], Attribute | None]
    | None = None,
) -> Attribute:
    """Parse one attribute (header and value) from ``reader``.

    Offsets in errors follow strongSwan: a truncated header is reported at the attribute,
    a bad length at the length field (+8), a reserved vendor ID at +1, a reserved type at
    +4, a bad value at the offending field inside the value.
    """
    reg = ATTRIBUTE_REGISTRY if registry is None else registry
    start = reader.offset
    header = AttributeHeader.parse(reader)
    value_len = header.length - ATTRIBUTE_HEADER_LEN
    if value_len > reader.remaining:
        raise InvalidParameter(
            f"attribute length {header.length} exceeds the {reader.remaining + 12} octets left",
            offset=start + 8,
        )
    value_base = reader.offset
    value = reader.take(value_len, "attribute value")
    if header.vendor_id == Vendor.RESERVED:
        raise InvalidParameter("reserved attribute vendor ID 0xffffff", offset=start + 1)
    if header.attr_type == RESERVED_TYPE:
        raise InvalidParameter("reserved attribute type 0xffffffff", offset=start + 4)
    cls = reg.get((header.vendor_id, header.attr_type))
    if cls is None:
        return UnknownAttribute(header.vendor_id, header.attr_type, value, flags=header.flags)
    try:
        return cls.from_value(value, flags=header.flags, base=value_base)
    except InvalidParameter as exc:
        if on_value_error is not None:
            replacement = on_value_error(header, value, exc)
            if replacement is not None:
                return replacement
        raise
