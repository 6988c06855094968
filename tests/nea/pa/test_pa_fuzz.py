"""Hypothesis: arbitrary input ends in a decoded message or a PaTncError, never a crash."""

from __future__ import annotations

import json

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
        json.dumps(msg.to_dict())
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


def _seeds() -> list[bytes]:
    """Valid attributes of every structured type, to mutate."""
    from nea.pa import (
        InstalledPackages,
        ItaGetSettings,
        ItaSetting,
        ItaSettings,
        OperationalStatus,
        Package,
        PaTncErrorAttribute,
        RemediationInstructions,
        StringVersion,
        SwEvent,
        SwEvents,
        SwIdentifierInventory,
        SwimaFulfillmentErrorInfo,
        SwimaResponseTooLargeInfo,
        SwInventory,
        SwRecord,
        SwRequest,
        UnsupportedAttributeInfo,
    )

    ts = "2026-11-28T02:56:35Z"
    rec = SwRecord(1, 0x902A, 1, 2, "id", "loc", b"<r/>")
    attrs = [
        StringVersion("12 x86_64", "b", "c"),
        OperationalStatus(3, 1, ts),
        InstalledPackages((Package("bash", "5.2"), Package("zsh", "5.9"))),
        RemediationInstructions.from_string("Fix it", "en"),
        SwRequest(1, 2, ("a", "bc")),
        SwIdentifierInventory(1, 2, 3, (SwRecord(1, 0, 0, 0, "x", "y"),)),
        SwInventory(1, 2, 3, (rec, rec)),
        SwEvents(1, 2, 3, 3, (SwEvent(3, ts, 1, rec),)),
        ItaGetSettings(("a", "b")),
        ItaSettings((ItaSetting("a", b"1"),)),
        PaTncErrorAttribute(0, 3, UnsupportedAttributeInfo(HDR, 0x80, 1, 2)),
        PaTncErrorAttribute(
            0, 7, SwimaFulfillmentErrorInfo(5, 0, 6, SwimaResponseTooLargeInfo(5, 10, "x"))
        ),
    ]
    return [a.serialize() for a in attrs]


SEEDS = _seeds()


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
    st.integers(0, 3),
)
def test_mutated_valid_attributes(seed: bytes, flips: list[tuple[int, int]], mode: int) -> None:
    attr = bytearray(seed)
    for pos, byte in flips:
        if 12 <= pos < len(attr):  # mutate the value, keep the header consistent
            attr[pos] = byte
    if mode == 1 and len(attr) > 12:  # drop the last value octet, fix the length
        attr = attr[:-1]
    elif mode == 2:  # one extra octet, fix the length
        attr += b"\x00"
    attr[8:12] = len(attr).to_bytes(4, "big")
    _check(HDR + bytes(attr))
