"""One table of hand-encoded cases drives both parsing and serialising every attribute type.

The expected octets are written out field by field from the layouts in RFC 5792 4.2,
RFC 8412 5 and the ITA / TCG segmentation layouts, not produced by the code under test.
"""

from __future__ import annotations

import pytest

from nea.pa import (
    ATTRIBUTE_REGISTRY,
    AssessmentResult,
    Attribute,
    AttributeEnvelope,
    AttributeRequest,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    InstalledPackages,
    InvalidParameter,
    InvalidParameterInfo,
    ItaCommand,
    ItaDeviceId,
    ItaDummy,
    ItaGetSettings,
    ItaSetting,
    ItaSettings,
    ItaStartAngel,
    ItaStopAngel,
    MaxAttributeSizeRequest,
    MaxAttributeSizeResponse,
    NextSegment,
    NumericVersion,
    OperationalStatus,
    Package,
    PaMessage,
    PaTncError,
    PaTncErrorAttribute,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    RawErrorInfo,
    RemediationInstructions,
    RequestedAttribute,
    ReservedErrorInfo,
    StringVersion,
    SwEvent,
    SwEvents,
    SwIdentifierEvents,
    SwIdentifierInventory,
    SwimaErrorInfo,
    SwimaFulfillmentErrorInfo,
    SwimaResponseTooLargeInfo,
    SwInventory,
    SwRecord,
    SwRequest,
    UnknownAttribute,
    UnsupportedAttributeInfo,
    VersionNotSupportedInfo,
)
from nea.pa import (
    Testing as IetfTesting,
)
from nea.pa._wire import Reader
from nea.pa.attribute import parse_attribute

HDR = bytes.fromhex("0100000028719daf")  # a PA-TNC message header to copy into errors
TS = b"2026-11-28T02:56:35Z".hex()


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


