"""Hypothesis: arbitrary input ends in a decoded message or a PaTncError, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nea.pa import (
    ATTRIBUTE_REGISTRY,
    AttributeEnvelope,
    PaMessage,
    PaTncError,
    SegmentReassembler,
    process_message,
)

HDR = bytes.fromhex("0100000012345678")
KEYS = sorted(ATTRIBUTE_REGISTRY)


def _check(data: bytes) -> None:
    try:
        msg = PaMessage.parse(data)
    except PaTncError as exc:
        assert 0 <= exc.offset <= max(len(data), 0)
        exc.to_attribute().serialize()  # always encodable for the reply
    else:
        assert msg.serialize() == data  # anything accepted re-encodes identically
        msg.describe()
        msg.to_dict()
    result = process_message(data)  # never raises
    for err in result.errors:
        err.serialize()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_valid_header(data: bytes) -> None:
    _check(HDR + data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(KEYS), st.sampled_from([0, 0x80, 0x7F]), st.binary(max_size=80)),
        max_size=3,
    )
)
def test_random_values_for_every_known_type(
    attrs: list[tuple[tuple[int, int], int, bytes]],
) -> None:
    body = b"".join(
        bytes([flags]) + vendor.to_bytes(3, "big") + atype.to_bytes(4, "big")
        + (12 + len(value)).to_bytes(4, "big") + value
        for (vendor, atype), flags, value in attrs
    )
    _check(HDR + body)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from([0, 0x40, 0x80, 0xC0]),
                  st.binary(max_size=40)),
        max_size=6,
    )
)
def test_random_segments(envelopes: list[tuple[int, int, bytes]]) -> None:
    receiver = SegmentReassembler(max_attribute_size=100, max_segment_size=40, max_pending=2)
    for base_id, flags, seg in envelopes:
        try:
            receiver.receive(AttributeEnvelope(base_id, seg, flags))
        except PaTncError:
            pass
        assert receiver.pending <= 2
