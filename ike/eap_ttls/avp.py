"""Diameter-style AVPs carried inside the EAP-TTLS tunnel (RFC 5281 section 10).

Layout (RFC 5281 10.1)::

    AVP Code (4) | V M r r r r r r (1) | AVP Length (3) | [Vendor-ID (4), when V] | Data
    padded with zeros to a multiple of four bytes (padding not counted in AVP Length)

Parsing is exact: an AVP Length below its header size, data running past the buffer, or
non-zero padding bytes are :class:`AvpError`.  The padding of the very last AVP may be left
out by the sender (some peers do); anything else must consume the buffer exactly.
Unknown AVPs are kept as :class:`Avp` objects; the method decides (an unknown AVP with the M
bit set fails the authentication, RFC 5281 10.1).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "FLAG_MANDATORY",
    "FLAG_VENDOR",
    "VENDOR_MICROSOFT",
    "Avp",
    "AvpCode",
    "AvpError",
    "MsAvpCode",
    "TtlsError",
    "encode_avps",
    "parse_avps",
]

FLAG_VENDOR = 0x80
FLAG_MANDATORY = 0x40

VENDOR_MICROSOFT = 311
"""IANA enterprise number of Microsoft (RFC 2548 vendor-specific attributes)."""


class AvpCode(enum.IntEnum):
    """AVP codes used by EAP-TTLS (RFC 5281 section 11; RADIUS attribute numbers)."""

    USER_NAME = 1  # RFC 2865 5.1
    USER_PASSWORD = 2  # RFC 2865 5.2
    CHAP_PASSWORD = 3  # RFC 2865 5.3
    REPLY_MESSAGE = 18  # RFC 2865 5.18
    CHAP_CHALLENGE = 60  # RFC 2865 5.40
    EAP_MESSAGE = 79  # RFC 3579 3.1


class MsAvpCode(enum.IntEnum):
    """Microsoft vendor-specific attributes (vendor 311, RFC 2548 section 2)."""

    MS_CHAP_RESPONSE = 1
    MS_CHAP_ERROR = 2
    MS_CHAP_CHALLENGE = 11
    MS_CHAP2_RESPONSE = 25
    MS_CHAP2_SUCCESS = 26


class TtlsError(Exception):
    """Root of ``ike.eap_ttls`` errors."""


class AvpError(TtlsError):
    """Malformed AVP data from the other side."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


_HEADER = struct.Struct("!IB3s")


@dataclass(frozen=True, slots=True)
class Avp:
    """One AVP.  ``vendor_id`` None means no V bit."""

    code: int
    data: bytes
    vendor_id: int | None = None
    mandatory: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFFFFFFFF:
            raise ValueError("AVP code out of range")
        if self.vendor_id is not None and not 0 <= self.vendor_id <= 0xFFFFFFFF:
            raise ValueError("Vendor-ID out of range")
        if len(self.data) + 12 > 0xFFFFFF:
            raise ValueError("AVP data too long")

    def to_bytes(self) -> bytes:
        flags = FLAG_MANDATORY if self.mandatory else 0
        vendor = b""
        if self.vendor_id is not None:
            flags |= FLAG_VENDOR
            vendor = struct.pack("!I", self.vendor_id)
        length = 8 + len(vendor) + len(self.data)
        pad = b"\x00" * (-length % 4)
        return _HEADER.pack(self.code, flags, length.to_bytes(3, "big")) + vendor + self.data + pad

    def is_(self, code: int, vendor_id: int | None = None) -> bool:
        return self.code == code and self.vendor_id == vendor_id

    def __repr__(self) -> str:  # AVP data may be a password: never show it
        vendor = f", vendor={self.vendor_id}" if self.vendor_id is not None else ""
        return f"Avp(code={self.code}{vendor}, M={self.mandatory}, {len(self.data)} bytes)"


def encode_avps(avps: Iterable[Avp]) -> bytes:
    return b"".join(a.to_bytes() for a in avps)


def parse_avps(data: bytes) -> list[Avp]:
    """Decode a sequence of AVPs, checking every length exactly."""
    out: list[Avp] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise AvpError("truncated AVP header", pos)
        code, flags, raw_len = _HEADER.unpack_from(data, pos)
        length = int.from_bytes(raw_len, "big")
        header = 12 if flags & FLAG_VENDOR else 8
        if length < header:
            raise AvpError(f"AVP Length {length} shorter than its header", pos)
        end = pos + length
        if end > len(data):
            raise AvpError(f"AVP Length {length} runs past the data", pos)
        vendor_id = None
        if flags & FLAG_VENDOR:
            (vendor_id,) = struct.unpack_from("!I", data, pos + 8)
        value = data[pos + header : end]
        padded = end + (-length % 4)
        if padded > len(data):
            if end != len(data):
                raise AvpError("truncated AVP padding", end)
            padded = end  # last AVP without its padding: tolerated
        if any(data[end:padded]):
            raise AvpError("non-zero AVP padding", end)
        out.append(Avp(code, bytes(value), vendor_id, bool(flags & FLAG_MANDATORY)))
        pos = padded
    return out
