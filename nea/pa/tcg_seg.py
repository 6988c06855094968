"""TCG IF-M Segmentation (PEN 0x005597, types 0x21-0x24) and a sans-I/O segmenter and
reassembler for attributes larger than one PA-TNC message.

Layouts (TCG IF-M Segmentation Specification; facts cross-checked against strongSwan's
libimcv ``tcg/seg`` and ``seg/``):

* Max Attribute Size Request (0x21) / Response (0x22): Max Attribute Size (32), Max
  Segment Size (32). All ones means "no limit" / "no segmentation".
* Attribute Segment Envelope (0x23): M (more) 0x80 | S (start) 0x40 | reserved (8 bits
  total), Base Attribute ID (24), Segment Value. The first segment (S set) starts with the
  complete 12-octet header of the base attribute, whose length field is the length of the
  whole base attribute; later segments carry only value octets. The last has M clear.
* Next Segment (0x24): flags (8; C = cancel), Base Attribute ID (24).

Flow: the sender sends the first envelope; for every Next Segment request the receiver
returns it sends the next envelope, until one arrives without M.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Self

from nea.pa._wire import Reader, u8, u24, u32
from nea.pa.attribute import (
    ATTRIBUTE_HEADER_LEN,
    ATTRIBUTE_REGISTRY,
    Attribute,
    AttributeHeader,
    Vendor,
    parse_attribute,
    register,
)
from nea.pa.errors import InvalidParameter, LocalPaTncError, SegmentationError

__all__ = [
    "NEXT_SEGMENT_CANCEL",
    "NEXT_SEGMENT_CANCEL_STRONGSWAN",
    "NO_LIMIT",
    "SEGMENT_MORE",
    "SEGMENT_START",
    "AttributeEnvelope",
    "AttributeSegmenter",
    "MaxAttributeSizeRequest",
    "MaxAttributeSizeResponse",
    "NeedNextSegment",
    "NextSegment",
    "Reassembled",
    "ReassemblyEvent",
    "SegmentReassembler",
    "TcgSegmentationType",
    "needs_segmentation",
    "segment_attribute",
]

SEGMENT_MORE = 0x80
SEGMENT_START = 0x40
#: "No limit" for the maximum attribute size / "no segmentation" for the segment size.
NO_LIMIT = 0xFFFFFFFF
#: Next Segment C flag: the most significant bit per the TCG layout ...
NEXT_SEGMENT_CANCEL = 0x80
#: ... but strongSwan writes and tests the least significant bit. We set both on send and
#: accept either on receipt, so a cancel is understood by both kinds of peer.
NEXT_SEGMENT_CANCEL_STRONGSWAN = 0x01

_BASE_ID_MAX = 0xFFFFFF


class TcgSegmentationType(enum.IntEnum):
    """TCG IF-M Segmentation attribute types (vendor 0x005597)."""

    MAX_ATTRIBUTE_SIZE_REQUEST = 0x21
    MAX_ATTRIBUTE_SIZE_RESPONSE = 0x22
    ATTRIBUTE_SEGMENT_ENVELOPE = 0x23
    NEXT_SEGMENT = 0x24


@dataclass(frozen=True)
class _MaxSize(Attribute):
    max_attribute_size: int
    max_segment_size: int

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.u32("max attribute size"), reader.u32("max segment size"),
                   flags=flags)

    def serialize_value(self) -> bytes:
        return u32(self.max_attribute_size, "max attribute size") + u32(
            self.max_segment_size, "max segment size"
        )


@register
@dataclass(frozen=True)
class MaxAttributeSizeRequest(_MaxSize):
    VENDOR = Vendor.TCG
    TYPE = TcgSegmentationType.MAX_ATTRIBUTE_SIZE_REQUEST
    NAME = "TCG Max Attribute Size Request"


@register
@dataclass(frozen=True)
class MaxAttributeSizeResponse(_MaxSize):
    VENDOR = Vendor.TCG
    TYPE = TcgSegmentationType.MAX_ATTRIBUTE_SIZE_RESPONSE
    NAME = "TCG Max Attribute Size Response"


@register
@dataclass(frozen=True)
class AttributeEnvelope(Attribute):
    VENDOR = Vendor.TCG
    TYPE = TcgSegmentationType.ATTRIBUTE_SEGMENT_ENVELOPE
    NAME = "TCG Attribute Segment Envelope"

    base_attr_id: int
    segment: bytes
    segment_flags: int = 0

    @property
    def more(self) -> bool:
        return bool(self.segment_flags & SEGMENT_MORE)

    @property
    def start(self) -> bool:
        return bool(self.segment_flags & SEGMENT_START)

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        seg_flags = reader.u8("segmentation flags")
        base = reader.u24("base attribute ID")
        return cls(base, reader.rest(), seg_flags, flags=flags)

    def serialize_value(self) -> bytes:
        return (
            u8(self.segment_flags, "segmentation flags")
            + u24(self.base_attr_id, "base attribute ID")
            + self.segment
        )

    def details(self) -> dict[str, Any]:
        return {
            "base_attr_id": self.base_attr_id,
            "more": self.more,
            "start": self.start,
            "segment_flags": self.segment_flags,
            "segment_length": len(self.segment),
        }


@register
@dataclass(frozen=True)
class NextSegment(Attribute):
    VENDOR = Vendor.TCG
    TYPE = TcgSegmentationType.NEXT_SEGMENT
    NAME = "TCG Next Segment"

    base_attr_id: int
    segment_flags: int = 0

    @classmethod
    def cancel_request(cls, base_attr_id: int) -> Self:
        return cls(base_attr_id, NEXT_SEGMENT_CANCEL | NEXT_SEGMENT_CANCEL_STRONGSWAN)

    @property
    def cancel(self) -> bool:
        return bool(self.segment_flags & (NEXT_SEGMENT_CANCEL | NEXT_SEGMENT_CANCEL_STRONGSWAN))

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        seg_flags = reader.u8("next segment flags")
        return cls(reader.u24("base attribute ID"), seg_flags, flags=flags)

    def serialize_value(self) -> bytes:
        return u8(self.segment_flags, "next segment flags") + u24(
            self.base_attr_id, "base attribute ID"
        )


class AttributeSegmenter:
    """Sender side: cuts one attribute into Attribute Segment Envelopes.

    ``max_segment_size`` is the peer's Max Segment Size (octets of segment value per
    envelope; the first segment's count includes the 12-octet base attribute header).
    """

    def __init__(self, attribute: Attribute, base_attr_id: int, max_segment_size: int) -> None:
        if not 0 <= base_attr_id <= _BASE_ID_MAX:
            raise LocalPaTncError("base attribute ID is 24 bits")
        if max_segment_size < ATTRIBUTE_HEADER_LEN:
            raise LocalPaTncError("the segment size must hold the 12-octet attribute header")
        self.base_attr_id = base_attr_id
        self._data = attribute.serialize()
        self._max = max_segment_size
        self._pos = 0
        self.cancelled = False

    @property
    def done(self) -> bool:
        return self.cancelled or self._pos >= len(self._data)

    def _envelope(self, start: bool) -> AttributeEnvelope:
        chunk = self._data[self._pos : self._pos + self._max]
        self._pos += len(chunk)
        flags = (SEGMENT_START if start else 0) | (SEGMENT_MORE if not self.done else 0)
        return AttributeEnvelope(self.base_attr_id, chunk, flags)

    def first_segment(self) -> AttributeEnvelope:
        if self._pos:
            raise LocalPaTncError("first segment already produced")
        return self._envelope(start=True)

    def handle_next_segment(self, request: NextSegment) -> AttributeEnvelope | None:
        """Answer the peer's Next Segment request: the next envelope, or None when the
        peer cancelled or everything was sent."""
        if request.base_attr_id != self.base_attr_id:
            raise LocalPaTncError("Next Segment for another base attribute ID")
        if request.cancel:
            self.cancelled = True
            return None
        if self._pos == 0:
            raise LocalPaTncError("send the first segment before answering Next Segment")
        if self.done:
            return None
        return self._envelope(start=False)


def needs_segmentation(
    attribute: Attribute, *, max_attribute_size: int, max_segment_size: int
) -> bool:
    """Whether ``attribute`` must be sent in segments under the peer's limits (from its
    Max Attribute Size Request/Response): yes when it is larger than one segment, as
    strongSwan decides. Raises :class:`LocalPaTncError` when the peer would refuse it."""
    size = len(attribute.serialize())
    if max_attribute_size != NO_LIMIT and size > max_attribute_size:
        raise LocalPaTncError(
            f"attribute of {size} octets exceeds the peer's maximum of {max_attribute_size}"
        )
    return max_segment_size != NO_LIMIT and size > max_segment_size


def segment_attribute(
    attribute: Attribute, base_attr_id: int, max_segment_size: int
) -> list[AttributeEnvelope]:
    """All envelopes for ``attribute`` at once (what the peer receives over the exchange)."""
    seg = AttributeSegmenter(attribute, base_attr_id, max_segment_size)
    out = [seg.first_segment()]
    while not seg.done:
        nxt = seg.handle_next_segment(NextSegment(base_attr_id))
        if nxt is None:  # pragma: no cover - done is checked above
            break
        out.append(nxt)
    return out


@dataclass(frozen=True)
class NeedNextSegment:
    """Reassembly event: more segments are expected; send ``request`` to the peer."""

    request: NextSegment


@dataclass(frozen=True)
class Reassembled:
    """Reassembly event: the base attribute is complete (possibly an UnknownAttribute:
    check its NOSKIP flag as for any received attribute)."""

    attribute: Attribute


ReassemblyEvent = NeedNextSegment | Reassembled


@dataclass
class _Pending:
    header: AttributeHeader
    data: bytearray


class SegmentReassembler:
    """Receiver side: collects segments into the base attribute with bounded memory.

    ``max_attribute_size`` / ``max_segment_size`` are what we told the peer in our Max
    Attribute Size Response; a peer exceeding them gets :class:`SegmentationError` (an
    Invalid Parameter whose header copy is 0xFFFFFFFF + base attribute ID, strongSwan's
    convention) before anything beyond the limit is buffered. At most ``max_pending``
    attributes are reassembled at a time.
    """

    def __init__(
        self,
        *,
        max_attribute_size: int,
        max_segment_size: int = NO_LIMIT,
        max_pending: int = 4,
    ) -> None:
        if not 0 < max_attribute_size < NO_LIMIT:
            # memory stays bounded only with a finite limit (max_pending x this size)
            raise LocalPaTncError("the reassembler needs a finite max_attribute_size")
        self.max_attribute_size = max_attribute_size
        self.max_segment_size = max_segment_size
        self.max_pending = max_pending
        self._pending: dict[int, _Pending] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    @staticmethod
    def _error(base_attr_id: int, message: str, offset: int) -> SegmentationError:
        header = b"\xff\xff\xff\xff" + base_attr_id.to_bytes(4, "big")
        return SegmentationError(message, offset=offset, header=header)

    def cancel(self, base_attr_id: int) -> NextSegment:
        """Give up on an attribute; returns the Next Segment (cancel) to send."""
        self._pending.pop(base_attr_id, None)
        return NextSegment.cancel_request(base_attr_id)

    def receive(self, envelope: AttributeEnvelope) -> ReassemblyEvent:
        """Feed one envelope: :class:`NeedNextSegment` (with the request to send) or
        :class:`Reassembled` (with the complete base attribute)."""
        bid = envelope.base_attr_id
        try:
            return self._receive(envelope)
        except SegmentationError:
            self._pending.pop(bid, None)
            raise

    def _receive(self, envelope: AttributeEnvelope) -> ReassemblyEvent:
        bid = envelope.base_attr_id
        seg = envelope.segment
        if self.max_segment_size != NO_LIMIT and len(seg) > self.max_segment_size:
            raise self._error(
                bid, f"segment of {len(seg)} octets exceeds the negotiated "
                f"maximum of {self.max_segment_size}", 0)
        if envelope.start:
            if bid in self._pending:
                raise self._error(bid, f"base attribute ID {bid} is already in use", 0)
            if len(self._pending) >= self.max_pending:
                raise self._error(bid, "too many segmented attributes at once", 0)
            if len(seg) < ATTRIBUTE_HEADER_LEN:
                raise self._error(bid, "first segment does not hold the attribute header", 0)
            try:
                header = AttributeHeader.parse(Reader(seg[:ATTRIBUTE_HEADER_LEN]))
            except InvalidParameter as exc:
                raise self._error(bid, str(exc), exc.offset) from None
            if header.length > self.max_attribute_size:
                raise self._error(
                    bid, f"attribute of {header.length} octets exceeds the negotiated "
                    f"maximum of {self.max_attribute_size}", 8)
            pending = _Pending(header, bytearray())
        else:
            found = self._pending.get(bid)
            if found is None:
                raise self._error(bid, f"no segmented attribute with base ID {bid}", 0)
            pending = found
        if len(pending.data) + len(seg) > pending.header.length:
            raise self._error(
                bid, f"segments exceed the announced length {pending.header.length}",
                pending.header.length)
        pending.data += seg
        complete = len(pending.data) == pending.header.length
        if envelope.more:
            if complete:
                raise self._error(bid, "more segments announced after the last octet",
                                  len(pending.data))
            self._pending[bid] = pending
            return NeedNextSegment(NextSegment(bid))
        self._pending.pop(bid, None)
        if not complete:
            short = pending.header.length - len(pending.data)
            raise self._error(
                bid, f"last segment leaves the attribute {short} octets short", len(pending.data))
        try:
            return Reassembled(parse_attribute(Reader(bytes(pending.data)), ATTRIBUTE_REGISTRY))
        except InvalidParameter as exc:
            raise self._error(bid, str(exc), exc.offset) from None
