"""The payload codec: one table of cases drives parse and serialize; truncation, trailing
garbage, critical bits and fuzzed input all end in the RFC's errors, never a crash."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.config import IkeProposal
from ike.constants import (
    CertEncoding,
    CfgAttribute,
    CfgType,
    ExchangeType,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from ike.errors import (
    InvalidMajorVersion,
    InvalidSyntax,
    RemoteProtocolError,
    UnsupportedCriticalPayload,
)
from ike.message import Message, decode_message, encode_message
from ike.payloads import (
    Authentication,
    CertificatePayload,
    CertificateRequest,
    ConfigAttribute,
    ConfigPayload,
    Delete,
    EapPayload,
    EncryptedFragment,
    EncryptedPayload,
    IDi,
    IDr,
    IkeHeader,
    KeyExchange,
    Nonce,
    Notify,
    Payload,
    SecurityAssociation,
    TrafficSelector,
    TSi,
    TSr,
    UnknownPayload,
    VendorId,
    decode_chain,
    encode_chain,
)

SA = SecurityAssociation(
    (
        IkeProposal.parse("aes128-aes256-sha256-x25519").to_proposal(1),
        IkeProposal.parse("aes256gcm16-chacha20poly1305-prfsha384-ecp384").to_proposal(2),
    )
)
TS4 = TrafficSelector(ipaddress.ip_address("10.1.0.0"), ipaddress.ip_address("10.1.255.255"))
TS6 = TrafficSelector(
    ipaddress.ip_address("2001:db8::"), ipaddress.ip_address("2001:db8::ffff"), 6, 443, 443
)

CASES: list[tuple[Payload, str]] = [
    (SA, ""),
    (KeyExchange(31, bytes(range(32))), "001f0000" + bytes(range(32)).hex()),
    (IDi(IdType.ID_FQDN, b"cl.test"), "02000000" + b"cl.test".hex()),
    (IDr(IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 1])), "01000000c0000201"),
    (CertificatePayload(CertEncoding.X509_SIGNATURE, b"\x30\x00"), "043000"),
    (CertificateRequest(CertEncoding.X509_SIGNATURE, bytes(20)), "04" + "00" * 20),
    (Authentication(2, b"\xaa" * 32), "02000000" + "aa" * 32),
    (Nonce(b"\x11" * 16), "11" * 16),
    (Notify(NotifyType.COOKIE, b"\x01\x02"), "00004006" + "0102"),
    (Notify(NotifyType.REKEY_SA, b"", ProtocolId.ESP, b"\xde\xad\xbe\xef"), "03044009deadbeef"),
    (Delete(ProtocolId.IKE), "01000000"),
    (
        Delete(ProtocolId.ESP, (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02")),
        "030400020000000100000002",
    ),
    (VendorId(b"strongSwan"), b"strongSwan".hex()),
    (TSi((TS4,)), "01000000070000100000ffff0a0100000a01ffff"),
    (TSr((TS4, TS6)), ""),
    (
        ConfigPayload(
            CfgType.CFG_REQUEST,
            (
                ConfigAttribute(CfgAttribute.INTERNAL_IP4_ADDRESS),
                ConfigAttribute(CfgAttribute.INTERNAL_IP4_DNS),
            ),
        ),
        "010000000001000000030000",
    ),
    (EapPayload(bytes.fromhex("0201000a01626f62") + b"\x00\x00"), ""),
    (UnknownPayload(99, b"opaque"), b"opaque".hex()),
]


@pytest.mark.parametrize(("payload", "body_hex"), CASES, ids=lambda c: type(c).__name__)
def test_roundtrip_and_known_bodies(payload: Payload, body_hex: str) -> None:
    first, data = encode_chain([payload])
    assert first == payload.payload_type
    if body_hex:
        assert data[4:].hex() == body_hex
    assert decode_chain(first, data) == (payload,)


def _all_chain() -> tuple[int, bytes]:
    return encode_chain([p for p, _ in CASES])


def test_whole_chain_roundtrip() -> None:
    first, data = _all_chain()
    assert decode_chain(first, data) == tuple(p for p, _ in CASES)


def test_every_truncation_and_trailing_garbage_is_invalid_syntax() -> None:
    first, data = _all_chain()
    for n in range(len(data)):
        with pytest.raises(InvalidSyntax):
            decode_chain(first, data[:n])
    with pytest.raises(InvalidSyntax):
        decode_chain(first, data + b"\x00")


@pytest.mark.parametrize(("payload", "body_hex"), CASES, ids=lambda c: type(c).__name__)
def test_each_payload_body_checked_exactly(payload: Payload, body_hex: str) -> None:
    """Shorten the payload's own length by one octet (keeping the chain consistent)."""
    first, data = encode_chain([payload])
    if isinstance(payload, UnknownPayload | VendorId):
        return  # opaque bodies have no inner structure
    short = data[:2] + struct.pack("!H", len(data) - 1) + data[4:-1]
    try:
        decoded = decode_chain(first, short)
    except InvalidSyntax:
        return
    # bodies whose last field is open-ended (ID data, AUTH data, nonce...) legitimately parse
    assert decoded != (payload,)


