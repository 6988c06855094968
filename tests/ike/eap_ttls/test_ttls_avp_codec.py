"""TTLS AVP codec (RFC 5281 section 10): exact lengths, padding, vendor AVPs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap_ttls.avp import Avp, AvpCode, AvpError, encode_avps, parse_avps

CASES = [
    (Avp(AvpCode.USER_NAME, b"alice", mandatory=True),
     bytes.fromhex("00000001" "40" "00000d") + b"alice" + b"\x00\x00\x00"),
    (Avp(25, b"\x01\x02\x03\x04", vendor_id=311, mandatory=True),
     bytes.fromhex("00000019" "c0" "000010" "00000137" "01020304")),
    (Avp(79, b""), bytes.fromhex("0000004f" "00" "000008")),
    (Avp(7, b"abc", vendor_id=9),
     bytes.fromhex("00000007" "80" "00000f" "00000009") + b"abc\x00"),
]


@pytest.mark.parametrize(("avp", "wire"), CASES)
def test_serialize(avp: Avp, wire: bytes) -> None:
    assert avp.to_bytes() == wire


@pytest.mark.parametrize(("avp", "wire"), CASES)
def test_parse(avp: Avp, wire: bytes) -> None:
    assert parse_avps(wire) == [avp]
    assert parse_avps(wire + wire) == [avp, avp]


def test_last_avp_without_padding_is_tolerated() -> None:
    wire = CASES[0][1]
    assert parse_avps(wire[:-3]) == [CASES[0][0]]


@pytest.mark.parametrize(
    "wire",
    [
        bytes.fromhex("00000001400000"),  # truncated header
        bytes.fromhex("0000000140000007"),  # length below header
        bytes.fromhex("00000001c000000b00000137"),  # V set: length below 12
        bytes.fromhex("0000000140000010") + b"abc",  # runs past the data
        bytes.fromhex("0000000140000009") + b"a\x00\x01\x00",  # non-zero padding
        bytes.fromhex("0000000140000009") + b"a\x00",  # padding truncated
        CASES[0][1] + b"\x00\x00",  # trailing garbage
    ],
)
def test_malformed(wire: bytes) -> None:
    with pytest.raises(AvpError):
        parse_avps(wire)


def test_repr_hides_data() -> None:
    assert "secret" not in repr(Avp(2, b"secret"))


def test_one_byte_at_a_time_prefixes_fail_or_parse_prefix() -> None:
    wire = encode_avps(a for a, _ in CASES)
    boundaries = {0}
    pos = 0
    for _, w in CASES:
        pos += len(w)
        boundaries.add(pos)
    for cut in range(len(wire)):
        if cut in boundaries:
            parse_avps(wire[:cut])
            continue
        try:
            got = parse_avps(wire[:cut])
        except AvpError:
            continue
        # Only an unpadded last AVP may parse at a non-boundary.
        assert got[-1].to_bytes().startswith(wire[sum(len(a.to_bytes()) for a in got[:-1]):cut])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=40),
                          st.none() | st.integers(0, 2**32 - 1), st.booleans()), max_size=5))
def test_round_trip(items: list[tuple[int, bytes, int | None, bool]]) -> None:
    avps = [Avp(c, d, v, m) for c, d, v, m in items]
    assert parse_avps(encode_avps(avps)) == avps


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        parse_avps(data)
    except AvpError:
        pass