# (id, attribute, full encoding incl. 12-octet header, strict)
# strict: every proper prefix of the value and the value plus one garbage octet are invalid.
CASES: list[tuple[str, Attribute, bytes, bool]] = [
    ("testing", IetfTesting(b"\x01\x02"), h("00000000", "00000000", "0000000e", "0102"), False),
    (
        "attribute-request",
        AttributeRequest((RequestedAttribute(0, 2), RequestedAttribute(0x902A, 8))),
        h("00000000", "00000001", "0000001c", "00000000", "00000002", "0000902a", "00000008"),
        False,
    ),
    (
        "product-information",
        ProductInformation(9586, 0, "Debian"),
        h("00000000", "00000002", "00000017", "002572", "0000", b"Debian".hex()),
        False,
    ),
    (
        "numeric-version",
        NumericVersion(12, 1, 2, 3, 4),
        h("00000000", "00000003", "0000001c", "0000000c", "00000001", "00000002", "0003",
          "0004"),
        True,
    ),
    (
        "string-version",
        StringVersion("12 x86_64", "b7", "c"),
        h("00000000", "00000004", "0000001b", "09", b"12 x86_64".hex(), "02", b"b7".hex(),
          "01", "63"),
        True,
    ),
    (
        "operational-status",
        OperationalStatus(3, 1, "2026-11-28T02:56:35Z"),
        h("00000000", "00000005", "00000024", "03", "01", "0000", TS),
        True,
    ),
    (
        "port-filter",
        PortFilter((PortFilterEntry(False, 17, 500), PortFilterEntry(True, 6, 22))),
        h("00000000", "00000006", "00000014", "00", "11", "01f4", "01", "06", "0016"),
        False,
    ),
    (
        "installed-packages",
        InstalledPackages((Package("bash", "5.2"),)),
        h("00000000", "00000007", "00000019", "0000", "0001", "04", b"bash".hex(), "03",
          b"5.2".hex()),
        True,
    ),
    (
        "error-reserved",
        PaTncErrorAttribute(0, 0, ReservedErrorInfo(HDR)),
        h("00000000", "00000008", "0000001c", "00000000", "00000000", HDR.hex()),
        True,
    ),
    (
        "error-invalid-parameter",
        PaTncErrorAttribute(0, 1, InvalidParameterInfo(HDR, 20)),
        h("00000000", "00000008", "00000020", "00000000", "00000001", HDR.hex(), "00000014"),
        True,
    ),
    (
        "error-version-not-supported",
        PaTncErrorAttribute(0, 2, VersionNotSupportedInfo(HDR, 1, 1)),
        h("00000000", "00000008", "00000020", "00000000", "00000002", HDR.hex(), "01", "01",
          "0000"),
        True,
    ),
    (
        "error-attribute-type-not-supported",
        PaTncErrorAttribute(0, 3, UnsupportedAttributeInfo(HDR, 0x80, 0x902A, 0x99)),
        h("00000000", "00000008", "00000024", "00000000", "00000003", HDR.hex(), "80",
          "00902a", "00000099"),
        True,
    ),
    (
        "error-swima",
        PaTncErrorAttribute(0, 4, SwimaErrorInfo(7, "oops")),
        h("00000000", "00000008", "0000001c", "00000000", "00000004", "00000007",
          b"oops".hex()),
        False,
    ),
    (
        "error-swima-too-large",
        PaTncErrorAttribute(0, 6, SwimaResponseTooLargeInfo(7, 1000, "big")),
        h("00000000", "00000008", "0000001f", "00000000", "00000006", "00000007", "000003e8",
          b"big".hex()),
        False,
    ),
    (
        "error-swima-fulfillment",
        PaTncErrorAttribute(
            0, 7, SwimaFulfillmentErrorInfo(5, 0, 6, SwimaResponseTooLargeInfo(5, 10, "x"))
        ),
        h("00000000", "00000008", "00000029", "00000000", "00000007", "00000005", "00000000",
          "00000006", "00000005", "0000000a", "78"),
        False,
    ),
    (
        "error-vendor-specific",
        PaTncErrorAttribute(0x902A, 1, RawErrorInfo(b"abc")),
        h("00000000", "00000008", "00000017", "0000902a", "00000001", b"abc".hex()),
        False,
    ),
    (
        "assessment-result",
        AssessmentResult(1),
        h("00000000", "00000009", "00000010", "00000001"),
        True,
    ),
    (
        "remediation-uri",
        RemediationInstructions.from_uri("https://x/"),
        h("00000000", "0000000a", "0000001e", "00000000", "00000001", b"https://x/".hex()),
        False,
    ),
    (
        "remediation-string",
        RemediationInstructions.from_string("Fix it", "en"),
        h("00000000", "0000000a", "00000021", "00000000", "00000002", "00000006",
          b"Fix it".hex(), "02", b"en".hex()),
        True,
    ),
    (
        "remediation-vendor",
        RemediationInstructions(0x902A, 5, b"\x01"),
        h("00000000", "0000000a", "00000015", "0000902a", "00000005", "01"),
        False,
    ),
    (
        "forwarding-enabled",
        ForwardingEnabled(2),
        h("00000000", "0000000b", "00000010", "00000002"),
        True,
    ),
    (
        "factory-default-password",
        FactoryDefaultPasswordEnabled(1),
        h("00000000", "0000000c", "00000010", "00000001"),
        True,
    ),
    (
        "sw-request",
        SwRequest(9, 1, ("a/b",), 0x20),
        h("00000000", "0000000d", "0000001d", "20", "000001", "00000009", "00000001", "0003",
          b"a/b".hex()),
        True,
    ),
    (
        "sw-identifier-inventory",
        SwIdentifierInventory(9, 0x11223344, 1, (SwRecord(0, 0, 0, 2, "id", "loc"),)),
        h("00000000", "0000000e", "0000002f", "00", "000001", "00000009", "11223344",
          "00000001", "00000000", "000000", "00", "02", "00", "0002", b"id".hex(), "0003",
          b"loc".hex()),
        True,
    ),
    (
        "sw-inventory",
        SwInventory(9, 0x11223344, 1, (SwRecord(0, 0, 0, 2, "id", "loc", b"<x/>"),)),
        h("00000000", "00000010", "00000037", "00", "000001", "00000009", "11223344",
          "00000001", "00000000", "000000", "00", "02", "00", "0002", b"id".hex(), "0003",
          b"loc".hex(), "00000004", b"<x/>".hex()),
        True,
    ),
    (
        "sw-identifier-events",
        SwIdentifierEvents(
            9, 7, 3, 3, (SwEvent(3, "2026-11-28T02:56:35Z", 1, SwRecord(5, 0, 0, 0, "id")),)
        ),
        h("00000000", "0000000f", "00000048", "00", "000001", "00000009", "00000007",
          "00000003", "00000003", "00000003", TS, "00000005", "000000", "00", "00", "01",
          "0002", b"id".hex(), "0000"),
        True,
    ),
    (
        "sw-events",
        SwEvents(
            9, 7, 3, 3,
            (SwEvent(3, "2026-11-28T02:56:35Z", 2, SwRecord(5, 0, 0, 0, "id", "", b"r")),),
        ),
        h("00000000", "00000011", "0000004d", "00", "000001", "00000009", "00000007",
          "00000003", "00000003", "00000003", TS, "00000005", "000000", "00", "00", "02",
          "0002", b"id".hex(), "0000", "00000001", "72"),
        True,
    ),
    (
        "ita-command",
        ItaCommand("allow", flags=0x80),
        h("80", "00902a", "00000001", "00000011", b"allow".hex()),
        False,
    ),
    ("ita-dummy", ItaDummy.of_size(3), h("00", "00902a", "00000002", "0000000f", "dddddd"),
     False),
    (
        "ita-get-settings",
        ItaGetSettings(("a", "bc")),
        h("00", "00902a", "00000003", "00000017", "00000002", "0001", "61", "0002", "6263"),
        True,
    ),
    (
        "ita-settings",
        ItaSettings((ItaSetting("a", b"1"),)),
        h("00", "00902a", "00000004", "00000016", "00000001", "0001", "61", "0001", "31"),
        True,
    ),
    ("ita-start-angel", ItaStartAngel(), h("00", "00902a", "00000005", "0000000c"), True),
    ("ita-stop-angel", ItaStopAngel(), h("00", "00902a", "00000006", "0000000c"), True),
    (
        "ita-device-id",
        ItaDeviceId("abc"),
        h("00", "00902a", "00000008", "0000000f", b"abc".hex()),
        False,
    ),
    (
        "tcg-max-size-request",
        MaxAttributeSizeRequest(100000000, 65466),
        h("00", "005597", "00000021", "00000014", "05f5e100", "0000ffba"),
        True,
    ),
    (
        "tcg-max-size-response",
        MaxAttributeSizeResponse(100000000, 65466),
        h("00", "005597", "00000022", "00000014", "05f5e100", "0000ffba"),
        True,
    ),
    (
        "tcg-envelope",
        AttributeEnvelope(1, b"xy", 0xC0),
        h("00", "005597", "00000023", "00000012", "c0", "000001", "7879"),
        False,
    ),
    ("tcg-next-segment", NextSegment(1), h("00", "005597", "00000024", "00000010", "00",
                                             "000001"), True),
    (
        "tcg-next-segment-cancel",
        NextSegment.cancel_request(2),
        h("00", "005597", "00000024", "00000010", "81", "000002"),
        True,
    ),
    (
        "unknown-noskip",
        UnknownAttribute(0x1234, 0x55, b"zz", flags=0x80),
        h("80", "001234", "00000055", "0000000e", "7a7a"),
        False,
    ),
]

