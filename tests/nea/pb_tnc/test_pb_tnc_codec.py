"""PB-TNC batch and message codec: round trips, exact lengths, error offsets, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentResult,
    Batch,
    BatchType,
    InvalidParameter,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbError,
    PbErrorCode,
    PbExperimental,
    PbLanguagePreference,
    PbMessage,
    PbMutualCapability,
    PbNoskipTest,
    PbPa,
    PbPdpReferral,
    PbReasonString,
    PbRemediationParameters,
    PbTncError,
    UnknownMessage,
    UnsupportedMandatoryMessage,
    VersionNotSupported,
    decode_batch,
)
from nea.pb_tnc.messages import MUTUAL_FULL_DUPLEX, MUTUAL_HALF_DUPLEX, encode_message

# One table drives the encode and the decode test: (message, expected value bytes).
CASES: list[tuple[str, PbMessage, bytes]] = [
    ("experimental", PbExperimental(b"\x01\x02"), b"\x01\x02"),
    (
        "pa",
        PbPa(0x00902A, 1, 1, 0xFFFF, b"PA-TNC", pa_flags=0x80),
        bytes.fromhex("8000902a 00000001 0001ffff") + b"PA-TNC",
    ),
    ("assessment-result", PbAssessmentResult(AssessmentResult.NONCOMPLIANT_MAJOR), b"\0\0\0\x02"),
    (
        "access-recommendation",
        PbAccessRecommendation(AccessRecommendation.QUARANTINED),
        b"\0\0\0\x03",
    ),
    (
        "remediation-uri",
        PbRemediationParameters.uri("https://x.example/"),
        b"\0\0\0\0\0\0\0\x01https://x.example/",
    ),
    (
        "remediation-string",
        PbRemediationParameters.string("Bitte patchen", "de"),
        b"\0\0\0\0\0\0\0\x02" + b"\0\0\0\x0dBitte patchen\x02de",
    ),
    (
        "remediation-vendor",
        PbRemediationParameters(0x00902A, 7, b"opaque"),
        b"\x00\x00\x90\x2a\0\0\0\x07opaque",
    ),
    (
        "error-offset",
        PbError.with_offset(PbErrorCode.INVALID_PARAMETER, 0x1234),
        bytes.fromhex("80000000 00010000 00001234"),
    ),
    (
        "error-version",
        PbError.version_not_supported(3, 2, 2),
        bytes.fromhex("80000000 00040000 03020200"),
    ),
    (
        "error-vendor",
        PbError(7, b"anything", error_vendor_id=0x00902A, error_flags=0),
        bytes.fromhex("0000902a 00070000") + b"anything",
    ),
    ("language", PbLanguagePreference("en"), b"Accept-Language: en"),
    (
        "reason",
        PbReasonString("caf\u00e9", "fr"),
        b"\0\0\0\x05caf\xc3\xa9\x02fr",
    ),
    ("reason-empty", PbReasonString("", ""), b"\0\0\0\0\0"),
    ("noskip-test", PbNoskipTest(), b""),
    (
        "mutual-capability",
        PbMutualCapability(MUTUAL_HALF_DUPLEX),
        b"\x80\0\0\0",
    ),
    (
        "pdp-referral",
        PbPdpReferral.from_fqdn("pdp.example", 271),
        bytes.fromhex("00005597 00000000 0000010f") + b"pdp.example",
    ),
    ("unknown", UnknownMessage(0x00ABCD, 0x10, b"keep me", 0x40), b"keep me"),
]


@pytest.mark.parametrize(("name", "message", "value"), CASES, ids=[c[0] for c in CASES])
def test_encode(name: str, message: PbMessage, value: bytes) -> None:
    assert message.encode_value() == value
    wire = encode_message(message)
    assert len(wire) == 12 + len(value)
    assert int.from_bytes(wire[8:12], "big") == len(wire)


@pytest.mark.parametrize(("name", "message", "value"), CASES, ids=[c[0] for c in CASES])
def test_round_trip_in_a_batch(name: str, message: PbMessage, value: bytes) -> None:
    batch = Batch(BatchType.RESULT, True, (message, message))
    data = batch.encode()
    decoded = decode_batch(data)
    assert decoded == batch
    assert decoded.encode() == data


# Values ending in a free-form tail (a PA body, a URI, an FQDN...): only cutting into the
# fixed head is an error.  name -> size of the fixed head.
FREE_TAIL = {
    "pa": 12,
    "remediation-uri": 8,
    "remediation-vendor": 8,
    "pdp-referral": 12,
    "language": 17,
    "error-vendor": 8,
    "experimental": 0,
    "unknown": 0,
}


def _resized(wire: bytes, value_len: int, pad: bytes = b"") -> bytes:
    message = wire[:8] + (12 + value_len).to_bytes(4, "big") + wire[12 : 12 + value_len] + pad
    return struct.pack(">BBBBI", 2, 0x80, 0, 3, 8 + len(message)) + message


@pytest.mark.parametrize(("name", "message", "value"), CASES, ids=[c[0] for c in CASES])
def test_truncated_and_padded_message_values(name: str, message: PbMessage, value: bytes) -> None:
    wire = encode_message(message)
    head = FREE_TAIL.get(name)
    for n in range(len(value)):
        data = _resized(wire, n)
        if head is not None and n >= head:
            decode_batch(data)  # shorter free-form tail: still valid
        else:
            with pytest.raises(InvalidParameter) as info:
                decode_batch(data)
            assert 8 <= info.value.offset <= len(data)
    if head is None:
        with pytest.raises(InvalidParameter):
            decode_batch(_resized(wire + b"\0", len(value) + 1))


def test_message_flags_and_properties() -> None:
    pa = PbPa(0, 1, 2, 3, b"", pa_flags=0x80)
    assert pa.exclusive and pa.noskip and pa.message_type == (0, 1)
    assert not PbPa(0, 1, 2, 3, b"").exclusive
    assert PbMutualCapability(MUTUAL_FULL_DUPLEX).full_duplex
    assert not PbMutualCapability(MUTUAL_FULL_DUPLEX).half_duplex
    err = PbError.with_offset(PbErrorCode.LOCAL_ERROR, 9, fatal=False)
    assert (err.fatal, err.offset, err.version_info) == (False, 9, None)
    vendor_err = PbError(1, b"", error_vendor_id=0x00902A)
    assert vendor_err.ietf_code is None and vendor_err.offset is None
    assert PbRemediationParameters.string("x", "en").as_string == ("x", "en")
    assert PbRemediationParameters.string("x", "en").as_uri is None
    assert PbPdpReferral(0x00902A, 1, b"").fqdn is None
    with pytest.raises(ValueError):
        PbPa(0x1000000, 1, 1, 1, b"")
    with pytest.raises(ValueError):
        PbError(0x10000)


def test_language_preference_ranking() -> None:
    pref = PbLanguagePreference("de-CH, fr;q=0.8, en;q=0.9, it;q=0, *;q=0.1")
    assert pref.ranked() == ["de-ch", "en", "fr", "*"]


@pytest.mark.parametrize(
    ("message", "offset", "error"),
    [
        # message header problems (batch offsets: the message starts at 8)
        (struct.pack(">III", 0xFFFFFF, 1, 12), 9, InvalidParameter),  # reserved vendor
        (struct.pack(">III", 0, 0xFFFFFFFF, 12), 12, InvalidParameter),  # reserved type
        (struct.pack(">III", 0, 0, 11), 16, InvalidParameter),  # length < header
        (struct.pack(">III", 0, 0, 13), 16, InvalidParameter),  # length > batch
        (struct.pack(">III", 0x80000000, 0, 12), 8, UnsupportedMandatoryMessage),
        # value problems
        (struct.pack(">III", 0, 2, 16) + b"\0\0\0\x05", 20, InvalidParameter),  # result 5
        (struct.pack(">III", 0, 3, 16) + b"\0\0\0\x00", 22, InvalidParameter),  # rec 0
        (struct.pack(">III", 0, 3, 17) + b"\0\0\0\x01\0", 16, InvalidParameter),  # too long
        (struct.pack(">III", 0, 1, 23) + b"\0" * 11, 16, InvalidParameter),  # PB-PA short
        (
            struct.pack(">III", 0, 1, 24) + bytes.fromhex("00ffffff 00000001 00010001"),
            21,
            InvalidParameter,
        ),  # PA vendor reserved
        (
            struct.pack(">III", 0, 1, 24) + bytes.fromhex("00000000 ffffffff 00010001"),
            24,
            InvalidParameter,
        ),  # PA subtype reserved
        (struct.pack(">III", 0, 6, 14) + b"en", 20, InvalidParameter),  # no Accept-Language
        (struct.pack(">III", 0, 7, 18) + b"\0\0\0\x09\x00\x00", 20, InvalidParameter),
        (struct.pack(">III", 0, 7, 19) + b"\0\0\0\x01a\x02e", 25, InvalidParameter),
        (struct.pack(">III", 0, 7, 19) + b"\0\0\0\x01\x00\x01e", 24, InvalidParameter),
        (
            struct.pack(">III", 0, 5, 23) + bytes.fromhex("80000000 00010000 000000"),
            28,
            InvalidParameter,
        ),  # IETF error with a 3-byte offset
        (struct.pack(">III", 0x902A, 0, 13) + b"x", 16, InvalidParameter),  # noskip-test value
        (
            struct.pack(">III", 0x5597, 1, 23) + bytes.fromhex("00005597 00000000 000001"),
            28,
            InvalidParameter,
        ),  # PDP FQDN identifier too short
    ],
)
def test_error_offsets(message: bytes, offset: int, error: type[PbTncError]) -> None:
    data = struct.pack(">BBBBI", 2, 0x80, 0, 3, 8 + len(message)) + message
    with pytest.raises(error) as info:
        decode_batch(data)
    assert info.value.offset == offset
    assert info.value.to_message().offset == offset


def test_version_not_supported() -> None:
    with pytest.raises(VersionNotSupported) as info:
        decode_batch(b"\x03\x00\x00\x01\x00\x00\x00\x08")
    message = info.value.to_message()
    assert message.version_info == (3, 2, 2)
    assert encode_message(message)[12:] == bytes.fromhex("80000000 00040000 03020200")


def test_header_fields() -> None:
    data = Batch(BatchType.SRETRY, True).encode()
    assert data == bytes.fromhex("02800005 00000008")
    odd = bytes.fromhex("02ff fff1 00000008")  # every reserved bit set
    batch = decode_batch(odd)
    assert (batch.batch_type, batch.from_server, batch.reserved) == (BatchType.CDATA, True, 0x7FFFF)
    assert batch.encode() == odd


def test_every_prefix_and_trailing_garbage_of_a_batch() -> None:
    batch = Batch(
        BatchType.CDATA,
        False,
        (PbLanguagePreference("en"), PbPa(0, 1, 1, 0xFFFF, b"\x01\0\0\0\0\0\0\x01")),
    )
    data = batch.encode()
    for n in range(len(data)):
        with pytest.raises(InvalidParameter):
            decode_batch(data[:n])
    with pytest.raises(InvalidParameter) as info:
        decode_batch(data + b"\0")
    assert info.value.offset == 4
    # garbage the batch length admits: fails at the garbage's own offset
    padded = data[:4] + (len(data) + 3).to_bytes(4, "big") + data[8:] + b"abc"
    with pytest.raises(InvalidParameter) as info:
        decode_batch(padded)
    assert info.value.offset == len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_pb_tnc_errors(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except PbTncError as exc:
        assert exc.to_message().ietf_code is not None
    else:
        assert batch.encode() == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100), st.integers(1, 6), st.booleans())
def test_random_message_area_behind_a_valid_header(body: bytes, btype: int, d: bool) -> None:
    data = struct.pack(">BBBBI", 2, 0x80 if d else 0, 0, btype, 8 + len(body)) + body
    try:
        batch = decode_batch(data)
    except PbTncError as exc:
        assert 8 <= exc.offset < len(data) or isinstance(exc, InvalidParameter)
    else:
        assert batch.encode() == data


@settings(max_examples=200, deadline=None)
@given(
    vendor=st.integers(0, 0xFFFFFE),
    subtype=st.integers(0, 0xFFFFFFFE),
    collector=st.integers(0, 0xFFFF),
    validator=st.integers(0, 0xFFFF),
    flags=st.integers(0, 0xFF),
    body=st.binary(max_size=64),
    reason=st.text(max_size=20).filter(lambda s: not s.endswith("\0")),
    lang=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", max_size=8),
)
def test_structured_round_trips(
    vendor: int,
    subtype: int,
    collector: int,
    validator: int,
    flags: int,
    body: bytes,
    reason: str,
    lang: str,
) -> None:
    messages: tuple[PbMessage, ...] = (
        PbPa(vendor, subtype, collector, validator, body, pa_flags=flags),
        PbReasonString(reason, lang),
        PbRemediationParameters.string(reason, lang),
    )
    batch = Batch(BatchType.RESULT, True, messages)
    assert decode_batch(batch.encode()) == batch
