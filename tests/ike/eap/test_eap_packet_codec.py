"""EAP packet codec (RFC 3748 section 4/5): round trips, exact lengths, Nak helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap.packet import (
    EapCode,
    EapError,
    EapFailure,
    EapPacket,
    EapRequest,
    EapResponse,
    EapSuccess,
    EapType,
    ExpandedType,
    MalformedPacket,
    encode_expanded,
    encode_expanded_nak,
    encode_nak,
    parse,
    parse_expanded,
    parse_expanded_nak,
    parse_nak,
    type_name,
)

# One table drives parse and serialize (wire bytes written out by hand from RFC 3748 4.1/4.2).
CASES: list[tuple[bytes, EapPacket]] = [
    (bytes.fromhex("01070005") + b"\x01", EapRequest(7, EapType.IDENTITY)),
    (
        bytes.fromhex("0207000a") + b"\x01alice",
        EapResponse(7, EapType.IDENTITY, b"alice"),
    ),
    (bytes.fromhex("03ff0004"), EapSuccess(255)),
    (bytes.fromhex("04000004"), EapFailure(0)),
    (bytes.fromhex("02010006") + b"\x03\x1a", EapResponse(1, EapType.NAK, b"\x1a")),
    # An unknown method type is kept intact as an int.
    (bytes.fromhex("01020008") + b"\xc8\x01\x02\x03", EapRequest(2, 200, b"\x01\x02\x03")),
]


@pytest.mark.parametrize(("wire", "packet"), CASES)
def test_parse_and_serialize_table(wire: bytes, packet: EapPacket) -> None:
    assert parse(wire) == packet
    assert packet.to_bytes() == wire


@pytest.mark.parametrize(("wire", "packet"), CASES)
def test_truncated_is_rejected_at_every_length(wire: bytes, packet: EapPacket) -> None:
    for cut in range(len(wire)):
        with pytest.raises(MalformedPacket):
            parse(wire[:cut])


@pytest.mark.parametrize(("wire", "packet"), CASES)
def test_trailing_garbage(wire: bytes, packet: EapPacket) -> None:
    with pytest.raises(MalformedPacket, match="after the EAP Length"):
        parse(wire + b"\x00")
    # RFC 3748 4.1: octets beyond Length are link-layer padding where the caller allows it.
    assert parse(wire + b"\x00\x00", allow_padding=True) == packet


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (bytes.fromhex("03010005") + b"\x00", "Success/Failure must have Length 4"),
        (bytes.fromhex("04010005") + b"\x00", "Success/Failure must have Length 4"),
        (bytes.fromhex("01010004"), "without a Type"),
        (bytes.fromhex("02010004"), "without a Type"),
        (bytes.fromhex("01010003"), "below the header"),
        (bytes.fromhex("05010004"), "unknown EAP Code 5"),
        (bytes.fromhex("00010004"), "unknown EAP Code 0"),
        (bytes.fromhex("01010005") + b"\x00", "Type 0 is reserved"),
        (bytes.fromhex("0101ffff") + b"\x01", "exceeds"),
    ],
)
def test_malformed(wire: bytes, match: str) -> None:
    with pytest.raises(MalformedPacket, match=match):
        parse(wire)


def test_constructor_ranges() -> None:
    with pytest.raises(ValueError):
        EapRequest(256, 1)
    with pytest.raises(ValueError):
        EapResponse(1, 0)
    with pytest.raises(ValueError):
        EapSuccess(-1)
    with pytest.raises(ValueError):
        EapRequest(1, 4, b"\x00" * 65531)
    assert len(EapRequest(1, 4, b"\x00" * 65530).to_bytes()) == 0xFFFF


def test_registry_values() -> None:
    # IANA EAP registry values the rest of the project relies on.
    assert (EapCode.REQUEST, EapCode.RESPONSE, EapCode.SUCCESS, EapCode.FAILURE) == (1, 2, 3, 4)
    values = {t.name: int(t) for t in EapType}
    assert values["MSCHAPV2"] == 26 and values["PT_EAP"] == 54 and values["TNC"] == 38
    assert values["FAST"] == 43 and values["PEAP"] == 25 and values["TTLS"] == 21
    assert type_name(26) == "EAP-MSCHAPv2" and type_name(200) == "EAP-200"
    assert type_name(EapType.IDENTITY) == "IDENTITY"


def test_legacy_nak() -> None:
    assert encode_nak([26, 4]) == b"\x1a\x04"
    assert encode_nak([]) == b"\x00"
    assert encode_nak([1, 2, 3, 254]) == b"\x00"  # nothing that is a method: "no alternative"
    assert parse_nak(b"\x1a\x04") == (26, 4)
    assert parse_nak(b"\x00") == ()
    assert parse_nak(b"\x01\x1a") == (26,)
    with pytest.raises(MalformedPacket):
        parse_nak(b"")


def test_expanded_and_expanded_nak() -> None:
    vendor = ExpandedType(0x9677, 1)
    data = encode_expanded(vendor, b"xyz")
    assert parse_expanded(data) == (vendor, b"xyz")
    nak = encode_expanded_nak([ExpandedType(0, 26), vendor])
    assert parse_expanded_nak(nak) == (ExpandedType(0, 26), vendor)
    assert parse_expanded_nak(encode_expanded_nak([])) == ()
    assert parse_expanded_nak(data) is None  # not a Nak
    # The whole packet round-trips through the codec.
    pkt = EapResponse(9, EapType.EXPANDED, nak)
    assert parse(pkt.to_bytes()) == pkt
    with pytest.raises(MalformedPacket):
        parse_expanded(b"\x00\x00\x00\x00\x00\x03")
    with pytest.raises(MalformedPacket):
        parse_expanded_nak(nak[:-1])
    with pytest.raises(MalformedPacket):
        parse_expanded_nak(encode_expanded(ExpandedType(0, 3), b"\x01" + bytes(7)))
    with pytest.raises(ValueError):
        ExpandedType(1 << 24, 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_eap_error(data: bytes) -> None:
    try:
        packet = parse(data)
    except EapError:
        return
    assert packet.to_bytes() == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_random_nak_data_only_raise_eap_error(data: bytes) -> None:
    for fn in (parse_nak, parse_expanded_nak, parse_expanded):
        try:
            fn(data)
        except EapError:
            pass