IDS = [c[0] for c in CASES]


def test_table_covers_every_registered_type() -> None:
    covered = {a.key for _, a, _, _ in CASES}
    assert set(ATTRIBUTE_REGISTRY) <= covered


@pytest.mark.parametrize(("name", "attr", "wire", "strict"), CASES, ids=IDS)
def test_serialize(name: str, attr: Attribute, wire: bytes, strict: bool) -> None:
    assert attr.serialize() == wire


@pytest.mark.parametrize(("name", "attr", "wire", "strict"), CASES, ids=IDS)
def test_parse(name: str, attr: Attribute, wire: bytes, strict: bool) -> None:
    reader = Reader(wire)
    assert parse_attribute(reader) == attr
    assert reader.remaining == 0
    # and inside a message, with the message header in front
    msg = PaMessage.parse(HDR + wire)
    assert msg.attributes == (attr,)
    assert msg.identifier == 0x28719DAF
    assert msg.serialize() == HDR + wire


@pytest.mark.parametrize(("name", "attr", "wire", "strict"), CASES, ids=IDS)
def test_truncated_attribute_rejected_at_the_right_offset(
    name: str, attr: Attribute, wire: bytes, strict: bool
) -> None:
    for cut in range(1, len(wire)):
        with pytest.raises(InvalidParameter) as info:
            PaMessage.parse(HDR + wire[:cut])
        # header cut short: reported at the attribute; value cut short: at its length field
        assert info.value.offset == (8 if cut < 12 else 16), cut
        assert info.value.header == HDR


@pytest.mark.parametrize(("name", "attr", "wire", "strict"), CASES, ids=IDS)
def test_trailing_garbage_after_message_rejected(
    name: str, attr: Attribute, wire: bytes, strict: bool
) -> None:
    with pytest.raises(PaTncError) as info:
        PaMessage.parse(HDR + wire + b"\x00\x01\x02")
    assert info.value.offset == 8 + len(wire)  # the incomplete next attribute header


def _with_value(attr: Attribute, value: bytes) -> bytes:
    head = attr.serialize()[:8]
    return HDR + head + (12 + len(value)).to_bytes(4, "big") + value


@pytest.mark.parametrize(
    ("name", "attr", "wire"), [(c[0], c[1], c[2]) for c in CASES if c[3]],
    ids=[c[0] for c in CASES if c[3]],
)
def test_strict_values_reject_short_and_long_values(
    name: str, attr: Attribute, wire: bytes
) -> None:
    value = wire[12:]
    cls = type(attr)
    for cut in range(len(value)):
        with pytest.raises(InvalidParameter) as info:
            cls.from_value(value[:cut], base=20)
        assert 20 <= info.value.offset <= 20 + cut, (cut, info.value.offset)
    with pytest.raises(InvalidParameter) as info:
        cls.from_value(value + b"\x00", base=20)
    assert info.value.offset >= 20
    if isinstance(attr, PaTncErrorAttribute):
        # a malformed PA-TNC Error is kept raw in a message, never answered with an error
        msg = PaMessage.parse(_with_value(attr, value[:-1]))
        assert isinstance(msg.attributes[0], UnknownAttribute)
        assert msg.serialize() == _with_value(attr, value[:-1])
    else:
        for bad in ([value[:-1]] if value else []) + [value + b"\x00"]:
            with pytest.raises(InvalidParameter):
                PaMessage.parse(_with_value(attr, bad))
