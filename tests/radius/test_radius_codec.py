"""Attribute and packet codec: one table drives parse and serialise; whole, byte-split,
trailing garbage and truncated inputs (house style section 6)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radius import (
    AddressAttribute,
    AttributeType,
    Code,
    IntegerAttribute,
    Ipv6AddressAttribute,
    MalformedAttribute,
    MalformedPacket,
    MicrosoftAttribute,
    OpaqueVendorSpecific,
    Packet,
    StringAttribute,
    TaggedIntegerAttribute,
    TaggedStringAttribute,
    TextAttribute,
    UnknownAttribute,
    VendorAttribute,
    VendorSpecific,
    decode_packet,
    eap_message_attributes,
    unhide_password,
    verify_response,
)
from radius.attributes import decode_attributes, encode_attributes
from radius.errors import LocalProtocolError

T = AttributeType

# (wire bytes, attribute) — used for both directions.
CASES = [
    (b"\x01\x06nemo", TextAttribute(T.USER_NAME, "nemo")),
    ("\x12\x08grüß".encode(), TextAttribute(T.REPLY_MESSAGE, "grüß")),
    (b"\x18\x05abc", StringAttribute(T.STATE, b"abc")),
    (b"\x1b\x06\x00\x00\x0e\x10", IntegerAttribute(T.SESSION_TIMEOUT, 3600)),
    (
        b"\x04\x06\xc0\x00\x02\x01",
        AddressAttribute(T.NAS_IP_ADDRESS, ipaddress.IPv4Address("192.0.2.1")),
    ),
    (
        b"\x5f\x12" + ipaddress.IPv6Address("2001:db8::1").packed,
        Ipv6AddressAttribute(T.NAS_IPV6_ADDRESS, ipaddress.IPv6Address("2001:db8::1")),
    ),
    (b"\x40\x06\x00\x00\x00\x0d", TaggedIntegerAttribute(T.TUNNEL_TYPE, 0, 13)),
    (b"\x41\x06\x01\x00\x00\x06", TaggedIntegerAttribute(T.TUNNEL_MEDIUM_TYPE, 1, 6)),
    (b"\x51\x04\x31\x30", TaggedStringAttribute(T.TUNNEL_PRIVATE_GROUP_ID, None, b"10")),
    (b"\x51\x05\x02\x31\x30", TaggedStringAttribute(T.TUNNEL_PRIVATE_GROUP_ID, 2, b"10")),
    (b"\x4f\x02", StringAttribute(T.EAP_MESSAGE, b"")),
    (
        b"\x1a\x0c\x00\x00\x01\x37\x10\x06abcd",
        VendorSpecific(311, (VendorAttribute(MicrosoftAttribute.MS_MPPE_SEND_KEY, b"abcd"),)),
    ),
    (b"\x1a\x09\x00\x00\x00\x09\x05\x09\x01", OpaqueVendorSpecific(9, b"\x05\x09\x01")),
    (b"\xfe\x05xyz", UnknownAttribute(254, b"xyz")),
    (b"\x01\x04\xff\xfe", UnknownAttribute(T.USER_NAME, b"\xff\xfe")),  # RFC 6929 2.8
]


@pytest.mark.parametrize(("wire", "attribute"), CASES)
def test_attribute_parse(wire: bytes, attribute: object) -> None:
    assert decode_attributes(wire) == (attribute,)


@pytest.mark.parametrize(("wire", "attribute"), CASES)
def test_attribute_serialise(wire: bytes, attribute: object) -> None:
    assert encode_attributes([attribute]) == wire  # type: ignore[list-item]


@pytest.mark.parametrize(("wire", "attribute"), CASES)
def test_attribute_truncated_is_an_error(wire: bytes, attribute: object) -> None:
    for cut in range(1, len(wire)):
        with pytest.raises(MalformedPacket):
            decode_attributes(wire[:cut])


@pytest.mark.parametrize(
    "wire",
    [
        b"\x1b\x05\x00\x00\x0e",  # integer of 3 octets
        b"\x1b\x07\x00\x00\x0e\x10\x00",  # integer of 5 octets
        b"\x04\x05\xc0\x00\x02",  # address of 3 octets
        b"\x50\x10" + bytes(14),  # Message-Authenticator of 14 octets
        b"\x01\x02",  # empty User-Name
        b"\x40\x05\x00\x00\x0d",  # Tunnel-Type of 3 octets
    ],
)
def test_wrong_value_length_is_malformed_attribute(wire: bytes) -> None:
    with pytest.raises(MalformedAttribute):
        decode_attributes(wire)


def test_attribute_length_below_two_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        decode_attributes(b"\x01\x01nemo")


def test_untagged_value_that_looks_like_a_tag_cannot_be_encoded() -> None:
    with pytest.raises(LocalProtocolError):
        encode_attributes([TaggedStringAttribute(T.TUNNEL_PRIVATE_GROUP_ID, None, b"\x05x")])


def test_oversized_attribute_cannot_be_encoded() -> None:
    with pytest.raises(LocalProtocolError):
        encode_attributes([StringAttribute(T.STATE, bytes(254))])


# -- packets -------------------------------------------------------------------------------

VECTORS = Path(__file__).parent / "vectors" / "rfc2865-section7.1.txt"


def _vectors() -> dict[str, str]:
    out = {}
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key] = value.strip()
    return out


def test_rfc2865_example_request_and_accept() -> None:
    v = _vectors()
    secret = v["secret"].encode()
    request = bytes.fromhex(v["access-request"].replace(" ", ""))
    packet = decode_packet(request)
    assert packet.code == Code.ACCESS_REQUEST
    assert packet.text(T.USER_NAME) == "nemo"
    assert packet.get(T.NAS_PORT) == IntegerAttribute(T.NAS_PORT, 3)
    hidden = packet.string(T.USER_PASSWORD)
    assert hidden is not None
    assert unhide_password(hidden, secret, packet.authenticator) == v["password"].encode()
    assert packet.encode() == request
    accept = bytes.fromhex(v["access-accept"])
    answer = verify_response(accept, packet.authenticator, secret)
    assert answer.code == Code.ACCESS_ACCEPT
    assert answer.integer(T.SERVICE_TYPE) == 1
    with pytest.raises(Exception, match="Response Authenticator"):
        verify_response(accept, packet.authenticator, b"wrong")


def test_packet_whole_split_trailing_truncated() -> None:
    request = bytes.fromhex(_vectors()["access-request"].replace(" ", ""))
    # RFC 2865 section 3: octets past Length are padding, ignored.
    assert decode_packet(request + b"garbage") == decode_packet(request)
    for cut in range(len(request)):
        with pytest.raises(MalformedPacket):
            decode_packet(request[:cut])
    # A Length that cuts an attribute in half leaves the attributes not filling it exactly.
    bad = bytearray(request)
    bad[3] -= 1
    with pytest.raises(MalformedPacket):
        decode_packet(bytes(bad))


def test_packet_length_field_out_of_range() -> None:
    header = bytes([1, 0]) + (19).to_bytes(2, "big") + bytes(16)
    with pytest.raises(MalformedPacket):
        decode_packet(header)
    header = bytes([1, 0]) + (4097).to_bytes(2, "big") + bytes(4093)
    with pytest.raises(MalformedPacket):
        decode_packet(header)


def test_unknown_code_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        decode_packet(bytes([99, 0, 0, 20]) + bytes(16))


def test_packet_too_large_cannot_be_encoded() -> None:
    attributes = tuple(StringAttribute(T.CLASS, bytes(253)) for _ in range(17))
    with pytest.raises(LocalProtocolError):
        Packet(Code.ACCESS_ACCEPT, 1, bytes(16), attributes).encode()


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=3000))
def test_eap_message_split_and_reassembly(eap_body: bytes) -> None:
    eap = bytes([2, 7]) + (len(eap_body) + 4).to_bytes(2, "big") + eap_body
    if len(eap) > 3000:
        return
    parts = eap_message_attributes(eap)
    assert all(len(p.value) <= 253 for p in parts)
    assert all(len(p.value) == 253 for p in parts[:-1])
    packet = Packet(Code.ACCESS_CHALLENGE, 1, bytes(16), (*parts, StringAttribute(T.STATE, b"s")))
    assert packet.eap_message() == eap


_ATTRS = st.one_of(
    st.builds(TextAttribute, st.just(T.USER_NAME), st.text(min_size=1, max_size=60)),
    st.builds(StringAttribute, st.just(T.CLASS), st.binary(min_size=1, max_size=253)),
    st.builds(IntegerAttribute, st.just(T.SESSION_TIMEOUT), st.integers(0, 2**32 - 1)),
    st.builds(UnknownAttribute, st.integers(200, 255), st.binary(max_size=253)),
    st.builds(
        TaggedIntegerAttribute,
        st.just(T.TUNNEL_TYPE),
        st.integers(0, 31),
        st.integers(0, 2**24 - 1),
    ),
)


@settings(max_examples=200)
@given(st.lists(_ATTRS, max_size=10))
def test_attribute_roundtrip(attributes: list[object]) -> None:
    wire = encode_attributes(attributes)  # type: ignore[arg-type]
    assert decode_attributes(wire) == tuple(attributes)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_random_datagrams_parse_or_raise_cleanly(data: bytes) -> None:
    try:
        decode_packet(data)
    except MalformedPacket:
        pass
    except Exception as exc:  # anything else is a crash
        from radius import RadiusError

        assert isinstance(exc, RadiusError)
