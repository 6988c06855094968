"""TCG IF-M segmentation: a sender and a receiver wired back to back, no I/O."""

from __future__ import annotations

import os

import pytest

from nea.pa import (
    AttributeEnvelope,
    AttributeSegmenter,
    ItaCommand,
    LocalPaTncError,
    NeedNextSegment,
    NextSegment,
    PaErrorCode,
    PaMessage,
    Reassembled,
    SegmentationError,
    SegmentReassembler,
    SwInventory,
    SwRecord,
    UnknownAttribute,
    needs_segmentation,
    segment_attribute,
)
from nea.pa.tcg_seg import NO_LIMIT

BIG_RECORD = os.urandom(100_000)


def _big() -> SwInventory:
    return SwInventory(
        request_id=9, eid_epoch=1, last_eid=1,
        records=(SwRecord(1, 0, 0, 0, "strongswan.org__strongSwan-6-0-6", "", BIG_RECORD),),
    )


def _over_the_wire(attr: AttributeEnvelope | NextSegment) -> AttributeEnvelope | NextSegment:
    """Each exchanged attribute travels in its own PA-TNC message."""
    parsed = PaMessage.parse(PaMessage(1, (attr,)).serialize()).attributes[0]
    assert isinstance(parsed, (AttributeEnvelope, NextSegment))
    return parsed


