"""Receive-side error handling: every failure becomes the right PA-TNC Error on the wire."""

from __future__ import annotations

import pytest

from nea.pa import (
    ATTRIBUTE_REGISTRY,
    AttributeHeader,
    InstalledPackages,
    InvalidParameter,
    InvalidParameterInfo,
    ItaCommand,
    LocalPaTncError,
    NumericVersion,
    OperationalStatus,
    Package,
    PaErrorCode,
    PaMessage,
    PaTncError,
    PaTncErrorAttribute,
    ReservedErrorInfo,
    StringVersion,
    SwEvent,
    SwIdentifierEvents,
    SwRecord,
    UnknownAttribute,
    UnsupportedMandatoryAttribute,
    VersionNotSupported,
    VersionNotSupportedInfo,
    error_message,
    process_message,
)

HDR = bytes.fromhex("01000000deadbeef")


def test_exceptions_share_one_root_and_carry_codes() -> None:
    # RFC 5792 4.2.8 code values
    assert (int(PaTncError.code), int(InvalidParameter.code), int(VersionNotSupported.code),
            int(UnsupportedMandatoryAttribute.code)) == (0, 1, 2, 3)
    assert UnsupportedMandatoryAttribute.code is PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED
    for cls in (InvalidParameter, VersionNotSupported, UnsupportedMandatoryAttribute,
                LocalPaTncError):
        assert issubclass(cls, PaTncError)


def test_version_not_supported() -> None:
    data = bytes.fromhex("02000000deadbeef")
    with pytest.raises(VersionNotSupported) as info:
        PaMessage.parse(data)
    assert info.value.offset == 0
    result = process_message(data)
    assert result.decoded is None and result.message is None
    (err,) = result.errors
    assert err.info == VersionNotSupportedInfo(data, 1, 1)
    # RFC 5792 4.2.8.2 on the wire: header copy, max 1, min 1, reserved
    assert err.serialize_value() == bytes.fromhex("00000000" "00000002") + data + bytes.fromhex(
        "01010000"
    )


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x00\x00\x00\xde\xad\xbe"])
def test_message_shorter_than_header(data: bytes) -> None:
    with pytest.raises(InvalidParameter) as info:
        PaMessage.parse(data)
    assert info.value.offset == 0
    (err,) = process_message(data).errors
    assert err.info == InvalidParameterInfo(data.ljust(8, b"\x00"), 0)


def test_empty_message_is_valid() -> None:
    msg = PaMessage.parse(HDR)
    assert msg == PaMessage(0xDEADBEEF)
    assert msg.serialize() == HDR
    assert process_message(HDR).ok


def _attr(
    flags: int, vendor: int, attr_type: int, value: bytes, length: int | None = None
) -> bytes:
    n = 12 + len(value) if length is None else length
    return AttributeHeader(flags, vendor, attr_type, n).serialize() + value


@pytest.mark.parametrize(
    ("attr", "offset"),
    [
        (_attr(0, 0, 9, b"\x00\x00\x00\x00", length=11), 8 + 8),  # length below 12
        (_attr(0, 0, 9, b"\x00\x00\x00\x00", length=17), 8 + 8),  # length past the end
        (_attr(0, 0xFFFFFF, 9, b""), 8 + 1),  # reserved vendor ID
        (_attr(0, 0, 0xFFFFFFFF, b""), 8 + 4),  # reserved type
        (_attr(0, 0, 9, b"\x00\x00\x00"), 8 + 12),  # Assessment Result needs 4 octets
        (_attr(0, 0, 9, b"\x00\x00\x00\x00\x00"), 8 + 16),  # ... and not 5
    ],
)
def test_attribute_level_offsets(attr: bytes, offset: int) -> None:
    data = HDR + attr
    with pytest.raises(InvalidParameter) as info:
        PaMessage.parse(data)
    assert info.value.offset == offset
    (err,) = process_message(data).errors
    assert err == PaTncErrorAttribute(0, 1, InvalidParameterInfo(HDR, offset))


def test_offset_counts_preceding_attributes() -> None:
    first = ItaCommand("allow").serialize()  # 17 octets
    bad = _attr(0, 0, 7, bytes.fromhex("0000" "0001" "03" "610062" "01" "31"))  # NUL in name
    with pytest.raises(InvalidParameter) as info:
        PaMessage.parse(HDR + first + bad)
    # message header + first attribute + attr header + reserved/count + length octet + "a"
    assert info.value.offset == 8 + 17 + 12 + 4 + 1 + 1


