"""Known-answer PA-TNC messages produced by strongSwan.

Sources (see /work/shared/vectors/README.md):
* strongswan-pa_tnc/*.bin: strongSwan's fuzzing seed corpus (strongswan/fuzzing-corpora,
  folder pa_tnc), messages from its IMCs/IMVs;
* strongswan-transcripts/*/pa-*.bin: PA-TNC messages captured on this machine from
  strongSwan 6.0.6's Test, Scanner and OS collectors/validators.

Every file decodes and re-encodes to the same octets, or is rejected with the PA-TNC error
listed in EXPECTED_ERRORS (code and offset).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nea.pa import (
    AssessmentResult,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    InvalidParameter,
    ItaCommand,
    ItaDeviceId,
    MaxAttributeSizeRequest,
    NumericVersion,
    OperationalStatus,
    PaErrorCode,
    PaMessage,
    PaTncError,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    RemediationInstructions,
    RemediationString,
    StringVersion,
    SwRequest,
    UnknownAttribute,
    UnsupportedAttributeInfo,
    process_message,
)

VECTORS = Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors"
SEEDS = VECTORS / "strongswan-pa_tnc"
TRANSCRIPTS = VECTORS / "strongswan-transcripts"

pytestmark = pytest.mark.skipif(
    not SEEDS.is_dir() or not TRANSCRIPTS.is_dir(),
    reason="shared strongSwan vectors (../shared/vectors) not present in this checkout",
)


def _files() -> list[Path]:
    if not SEEDS.is_dir() or not TRANSCRIPTS.is_dir():
        return []
    return sorted(SEEDS.glob("*.bin")) + sorted(TRANSCRIPTS.glob("*/pa-*.bin"))


# file name prefix -> (exception class, offset from the start of the message)
EXPECTED_ERRORS: dict[str, tuple[type[PaTncError], int]] = {
    # SW Inventory written in the pre-RFC 8412 draft layout (no Reserved octet between
    # Source ID and Software Identifier Length): the identifier length then reads as
    # 0x2073 = 8307 octets, more than remain; reported at that length field.
    "f1a628fe": (InvalidParameter, 46),
}


def _expected(path: Path) -> tuple[type[PaTncError], int] | None:
    for prefix, exp in EXPECTED_ERRORS.items():
        if path.name.startswith(prefix):
            return exp
    return None


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.name[:12]}"


def test_corpus_is_complete() -> None:
    assert len(list(SEEDS.glob("*.bin"))) == 18
    assert len(list(TRANSCRIPTS.glob("*/pa-*.bin"))) >= 25


@pytest.mark.parametrize("path", _files(), ids=_id)
def test_vector_decodes_and_reencodes_or_fails_cleanly(path: Path) -> None:
    data = path.read_bytes()
    expected = _expected(path)
    if expected is None:
        msg = PaMessage.parse(data)
        assert msg.serialize() == data
        assert PaMessage.parse(msg.serialize()) == msg
        json.dumps(msg.to_dict())  # JSON-able for nea-decode
        assert msg.describe().startswith("PA-TNC message v1")
    else:
        cls, offset = expected
        with pytest.raises(cls) as info:
            PaMessage.parse(data)
        assert info.value.offset == offset
        assert info.value.header == data[:8]
        result = process_message(data)
        assert result.message is None and result.decoded is None
        (err,) = result.errors
        assert err.error_code == cls.code
        assert err.info.offset == offset  # type: ignore[union-attr]
        assert err.info.header == data[:8]  # type: ignore[union-attr]


def _load(folder: str, name: str) -> PaMessage:
    return PaMessage.parse((TRANSCRIPTS / folder / name).read_bytes())


def test_os_collector_attributes() -> None:
    msg = _load("allow", "pa-imc-03.bin")
    assert msg.identifier == 0x73931CB3
    assert [type(a) for a in msg] == [
        ProductInformation, StringVersion, NumericVersion, OperationalStatus,
        ForwardingEnabled, FactoryDefaultPasswordEnabled, ItaDeviceId,
    ]
    assert msg.first(ProductInformation) == ProductInformation(9586, 0, "Debian")
    assert msg.first(StringVersion) == StringVersion("12 x86_64", "", "")
    assert msg.first(NumericVersion) == NumericVersion(12, 0, 0, 0, 0)
    status = msg.first(OperationalStatus)
    assert status is not None
    assert (status.status, status.result, status.last_use) == (3, 1, "2026-11-28T02:56:35Z")
    assert status.last_use_time is not None and status.last_use_time.year == 2026
    assert msg.first(FactoryDefaultPasswordEnabled) == FactoryDefaultPasswordEnabled(0)
    assert msg.first(ItaDeviceId) == ItaDeviceId("3d1219c7c4c5404aaa1f6d2a48adfda4")
    assert not any(a.noskip for a in msg)


def test_forwarding_enabled_allow_vs_forwarding() -> None:
    assert _load("allow", "pa-imc-03.bin").first(ForwardingEnabled) == ForwardingEnabled(0)
    assert _load("forwarding", "pa-imc-03.bin").first(ForwardingEnabled) == ForwardingEnabled(1)


@pytest.mark.parametrize("verdict", ["allow", "isolate", "block", "retry"])
def test_test_imc_command(verdict: str) -> None:
    msg = _load(verdict, "pa-imc-01.bin")
    assert msg.attributes == (ItaCommand(verdict, flags=0x80),)
    assert msg.attributes[0].noskip


def test_scanner_port_filter() -> None:
    msg = _load("allow", "pa-imc-02.bin")
    assert msg.attributes == (
        PortFilter((PortFilterEntry(False, 17, 500), PortFilterEntry(False, 17, 4500)),
                   flags=0x80),
    )


def test_assessment_results_per_verdict() -> None:
    assert _load("allow", "pa-imv-01.bin").attributes == (AssessmentResult(0),)
    assert _load("isolate", "pa-imv-01.bin").attributes == (AssessmentResult(1),)
    assert _load("block", "pa-imv-01.bin").attributes == (AssessmentResult(2),)


def test_os_validator_remediation_about_forwarding() -> None:
    msg = _load("forwarding", "pa-imv-02.bin")
    assert msg.first(AssessmentResult) == AssessmentResult(4)
    rem = msg.first(RemediationInstructions)
    assert rem is not None
    assert rem.parameters == RemediationString(
        "IP Packet Forwarding\n  Please disable the forwarding of IP packets", "en"
    )


def test_seed_german_remediation_and_swima_request() -> None:
    rem_msg = PaMessage.parse(next(SEEDS.glob("3e61888a*.bin")).read_bytes())
    rem = rem_msg.first(RemediationInstructions)
    assert rem is not None and isinstance(rem.parameters, RemediationString)
    assert rem.parameters.lang == "de"
    assert rem.parameters.text.startswith("Weiterleitung von IP Paketen")
    req_msg = PaMessage.parse(next(SEEDS.glob("a6cab54a*.bin")).read_bytes())
    assert req_msg.attributes == (
        SwRequest(9, 0, ("strongswan.org__strongSwan-5-6-2",)),
    )
    size_msg = PaMessage.parse(next(SEEDS.glob("64f804ca*.bin")).read_bytes())
    assert size_msg.first(MaxAttributeSizeRequest) == MaxAttributeSizeRequest(100000000, 65466)


def test_unsupported_noskip_pts_attribute_yields_error() -> None:
    data = next(SEEDS.glob("4159d7ac*.bin")).read_bytes()
    result = process_message(data)
    assert result.message is None
    assert result.decoded is not None
    assert isinstance(result.decoded.attributes[0], UnknownAttribute)
    (err,) = result.errors
    assert err.error_code == PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED
    assert err.info == UnsupportedAttributeInfo(data[:8], 0x80, 0x005597, 0x03000000)
    # what goes on the wire, field by field (RFC 5792 4.2.8.3)
    assert err.serialize() == bytes.fromhex(
        "00000000" "00000008" "00000024" "00000000" "00000003"
    ) + data[:8] + bytes.fromhex("80005597" "03000000")


def test_transcript_messages_need_no_error_reply() -> None:
    for path in sorted(TRANSCRIPTS.glob("*/pa-*.bin")):
        result = process_message(path.read_bytes())
        assert result.ok and result.message is not None, path


def test_describe_is_readable() -> None:
    text = _load("allow", "pa-imc-03.bin").describe().splitlines()
    assert text[0] == "PA-TNC message v1 id 0x73931cb3, 7 attributes"
    assert text[1] == (
        "  Product Information (0x000000/2): product_vendor_id=9586, product_id=0, "
        "product_name='Debian'"
    )
    ports = _load("allow", "pa-imc-02.bin").describe().splitlines()[1]
    assert ports == "  [NOSKIP] Port Filter (0x000000/6): udp/500 open, udp/4500 open"
    cmd = _load("isolate", "pa-imc-01.bin").describe().splitlines()[1]
    assert cmd == "  [NOSKIP] ITA Command (0x00902a/1): command='isolate'"
