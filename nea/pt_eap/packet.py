"""Wire format of PT-EAP (RFC 7171, EAP type 54) and of TCG EAP-TNC (EAP type 38).

A method sees only the Type-Data of its EAP packets (``ike.eap.method``); both formats start
with one flags octet whose low three bits carry the version:

* PT-EAP (RFC 7171 section 4.1): ``S R R R R | Ver``; S (0x80) marks the server's Start
  message; the rest of the Type-Data is one PB-TNC batch.  PT-EAP has no fragmentation.
* EAP-TNC (TCG IF-T Binding to EAP, the EAP-TLS style framing of RFC 5216 3.1):
  ``L M S R R | Ver``; L (0x80) announces a 4-octet total length, M (0x40) more fragments,
  S (0x20) the Start message.  The data are fragments of one PB-TNC batch.

Reserved flag bits are kept (``reserved``) so odd input re-encodes to the same bytes, and are
ignored otherwise, as the RFC asks.  :func:`parse_eap` reads a whole EAP packet (RFC 3748
section 4) for ``nea-decode``; the methods themselves never see the EAP header.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from nea.pt_eap.errors import InvalidPacket

__all__ = [
    "EAP_HEADER_SIZE",
    "EAP_TNC_VERSION",
    "MAX_TYPE_DATA",
    "PT_EAP_VERSION",
    "EapCode",
    "EapEnvelope",
    "EapTncFlag",
    "EapTncPacket",
    "PostureEapType",
    "PtEapFlag",
    "PtEapPacket",
    "parse_eap",
]

EAP_HEADER_SIZE = 5
"""Code, Identifier, Length (2) and Type (RFC 3748 section 4)."""
MAX_TYPE_DATA = 0xFFFF - EAP_HEADER_SIZE
"""Largest Type-Data an EAP packet can carry (its Length field is 16 bits)."""

PT_EAP_VERSION = 1
"""RFC 7171 section 4.1; IANA "PT-EAP Versions": 1 is the only version defined."""
EAP_TNC_VERSION = 1
"""TCG IF-T Binding to EAP: version 1 (strongSwan's EAP_TNC_SUPPORTED_VERSION)."""

_VERSION_MASK = 0x07


class PostureEapType(enum.IntEnum):
    """EAP method types of the posture transports (IANA "Method Types", RFC 3748 5)."""

    EAP_TNC = 38
    PT_EAP = 54


class EapCode(enum.IntEnum):
    """EAP codes, RFC 3748 section 4."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class PtEapFlag(enum.IntFlag):
    """PT-EAP flags, RFC 7171 section 4.1."""

    START = 0x80


class EapTncFlag(enum.IntFlag):
    """EAP-TNC flags (RFC 5216 3.1 layout, used by TCG IF-T for EAP)."""

    LENGTH = 0x80
    MORE = 0x40
    START = 0x20


_PT_RESERVED = 0x78
_TNC_RESERVED = 0x18


@dataclass(frozen=True, slots=True)
class PtEapPacket:
    """One PT-EAP message (the Type-Data of an EAP Request/Response of type 54)."""

    data: bytes = b""
    """A PB-TNC batch, or empty (the Start message, or nothing to say)."""
    start: bool = False
    version: int = PT_EAP_VERSION
    reserved: int = 0
    """The four reserved flag bits as they appear in the flags octet (mask 0x78)."""

    def __post_init__(self) -> None:
        if not 0 <= self.version <= _VERSION_MASK:
            raise ValueError(f"PT-EAP version {self.version} does not fit 3 bits")
        if self.reserved & ~_PT_RESERVED:
            raise ValueError("reserved bits outside the mask 0x78")

    @property
    def flags(self) -> int:
        return (PtEapFlag.START if self.start else 0) | self.reserved | self.version

    def encode(self) -> bytes:
        if 1 + len(self.data) > MAX_TYPE_DATA:
            raise ValueError(f"{len(self.data)} bytes of PB-TNC batch do not fit an EAP packet")
        return bytes([self.flags]) + self.data

    @classmethod
    def parse(cls, type_data: bytes) -> PtEapPacket:
        if not type_data:
            raise InvalidPacket("PT-EAP Type-Data lacks the flags octet", offset=0)
        flags = type_data[0]
        return cls(
            bytes(type_data[1:]),
            start=bool(flags & PtEapFlag.START),
            version=flags & _VERSION_MASK,
            reserved=flags & _PT_RESERVED,
        )


@dataclass(frozen=True, slots=True)
class EapTncPacket:
    """One EAP-TNC message or fragment (Type-Data of an EAP packet of type 38)."""

    data: bytes = b""
    start: bool = False
    more: bool = False
    total_length: int | None = None
    """The TLS Message Length field, present when the L flag is set."""
    version: int = EAP_TNC_VERSION
    reserved: int = 0
    """The two reserved flag bits (mask 0x18)."""

    def __post_init__(self) -> None:
        if not 0 <= self.version <= _VERSION_MASK:
            raise ValueError(f"EAP-TNC version {self.version} does not fit 3 bits")
        if self.reserved & ~_TNC_RESERVED:
            raise ValueError("reserved bits outside the mask 0x18")
        if self.total_length is not None and not 0 <= self.total_length <= 0xFFFFFFFF:
            raise ValueError("total length does not fit 32 bits")

    @property
    def flags(self) -> int:
        flags = self.reserved | self.version
        if self.total_length is not None:
            flags |= EapTncFlag.LENGTH
        if self.more:
            flags |= EapTncFlag.MORE
        if self.start:
            flags |= EapTncFlag.START
        return flags

    @property
    def is_ack(self) -> bool:
        """An empty packet without flags: the acknowledgement of a fragment."""
        return not (self.data or self.start or self.more or self.total_length is not None)

    def encode(self) -> bytes:
        head = bytes([self.flags])
        if self.total_length is not None:
            head += self.total_length.to_bytes(4, "big")
        if len(head) + len(self.data) > MAX_TYPE_DATA:
            raise ValueError("EAP-TNC fragment does not fit an EAP packet")
        return head + self.data

    @classmethod
    def parse(cls, type_data: bytes) -> EapTncPacket:
        if not type_data:
            raise InvalidPacket("EAP-TNC Type-Data lacks the flags octet", offset=0)
        flags = type_data[0]
        total: int | None = None
        body_at = 1
        if flags & EapTncFlag.LENGTH:
            if len(type_data) < 5:
                raise InvalidPacket("L flag set but the 4-octet length is missing", offset=1)
            total = int.from_bytes(type_data[1:5], "big")
            body_at = 5
            if total < len(type_data) - body_at:
                raise InvalidPacket(
                    f"total length {total} is less than this fragment's "
                    f"{len(type_data) - body_at} bytes",
                    offset=1,
                )
        return cls(
            bytes(type_data[body_at:]),
            start=bool(flags & EapTncFlag.START),
            more=bool(flags & EapTncFlag.MORE),
            total_length=total,
            version=flags & _VERSION_MASK,
            reserved=flags & _TNC_RESERVED,
        )


@dataclass(frozen=True, slots=True)
class EapEnvelope:
    """A whole EAP packet (RFC 3748 section 4), as ``nea-decode`` reads one."""

    code: EapCode
    identifier: int
    eap_type: int | None
    """None for Success/Failure, which carry no Type."""
    type_data: bytes = b""

    def encode(self) -> bytes:
        body = b"" if self.eap_type is None else bytes([self.eap_type]) + self.type_data
        return struct.pack(">BBH", int(self.code), self.identifier, 4 + len(body)) + body


def parse_eap(data: bytes) -> EapEnvelope:
    """Decode one EAP packet with exact length checks; offsets count from its first octet."""
    data = bytes(data)
    if len(data) < 4:
        raise InvalidPacket(f"{len(data)} bytes too few for an EAP header", offset=0)
    code_raw, identifier, length = struct.unpack_from(">BBH", data)
    try:
        code = EapCode(code_raw)
    except ValueError:
        raise InvalidPacket(f"unknown EAP code {code_raw}", offset=0) from None
    if length != len(data):
        raise InvalidPacket(f"EAP length {length} but {len(data)} bytes", offset=2)
    if code in (EapCode.SUCCESS, EapCode.FAILURE):
        if length != 4:
            raise InvalidPacket("EAP Success/Failure must be 4 bytes", offset=2)
        return EapEnvelope(code, identifier, None)
    if length < EAP_HEADER_SIZE:
        raise InvalidPacket("EAP Request/Response without a Type", offset=2)
    return EapEnvelope(code, identifier, data[4], data[5:])
