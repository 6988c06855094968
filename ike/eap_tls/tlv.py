"""The TLV framing that PEAP's EAP-TLV ([MS-PEAP] 2.2.8) and EAP-FAST (RFC 4851 4.2) share:
a 16-bit word with the M (mandatory) bit, one reserved bit and a 14-bit type, a 16-bit
length, then the value.  Each method keeps its own TLV types, constructors and errors on top.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

__all__ = ["FLAG_MANDATORY", "TYPE_MASK", "check_tlv", "iter_tlvs", "pack_tlv"]

FLAG_MANDATORY = 0x8000
TYPE_MASK = 0x3FFF


def check_tlv(tlv_type: int, value: bytes) -> None:
    """Reject a TLV we could not encode (our own misuse, not the peer's)."""
    if not 0 <= tlv_type <= TYPE_MASK:
        raise ValueError("TLV type out of range")
    if len(value) > 0xFFFF:
        raise ValueError("TLV value too long")


def pack_tlv(tlv_type: int, value: bytes, mandatory: bool) -> bytes:
    head = tlv_type | (FLAG_MANDATORY if mandatory else 0)
    return struct.pack("!HH", head, len(value)) + value


def iter_tlvs(
    data: bytes, error: Callable[[str, int], Exception]
) -> Iterator[tuple[int, bytes, bool]]:
    """(type, value, mandatory) for each TLV of ``data``; the last one must end exactly at
    the end of the data.  ``error(message, offset)`` builds the method's own exception."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise error("truncated TLV header", pos)
        head, length = struct.unpack_from("!HH", data, pos)
        end = pos + 4 + length
        if end > len(data):
            raise error(f"TLV length {length} runs past the data", pos)
        yield head & TYPE_MASK, bytes(data[pos + 4 : end]), bool(head & FLAG_MANDATORY)
        pos = end