def test_unknown_critical_payload_is_refused_with_its_type() -> None:
    first, data = encode_chain([Nonce(b"n" * 16), UnknownPayload(99, b"x", True)])
    with pytest.raises(UnsupportedCriticalPayload) as info:
        decode_chain(first, data)
    assert info.value.notify_type == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
    assert info.value.notify_data == b"\x63"


def test_critical_bit_on_a_known_payload_is_ignored() -> None:
    first, data = encode_chain([Nonce(b"n" * 16)])
    data = data[:1] + b"\x80" + data[2:]
    assert decode_chain(first, data) == (Nonce(b"n" * 16),)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("0000000801010004", "proposal with no transforms but count"),  # num transforms 4
        ("0200000801010000", "more proposals announced"),
        ("0000000c0103000003000008", "ESP SPI size 0"),
        ("0000000800010000", "proposal number 0"),
    ],
)
def test_bad_sa_structures(body: str, why: str) -> None:
    raw = bytes.fromhex(body)
    with pytest.raises(InvalidSyntax):
        SecurityAssociation.decode_body(raw)


def test_nonce_and_ts_and_delete_limits() -> None:
    with pytest.raises(InvalidSyntax):
        Nonce.decode_body(b"x" * 15)
    with pytest.raises(InvalidSyntax):
        Nonce.decode_body(b"x" * 257)
    with pytest.raises(InvalidSyntax):  # IPv4 selector claiming 40 octets
        TSi.decode_body(bytes.fromhex("0100000007000028") + bytes(32))
    with pytest.raises(InvalidSyntax):
        TSi.decode_body(bytes.fromhex("0100000009000010") + bytes(8))
    with pytest.raises(InvalidSyntax):  # SPIs for an IKE delete
        Delete.decode_body(bytes.fromhex("0104000100000001"))
    with pytest.raises(InvalidSyntax):  # EAP length disagrees with the payload
        EapPayload.decode_body(bytes.fromhex("0201000901"))


def test_header_version_and_length() -> None:
    msg = Message(
        b"\x01" * 8, bytes(8), ExchangeType.IKE_SA_INIT, 0, False, True, (Nonce(b"n" * 16),)
    )
    (data,) = encode_message(msg)
    h = IkeHeader.decode(data)
    assert (h.major, h.minor, h.length, h.next_payload) == (2, 0, len(data), PayloadType.NONCE)
    with pytest.raises(InvalidMajorVersion):
        IkeHeader.decode(data[:17] + b"\x30" + data[18:])
    with pytest.raises(InvalidSyntax):
        IkeHeader.decode(data + b"\x00")
    raw = decode_message(data)
    assert raw.plain().payloads == (Nonce(b"n" * 16),)
    assert raw.is_initiator and not raw.is_response


def test_sk_and_skf_end_the_chain() -> None:
    first, data = encode_chain([EncryptedPayload(PayloadType.IDi, b"\x00" * 32)])
    assert decode_chain(first, data) == (EncryptedPayload(PayloadType.IDi, b"\x00" * 32),)
    frag = EncryptedFragment(PayloadType.IDi, 1, 3, b"\x01" * 24)
    first, data = encode_chain([frag])
    assert decode_chain(first, data) == (frag,)
    with pytest.raises(InvalidSyntax):
        decode_chain(first, data[:4] + struct.pack("!HH", 4, 3) + data[8:])
    with pytest.raises(ValueError, match="last"):
        encode_chain([frag, Nonce(b"n" * 16)])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_fuzzed_datagrams_raise_only_protocol_errors(blob: bytes) -> None:
    data = blob
    if len(blob) >= 28:  # make the header length right so the payload parser is reached
        data = blob[:17] + b"\x20" + blob[18:24] + struct.pack("!I", len(blob)) + blob[28:]
    try:
        decode_message(data)
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=120))
def test_fuzzed_payload_bodies(ptype: int, body: bytes) -> None:
    data = struct.pack("!BBH", 0, 0, len(body) + 4) + body
    try:
        decode_chain(ptype, data)
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (TrafficSelector.from_network("10.1.0.0/16"), "10.1.0.0/16"),
        (TrafficSelector.from_network("10.1.0.5/32", 6, 80), "10.1.0.5/32[6/80]"),
        (TrafficSelector.from_network("2001:db8::/64", 17), "2001:db8::/64[17/0-65535]"),
        (
            TrafficSelector(
                ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.6"), 0, 1024, 2047
            ),
            "10.0.0.1..10.0.0.6[0/1024-2047]",
        ),
    ],
)
def test_traffic_selector_text_as_swanctl(ts: TrafficSelector, text: str) -> None:
    assert ts.text() == text