def test_roundtrip_100kb_attribute() -> None:
    big = _big()
    max_seg = 32_000
    sender = AttributeSegmenter(big, base_attr_id=1, max_segment_size=max_seg)
    receiver = SegmentReassembler(max_attribute_size=200_000, max_segment_size=max_seg)
    env = _over_the_wire(sender.first_segment())
    assert isinstance(env, AttributeEnvelope) and env.start and env.more
    rounds = 0
    while True:
        assert isinstance(env, AttributeEnvelope)
        out = receiver.receive(env)
        rounds += 1
        if isinstance(out, Reassembled):
            break
        request = _over_the_wire(out.request)
        assert isinstance(request, NextSegment) and not request.cancel
        nxt = sender.handle_next_segment(request)
        assert nxt is not None
        env = _over_the_wire(nxt)
    assert out.attribute == big
    assert rounds == -(-len(big.serialize()) // max_seg) == 4
    assert sender.done and receiver.pending == 0
    assert not env.more and not env.start


def test_segment_attribute_flags_and_sizes() -> None:
    envs = segment_attribute(_big(), 5, 40_000)
    assert [e.segment_flags for e in envs] == [0xC0, 0x80, 0x00]
    assert all(len(e.segment) <= 40_000 for e in envs)
    assert envs[0].segment[:12] == _big().serialize()[:12]  # base attribute header first
    assert b"".join(e.segment for e in envs) == _big().serialize()


def test_peer_exceeding_negotiated_attribute_size_is_refused_at_first_segment() -> None:
    receiver = SegmentReassembler(max_attribute_size=50_000, max_segment_size=32_000)
    first = segment_attribute(_big(), 7, 32_000)[0]
    with pytest.raises(SegmentationError) as info:
        receiver.receive(first)
    err = info.value
    assert err.code == PaErrorCode.INVALID_PARAMETER
    assert err.offset == 8  # the base attribute's length field
    assert err.header == b"\xff\xff\xff\xff\x00\x00\x00\x07"
    assert err.to_attribute().info.header == err.header  # type: ignore[union-attr]
    assert receiver.pending == 0  # nothing buffered


def test_segment_larger_than_negotiated_is_refused() -> None:
    receiver = SegmentReassembler(max_attribute_size=200_000, max_segment_size=1000)
    with pytest.raises(SegmentationError):
        receiver.receive(segment_attribute(_big(), 1, 1001)[0])


def test_peer_sending_more_than_announced_is_refused() -> None:
    envs = segment_attribute(ItaCommand("x" * 100), 3, 50)
    receiver = SegmentReassembler(max_attribute_size=1000, max_segment_size=100)
    assert isinstance(receiver.receive(envs[0]), NeedNextSegment)
    bogus = AttributeEnvelope(3, envs[1].segment + b"extra" * 20, 0)
    with pytest.raises(SegmentationError):
        receiver.receive(bogus)
    assert receiver.pending == 0


@pytest.mark.parametrize(
    "bad",
    [
        AttributeEnvelope(9, b"abc", 0x80),  # continuation of nothing
        AttributeEnvelope(9, b"\x00" * 11, 0xC0),  # first segment cannot hold the header
        AttributeEnvelope(9, bytes.fromhex("00000000" "00000009" "00000010"), 0x40),  # short
        AttributeEnvelope(9, bytes.fromhex("00000000" "00000009" "0000000b"), 0xC0),  # len<12
    ],
)
def test_protocol_violations(bad: AttributeEnvelope) -> None:
    with pytest.raises(SegmentationError):
        SegmentReassembler(max_attribute_size=1000).receive(bad)


def test_duplicate_start_and_pending_limit() -> None:
    first = segment_attribute(ItaCommand("y" * 100), 1, 40)[0]
    receiver = SegmentReassembler(max_attribute_size=1000, max_pending=1)
    receiver.receive(first)
    with pytest.raises(SegmentationError):
        receiver.receive(first)
    assert receiver.pending == 0  # an error ends that base attribute ID's reassembly
    receiver.receive(first)
    with pytest.raises(SegmentationError):
        receiver.receive(segment_attribute(ItaCommand("z" * 100), 2, 40)[0])


def test_invalid_base_attribute_reported_with_segment_context() -> None:
    # a complete, segmented Numeric Version whose value is one octet short
    bad_attr = bytes.fromhex("00000000" "00000003" "0000001b") + b"\x00" * 15
    envs = [AttributeEnvelope(4, bad_attr[:20], 0xC0), AttributeEnvelope(4, bad_attr[20:], 0)]
    receiver = SegmentReassembler(max_attribute_size=1000)
    assert isinstance(receiver.receive(envs[0]), NeedNextSegment)
    with pytest.raises(SegmentationError) as info:
        receiver.receive(envs[1])
    assert info.value.header == b"\xff\xff\xff\xff\x00\x00\x00\x04"


def test_unknown_noskip_base_attribute_is_handed_on() -> None:
    raw = UnknownAttribute(0x1234, 1, b"q" * 60, flags=0x80)
    envs = segment_attribute(raw, 2, 30)
    receiver = SegmentReassembler(max_attribute_size=1000)
    results = [receiver.receive(e) for e in envs]
    assert all(isinstance(r, NeedNextSegment) for r in results[:-1])
    assert results[-1] == Reassembled(raw) and raw.noskip


def test_a_segmented_next_segment_attribute_is_not_mistaken_for_a_request() -> None:
    inner = NextSegment(77)
    envs = [AttributeEnvelope(1, inner.serialize()[:12], 0xC0),
            AttributeEnvelope(1, inner.serialize()[12:], 0)]
    receiver = SegmentReassembler(max_attribute_size=100)
    assert receiver.receive(envs[0]) == NeedNextSegment(NextSegment(1))
    assert receiver.receive(envs[1]) == Reassembled(inner)


def test_cancel_both_ways() -> None:
    sender = AttributeSegmenter(_big(), 6, 10_000)
    sender.first_segment()
    receiver = SegmentReassembler(max_attribute_size=200_000)
    cancel = receiver.cancel(6)
    assert cancel.cancel
    assert sender.handle_next_segment(_over_the_wire(cancel)) is None  # type: ignore[arg-type]
    assert sender.done
    # strongSwan's cancel (least significant bit) is understood as well
    assert NextSegment(6, 0x01).cancel and NextSegment(6, 0x80).cancel
    assert not NextSegment(6, 0x00).cancel


def test_needs_segmentation_and_limits() -> None:
    big = _big()
    assert needs_segmentation(big, max_attribute_size=200_000, max_segment_size=65_466)
    assert not needs_segmentation(big, max_attribute_size=NO_LIMIT, max_segment_size=NO_LIMIT)
    assert not needs_segmentation(ItaCommand("a"), max_attribute_size=100, max_segment_size=20)
    with pytest.raises(LocalPaTncError):
        needs_segmentation(big, max_attribute_size=50_000, max_segment_size=1000)
    with pytest.raises(LocalPaTncError):
        SegmentReassembler(max_attribute_size=NO_LIMIT)
    with pytest.raises(LocalPaTncError):
        AttributeSegmenter(big, 1, 11)  # the base attribute header is never split
