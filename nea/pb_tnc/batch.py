"""PB-TNC batches, RFC 5793 section 4.1.

Header: Version (8) = 2, D (1 bit, set when the server sent it), Reserved (19 bits), Batch
Type (4), Batch Length (32, header included).  The batch length must equal the bytes received
and the messages must fill the batch exactly.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from nea.pb_tnc.errors import PB_TNC_VERSION, InvalidParameter, VersionNotSupported
from nea.pb_tnc.messages import PbMessage, decode_message, encode_message

__all__ = [
    "BATCH_HEADER_SIZE",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "PT_EAP_MAX_BATCH_SIZE",
    "PT_EAP_MAX_MESSAGE_SIZE",
    "Batch",
    "BatchType",
    "decode_batch",
    "encode_batch",
    "message_offsets",
]

BATCH_HEADER_SIZE = 8

DEFAULT_MAX_BATCH_SIZE = 65522
"""strongSwan's tnccs-20 default (``max_batch_size``)."""
DEFAULT_MAX_MESSAGE_SIZE = 65490
"""Largest PA message body that fits a default batch: 65522 - 8 - 12 - 12."""
PT_EAP_MAX_BATCH_SIZE = 32754
"""What strongSwan recommends inside EAP (PT-EAP)."""
PT_EAP_MAX_MESSAGE_SIZE = 32722

_D_FLAG = 0x80


class BatchType(enum.IntEnum):
    """PB-TNC Batch Types, RFC 5793 section 4.1."""

    CDATA = 1
    SDATA = 2
    RESULT = 3
    CRETRY = 4
    SRETRY = 5
    CLOSE = 6

    @property
    def from_server(self) -> bool:
        """Whether only a PB-TNC server may send this type (CLOSE: either side)."""
        return self in (BatchType.SDATA, BatchType.RESULT, BatchType.SRETRY)

    @property
    def from_client(self) -> bool:
        return self in (BatchType.CDATA, BatchType.CRETRY)


@dataclass(frozen=True, slots=True)
class Batch:
    """One PB-TNC batch.  ``from_server`` is the D (directionality) bit."""

    batch_type: BatchType
    from_server: bool
    messages: tuple[PbMessage, ...] = ()
    reserved: int = 0
    """The 19 reserved header bits (zero when sent; kept so that odd input re-encodes)."""

    def encode(self) -> bytes:
        return encode_batch(self)

    def __len__(self) -> int:
        return len(self.messages)


def encode_batch(batch: Batch) -> bytes:
    body = b"".join(encode_message(m) for m in batch.messages)
    length = BATCH_HEADER_SIZE + len(body)
    if length > 0xFFFFFFFF:
        raise ValueError("batch too long")
    if not 0 <= batch.reserved < (1 << 19):
        raise ValueError("reserved bits do not fit 19 bits")
    # Version (8) | D (1) + Reserved (19) | Batch Type (4)
    word = (PB_TNC_VERSION << 24) | (batch.reserved << 4) | int(batch.batch_type)
    if batch.from_server:
        word |= _D_FLAG << 16
    return struct.pack(">II", word, length) + body


def decode_batch(data: bytes) -> Batch:
    """Decode one batch; raises a :class:`~nea.pb_tnc.errors.PbTncError` subclass.

    Checks, in the order strongSwan's tnccs-20 applies them: header length (Invalid
    Parameter, offset 0), version (Version Not Supported), batch type (offset 3), batch
    length (offset 4), then each message (offsets of the field in error).
    """
    data = bytes(data)
    if len(data) < BATCH_HEADER_SIZE:
        raise InvalidParameter(f"{len(data)} bytes too few for a batch header", offset=0)
    word, length = struct.unpack_from(">II", data)
    version = word >> 24
    if version != PB_TNC_VERSION:
        raise VersionNotSupported(version)
    from_server = bool((word >> 16) & _D_FLAG)
    reserved = (word >> 4) & ((1 << 19) - 1)
    raw_type = word & 0x0F
    try:
        batch_type = BatchType(raw_type)
    except ValueError:
        raise InvalidParameter(f"unknown batch type {raw_type}", offset=3) from None
    if length != len(data):
        raise InvalidParameter(f"batch length {length} but {len(data)} bytes received", offset=4)
    messages: list[PbMessage] = []
    offset = BATCH_HEADER_SIZE
    while offset < len(data):
        message, size = decode_message(data, offset)
        messages.append(message)
        offset += size
    return Batch(batch_type, from_server, tuple(messages), reserved)


def message_offsets(messages: Sequence[PbMessage]) -> Iterator[tuple[int, PbMessage]]:
    """``(offset from the batch start, message)`` pairs, as the messages lie on the wire."""
    offset = BATCH_HEADER_SIZE
    for message in messages:
        yield offset, message
        offset += len(encode_message(message))
