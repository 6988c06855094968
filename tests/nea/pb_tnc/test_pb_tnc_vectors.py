"""Known-answer PB-TNC batches from strongSwan.

Sources: ``../shared/vectors/strongswan-pb_tnc/*.bin`` is strongSwan's fuzzing seed corpus
(``strongswan/fuzzing-corpora``, folder ``pb_tnc``); ``strongswan-transcripts/*/NN-*.bin``
are conversations between strongSwan 6.0.6's TNC client and server captured on this machine
(see the README in that folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentResult,
    BatchType,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbLanguagePreference,
    PbPa,
    PbPdpReferral,
    PbReasonString,
    PbTncError,
    decode_batch,
)
from tests.nea.pb_tnc.pbtnc_fakes import PB_TNC_CORPUS, TRANSCRIPTS

if not TRANSCRIPTS.is_dir() or not PB_TNC_CORPUS.is_dir():
    pytest.skip(
        "shared vectors (../shared/vectors) absent: not a full nea-gateway workspace",
        allow_module_level=True,
    )

CORPUS_FILES = sorted(PB_TNC_CORPUS.glob("*.bin"))
TRANSCRIPT_FILES = sorted(TRANSCRIPTS.glob("*/[0-9][0-9]-*.bin"))


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.name[:16]}"


def test_vector_sets_are_complete() -> None:
    assert len(CORPUS_FILES) == 6
    assert {p.parent.name for p in TRANSCRIPT_FILES} == {
        "allow",
        "isolate",
        "block",
        "forwarding",
        "retry",
    }


@pytest.mark.parametrize("path", CORPUS_FILES + TRANSCRIPT_FILES, ids=_id)
def test_decodes_and_reencodes_identically(path: Path) -> None:
    data = path.read_bytes()
    try:
        batch = decode_batch(data)
    except PbTncError as exc:  # a seed may be deliberately odd: then a clean PB-Error
        message = exc.to_message()
        assert message.ietf_code is not None
        return
    assert batch.encode() == data


@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=_id)
def test_transcript_file_name_matches_batch(path: Path) -> None:
    _, direction, type_name = path.stem.split("-")
    batch = decode_batch(path.read_bytes())
    assert batch.batch_type is BatchType[type_name]
    assert batch.from_server is (direction == "s2c")


def test_every_transcript_batch_decodes_without_error() -> None:
    # stronger than the parametrised test: strongSwan's own conversations must all parse
    for path in TRANSCRIPT_FILES:
        decode_batch(path.read_bytes())


@pytest.mark.parametrize(
    ("folder", "recommendation", "evaluation"),
    [
        ("allow", AccessRecommendation.ALLOWED, AssessmentResult.COMPLIANT),
        ("isolate", AccessRecommendation.QUARANTINED, AssessmentResult.NONCOMPLIANT_MINOR),
        ("block", AccessRecommendation.DENIED, AssessmentResult.NONCOMPLIANT_MAJOR),
        ("forwarding", AccessRecommendation.ALLOWED, AssessmentResult.COMPLIANT),
        ("retry", AccessRecommendation.ALLOWED, AssessmentResult.DONT_KNOW),
    ],
)
def test_result_batch_verdict(
    folder: str, recommendation: AccessRecommendation, evaluation: AssessmentResult
) -> None:
    (path,) = (TRANSCRIPTS / folder).glob("*-s2c-RESULT.bin")
    batch = decode_batch(path.read_bytes())
    recs = [m for m in batch.messages if isinstance(m, PbAccessRecommendation)]
    results = [m for m in batch.messages if isinstance(m, PbAssessmentResult)]
    assert [r.recommendation for r in recs] == [recommendation]
    assert [r.result for r in results] == [evaluation]
    assert results[0].noskip and not recs[0].noskip  # strongSwan's flags


@pytest.mark.parametrize("folder", ["allow", "isolate", "block", "forwarding", "retry"])
def test_first_cdata_starts_with_language_preference(folder: str) -> None:
    batch = decode_batch((TRANSCRIPTS / folder / "01-c2s-CDATA.bin").read_bytes())
    first = batch.messages[0]
    assert isinstance(first, PbLanguagePreference)
    assert first.languages == "en"
    assert first.encode_value() == b"Accept-Language: en"
    pas = [m for m in batch.messages[1:] if isinstance(m, PbPa)]
    assert len(pas) == 3 == len(batch.messages) - 1
    # one PB-PA per collector: Test (ITA/1), Scanner (IETF firewall 5), OS (IETF OS 1)
    assert [(m.pa_vendor_id, m.pa_subtype, m.collector_id) for m in pas] == [
        (0x00902A, 1, 1),
        (0, 5, 2),
        (0, 1, 3),
    ]
    assert all(m.validator_id == 0xFFFF and not m.exclusive and m.noskip for m in pas)
    assert pas[0].body == (TRANSCRIPTS / folder / "pa-imc-01.bin").read_bytes()


def test_reason_string_of_block() -> None:
    batch = decode_batch((TRANSCRIPTS / "block" / "04-s2c-RESULT.bin").read_bytes())
    reasons = [m for m in batch.messages if isinstance(m, PbReasonString)]
    assert reasons == [PbReasonString('IMC Test was not configured with "command = allow"', "en")]


def test_polish_reason_string_in_corpus() -> None:
    path = PB_TNC_CORPUS / "58844540df4d783f0605727aa7ff17ae2d7ca79e83a2813a5a90335000c7775d.bin"
    batch = decode_batch(path.read_bytes())
    assert batch.batch_type is BatchType.RESULT
    reason = batch.messages[-1]
    assert isinstance(reason, PbReasonString)
    assert reason.language == "pl"
    assert reason.reason.startswith("IMC Test nie zosta\u0142o")


def test_pdp_referral_in_corpus() -> None:
    path = PB_TNC_CORPUS / "31155f2e971145c7b1329f29cc27b31674af26b69c3e8c0c092d7c4d10ea3cdf.bin"
    batch = decode_batch(path.read_bytes())
    referral = batch.messages[0]
    assert isinstance(referral, PbPdpReferral)
    assert referral.fqdn == ("aaa.strongswan.org", 271, 0)


def test_server_pa_messages_use_excl_and_validator_id() -> None:
    batch = decode_batch((TRANSCRIPTS / "allow" / "02-s2c-SDATA.bin").read_bytes())
    first = batch.messages[0]
    assert isinstance(first, PbPa)
    assert (first.exclusive, first.collector_id, first.validator_id) == (True, 1, 1)
    assert first.body == (TRANSCRIPTS / "allow" / "pa-imv-01.bin").read_bytes()


def test_empty_batches() -> None:
    cdata = decode_batch((TRANSCRIPTS / "allow" / "03-c2s-CDATA.bin").read_bytes())
    close = decode_batch((TRANSCRIPTS / "allow" / "05-c2s-CLOSE.bin").read_bytes())
    assert (cdata.batch_type, cdata.messages) == (BatchType.CDATA, ())
    assert (close.batch_type, close.messages) == (BatchType.CLOSE, ())