def test_field_errors_point_at_the_field() -> None:
    # String Version whose second length prefix claims more than is there
    value = bytes.fromhex("01" "41" "05" "42")
    with pytest.raises(InvalidParameter) as info:
        StringVersion.from_value(value, base=100)
    assert info.value.offset == 102
    # Operational Status with a time that is not RFC 3339
    bad_time = bytes.fromhex("0301" "0000") + b"2026-11-28 02:56:35Z"
    with pytest.raises(InvalidParameter) as info:
        OperationalStatus.from_value(bad_time, base=0)
    assert info.value.offset == 4
    # invalid UTF-8 inside the product version
    with pytest.raises(InvalidParameter) as info:
        StringVersion.from_value(bytes.fromhex("02" "41ff" "00" "00"), base=0)
    assert info.value.offset == 2
    # event action 0 is not defined (RFC 8412 5.9)
    ev = SwIdentifierEvents(
        1, 1, 1, 1, (SwEvent(1, "2026-11-28T02:56:35Z", 1, SwRecord(1, 0, 0, 0, "x")),)
    )
    raw = bytearray(ev.serialize_value())
    action_at = 20 + 4 + 20 + 4 + 4 + 1
    assert raw[action_at] == 1
    raw[action_at] = 0
    with pytest.raises(InvalidParameter) as info:
        SwIdentifierEvents.from_value(bytes(raw), base=0)
    assert info.value.offset == action_at


def test_unknown_without_noskip_is_skipped_silently() -> None:
    data = HDR + _attr(0, 0x1234, 7, b"hello") + ItaCommand("allow").serialize()
    result = process_message(data)
    assert result.ok
    assert result.message is not None
    assert result.message.attributes[0] == UnknownAttribute(0x1234, 7, b"hello")
    assert result.message.serialize() == data


def test_unknown_with_noskip_yields_unsupported_mandatory_attribute() -> None:
    unknown = _attr(0x80, 0x1234, 7, b"hello")
    data = HDR + ItaCommand("allow").serialize() + unknown + _attr(0x80, 0x1234, 8, b"")
    result = process_message(data)
    assert result.message is None  # RFC 5792: the message must not be processed
    assert result.decoded is not None and len(result.decoded.attributes) == 3
    assert [e.error_code for e in result.errors] == [3, 3]
    first = result.errors[0]
    assert first.serialize() == bytes.fromhex(
        "00000000" "00000008" "00000024" "00" "000000" "00000003"
    ) + HDR + bytes.fromhex("80" "001234" "00000007")


def test_supported_set_restricts_what_a_validator_accepts() -> None:
    data = HDR + ItaCommand("allow", flags=0x80).serialize() + NumericVersion(1).serialize()
    assert process_message(data).ok
    only_ietf = {k for k in ATTRIBUTE_REGISTRY if k[0] == 0}
    result = process_message(data, supported=only_ietf)
    assert not result.ok
    assert result.errors[0].info.attr_type == 1  # type: ignore[union-attr]


def test_error_to_attribute_and_reply_roundtrip() -> None:
    exc = InvalidParameter("bad", offset=20, header=HDR)
    reply = error_message([exc.to_attribute()], identifier=7)
    parsed = PaMessage.parse(reply.serialize())
    assert parsed == reply
    assert parsed.attributes[0] == PaTncErrorAttribute(0, 1, InvalidParameterInfo(HDR, 20))
    reserved = PaTncError("generic", header=HDR).to_attribute()
    assert reserved.info == ReservedErrorInfo(HDR)
    assert "PA-TNC Error" in parsed.describe() and "INVALID_PARAMETER" in parsed.describe()


def test_local_errors_for_unencodable_values() -> None:
    with pytest.raises(LocalPaTncError):
        NumericVersion(2**32).serialize()
    with pytest.raises(LocalPaTncError):
        PaTncErrorAttribute(0, 1, ReservedErrorInfo(HDR)).serialize()
    with pytest.raises(LocalPaTncError):
        StringVersion("x" * 256).serialize()
    with pytest.raises(LocalPaTncError):
        OperationalStatus(3, 1, "yesterday").serialize()
    with pytest.raises(LocalPaTncError):
        InstalledPackages(tuple(Package("p", "1") for _ in range(0x10000))).serialize()
    assert issubclass(LocalPaTncError, ValueError)


def test_random_identifier_when_not_given() -> None:
    ids = {PaMessage.create([]).identifier for _ in range(8)}
    assert len(ids) > 1
