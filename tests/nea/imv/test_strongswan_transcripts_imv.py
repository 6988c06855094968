"""Our validators against what strongSwan's collectors sent, and our collectors against what
strongSwan's validators sent.

Source: ``../shared/vectors/strongswan-transcripts/`` -- PB-TNC batches captured on this
machine between strongSwan 6.0.6's TNC client (Test, Scanner and OS collectors) and server
(see that folder's README). The client's batches (``NN-c2s-*.bin``) are fed in order to our
TNCS; its answers must have the batch types strongSwan's server sent and the verdict the
folder is named after.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nea.imc import HostFacts, OsCollector, TestCollector
from nea.imv import MemoryEvidenceSink, PolicyEngine, PolicyOutcome, build_validators
from nea.pa import AssessmentResult as PaAssessmentResult
from nea.pa import PaMessage, RemediationInstructions, RemediationString
from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentResult,
    BatchType,
    ConnectionState,
    PbPa,
    PbRemediationParameters,
    Tncs,
    decode_batch,
)
from nea.policy import PolicyConfig, parse_policy
from tests.nea.imv.posture_harness import FakeClock

TRANSCRIPTS = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors" / "strongswan-transcripts"
)
pytestmark = pytest.mark.skipif(
    not TRANSCRIPTS.is_dir(), reason=f"strongSwan transcripts not found at {TRANSCRIPTS}"
)

NO_POLICY = parse_policy("", "empty.toml")
FWDEN_POLICY = parse_policy(
    '[policies.no-forwarding]\ntype = "FWDEN"\nrec_fail = "isolate"\n'
    'remediation = { en = "Disable IP forwarding" }\n'
    '[[enforcements]]\npolicy = "no-forwarding"\n',
    "fwden.toml",
)


def batches(folder: str, direction: str) -> list[Path]:
    return sorted((TRANSCRIPTS / folder).glob(f"[0-9][0-9]-{direction}-*.bin"))


def replay(folder: str, policy: PolicyConfig) -> tuple[Tncs, list[BatchType], set[int],
                                                       MemoryEvidenceSink, list[bytes]]:
    """Feed the client's batches; also collect the retries validators asked for (the client's
    CLOSE ends the connection, after which there is nothing left to retry)."""
    sink = MemoryEvidenceSink()
    engine = PolicyEngine(policy, clock=FakeClock(), sink=sink)
    engine.open_connection(7, "carol@strongswan.org")
    tncs = Tncs(build_validators(engine), connection_id=7)
    answers: list[bytes] = []
    retries: set[int] = set()
    for path in batches(folder, "c2s"):
        answers += tncs.receive_batch(path.read_bytes())
        retries |= engine.take_retry_requests()
    return tncs, [decode_batch(b).batch_type for b in answers], retries, sink, answers


def expected_types(folder: str) -> list[BatchType]:
    return [decode_batch(p.read_bytes()).batch_type for p in batches(folder, "s2c")]


@pytest.mark.parametrize(
    ("folder", "access", "evaluation"),
    [
        ("allow", AccessRecommendation.ALLOWED, AssessmentResult.COMPLIANT),
        ("isolate", AccessRecommendation.QUARANTINED, AssessmentResult.NONCOMPLIANT_MINOR),
        ("block", AccessRecommendation.DENIED, AssessmentResult.NONCOMPLIANT_MAJOR),
        # retry: no recommendation from the test validator, the others allow (as strongSwan)
        ("retry", AccessRecommendation.ALLOWED, AssessmentResult.DONT_KNOW),
    ],
)
def test_test_validator_verdicts(folder: str, access: AccessRecommendation,
                                 evaluation: AssessmentResult) -> None:
    tncs, types, retries, sink, _ = replay(folder, NO_POLICY)
    assert types == expected_types(folder)
    assert tncs.decision is not None
    assert (tncs.decision.recommendation, tncs.decision.evaluation) == (access, evaluation)
    assert sink.decisions[-1].access is access
    assert sink.decisions[-1].identity == "carol@strongswan.org"
    assert sink.decisions[-1].device_id == "3d1219c7c4c5404aaa1f6d2a48adfda4"
    assert retries == ({7} if folder == "retry" else set())


def test_retry_takes_an_extra_round() -> None:
    _, types, _, _, _ = replay("retry", NO_POLICY)
    assert types == [BatchType.SDATA, BatchType.SDATA, BatchType.RESULT]
    _, types, _, _, _ = replay("allow", NO_POLICY)
    assert types == [BatchType.SDATA, BatchType.RESULT]


def test_test_validator_answers_like_strongswan() -> None:
    """Our test validator's Assessment Result goes to the Test IMC (id 1) with EXCL, in the
    ITA subtype, as strongSwan's Test IMV's does in 02-s2c-SDATA."""
    for folder in ("allow", "isolate", "block"):
        _, _, _, _, answers = replay(folder, NO_POLICY)
        ours = [m for m in decode_batch(answers[0]).messages if isinstance(m, PbPa)]
        theirs = [m for m in decode_batch(batches(folder, "s2c")[0].read_bytes()).messages
                  if isinstance(m, PbPa) and m.pa_vendor_id == 0x902A]
        assert [(m.pa_vendor_id, m.pa_subtype, m.collector_id, m.validator_id, m.pa_flags)
                for m in ours] == [(m.pa_vendor_id, m.pa_subtype, m.collector_id,
                                    m.validator_id, m.pa_flags) for m in theirs]
        ar = [PaMessage.parse(m.body).first(PaAssessmentResult) for m in ours + theirs]
        assert ar[0] is not None and ar[1] is not None and ar[0].result == ar[1].result


def test_os_validator_understands_strongswan_os_collector() -> None:
    _, _, _, sink, _ = replay("allow", FWDEN_POLICY)
    [r] = sink.results
    assert (r.policy, r.outcome, r.evidence) == ("no-forwarding", PolicyOutcome.PASSED,
                                                 {"forwarding": 0})
    merged: dict[str, object] = {}
    for f in sink.facts:
        merged.update({k: v for k, v in (
            ("product", f.product), ("version", f.version), ("vendor", f.product_vendor_id),
            ("numeric", f.numeric_version), ("status", f.operational_status),
            ("last_use", f.last_use), ("forwarding", f.forwarding),
            ("password", f.default_password), ("device", f.device_id), ("ports", f.ports),
        ) if v is not None})
    assert merged == {
        "product": "Debian", "version": "12 x86_64", "vendor": 9586, "numeric": (12, 0, 0),
        "status": 3, "last_use": "2026-11-28T02:56:35Z", "forwarding": 0, "password": False,
        "device": "3d1219c7c4c5404aaa1f6d2a48adfda4",
        "ports": ((17, 500, False), (17, 4500, False)),
    }


def test_forwarding_transcript_is_noncompliant_with_fwden() -> None:
    tncs, types, _, sink, answers = replay("forwarding", FWDEN_POLICY)
    assert types == expected_types("forwarding")
    assert tncs.decision is not None
    assert tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    assert tncs.decision.evaluation is AssessmentResult.NONCOMPLIANT_MINOR
    [r] = sink.results
    assert r.outcome is PolicyOutcome.FAILED and r.evidence == {"forwarding": 1}
    # remediation: a PA-TNC Remediation Instructions to the OS collector (id 3) in SDATA ...
    os_msgs = [m for m in decode_batch(answers[0]).messages
               if isinstance(m, PbPa) and (m.pa_vendor_id, m.pa_subtype) == (0, 1)]
    [msg] = os_msgs
    assert msg.collector_id == 3 and msg.exclusive
    [rem] = PaMessage.parse(msg.body).find(RemediationInstructions)
    assert rem.parameters == RemediationString("Disable IP forwarding", "en")
    # ... and PB-Remediation-Parameters plus the reason string in the RESULT batch
    result = decode_batch(answers[-1]).messages
    params = [m for m in result if isinstance(m, PbRemediationParameters)]
    assert [p.as_string for p in params] == [("Disable IP forwarding", "en")]
    assert [r.reason for r in tncs.decision.reasons] == ["IP forwarding is enabled"]
    # without the policy the same transcript is allowed (strongSwan's verdict)
    tncs, _, _, _, _ = replay("forwarding", NO_POLICY)
    assert tncs.decision is not None
    assert tncs.decision.recommendation is AccessRecommendation.ALLOWED


def test_our_collectors_understand_strongswan_validators() -> None:
    """strongSwan's OS validator's remediation and the Test validator's Assessment Result,
    delivered to our collectors, are recorded for display."""
    facts = HostFacts("debian", "Debian", "12", test_command="allow")
    os_c, test_c = OsCollector(facts), TestCollector(facts)
    for c in (os_c, test_c):
        c.notify_connection_change(1, ConnectionState.CREATE)
        c.notify_connection_change(1, ConnectionState.HANDSHAKE)
    for m in decode_batch(batches("forwarding", "s2c")[0].read_bytes()).messages:
        assert isinstance(m, PbPa)
        target = test_c if m.pa_vendor_id == 0x902A else os_c
        assert target.receive_message(1, m) == []
    [rem] = os_c.remediation(1)
    assert rem.text is not None and rem.text.startswith("IP Packet Forwarding")
    assert rem.language == "en" and rem.validator_id == 3
    assert os_c.assessments(1) == [(3, 4)]
    assert test_c.assessments(1) == [(1, 0)]
