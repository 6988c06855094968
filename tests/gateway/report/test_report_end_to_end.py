"""End to end: our collectors (Tncc) against our validators (Tncs) back to back, evidence
written by the SQL sink's writer thread, verdicts read back with nea-report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway.db import EvidenceStore, SqlEvidenceSink
from gateway.endpoint import load_profile
from nea.imc import HostFacts, build_collectors
from nea.imv import MemorySwimaStore, PolicyEngine, PolicyValidator, build_validators
from nea.pb_tnc import AccessRecommendation, PbTncConfig, Tncc, Tncs
from nea.policy import load_policy, parse_policy
from tests.gateway.report import report_checks as checks

ROOT = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def pump(tncc: Tncc, tncs: Tncs, batches: list[bytes]) -> None:
    """Deliver PB-TNC batches back and forth until both sides are quiet."""
    while batches:
        replies = [reply for batch in batches for reply in tncs.receive_batch(batch)]
        batches = [answer for reply in replies for answer in tncc.receive_batch(reply)]


PROFILES = ROOT / "examples" / "profiles"

ENDPOINTS = [  # (connection id, identity, outer address, profile)
    (1, "carol@example.com", "192.0.2.31", "compliant"),
    (2, "dave@example.com", "192.0.2.32", "forwarding"),
    (3, "erin@example.com", "198.51.100.33", "forbidden-port"),
    (4, "frank@example.com", "198.51.100.34", "forbidden-package"),
]


def assess(
    engine: PolicyEngine,
    validators: list[PolicyValidator],
    sink: SqlEvidenceSink,
    cid: int,
    identity: str,
    address: str,
    facts: HostFacts,
) -> Tncs:
    sink.bind_address(cid, address)
    engine.open_connection(cid, identity)
    tncs = Tncs(validators, connection_id=cid)
    tncc = Tncc(
        build_collectors(facts), connection_id=cid, config=PbTncConfig(close_after_result=True)
    )
    pump(tncc, tncs, list(tncc.start()))
    return tncs


def test_verdicts_of_real_assessments_in_every_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    policy = load_policy(ROOT / "examples" / "policy.toml")
    clock = FakeClock()
    sink = SqlEvidenceSink(EvidenceStore(url), clock=clock)
    sink.sync_policy(policy)
    engine = PolicyEngine(policy, clock=clock, sink=sink)
    validators = build_validators(engine, swima_store=MemorySwimaStore())
    verdicts = {}
    for cid, who, address, profile in ENDPOINTS:
        tncs = assess(
            engine, validators, sink, cid, who, address, load_profile(PROFILES / f"{profile}.toml")
        )
        assert tncs.decision is not None
        verdicts[profile] = tncs.decision.recommendation
        clock.advance(60)
    assert verdicts == {
        "compliant": AccessRecommendation.ALLOWED,
        "forwarding": AccessRecommendation.QUARANTINED,
        "forbidden-port": AccessRecommendation.DENIED,
        "forbidden-package": AccessRecommendation.QUARANTINED,
    }
    sink.close()
    assert sink.dropped == 0

    summary = checks.report_json(url, "summary")
    assert summary["figures"]["compliance_rate"] == 25.0
    assert (summary["figures"]["sessions"], summary["figures"]["interrupted_sessions"]) == (4, 0)
    recs = {r["recommendation"]: r["sessions"] for r in summary["sections"]["by_recommendation"]}
    assert recs == {"allow": 1, "isolate": 2, "block": 1}
    assert checks.by(summary["sections"]["by_os"], "os")["Debian 12 x86_64"]["devices"] == 4

    noncompliant = checks.report_json(url, "noncompliant")
    rows = checks.by(noncompliant["sections"]["noncompliant"], "identity")
    assert sorted(rows) == ["dave@example.com", "erin@example.com", "frank@example.com"]
    dave = rows["dave@example.com"]
    assert dave["recommendation"] == "isolate" and dave["address"] == "192.0.2.32"
    assert dave["device"] == "1c7f3b5d9e2a4c6b8d0f2e4a6c8b0d2f"
    assert dave["why"].startswith("no-forwarding failed -> isolate")
    assert "sysctl -w net.ipv4.ip_forward=0" in dave["remediation"]
    assert rows["erin@example.com"]["recommendation"] == "block"
    assert "no-telnet failed -> block" in rows["erin@example.com"]["why"]
    assert "packages failed" in rows["frank@example.com"]["why"]

    history = checks.report_json(url, "endpoint", "1c7f3b5d9e2a4c6b8d0f2e4a6c8b0d2f")
    results = checks.by(history["sections"]["results"], "policy")
    assert results["no-forwarding"]["evidence"] == {"forwarding": 1}
    assert results["no-forwarding"]["outcome"] == "failed"
    assert results["packages"]["outcome"] == "passed"
    assert history["sections"]["sessions"][0]["state"] == "isolate"
    assert {i["kind"] for i in history["sections"]["inventories"]} >= {"packages"}

    policies = checks.by(checks.report_json(url, "policies")["sections"]["policies"], "policy")
    assert policies["no-forwarding"]["failed"] == 1 and policies["no-forwarding"]["passed"] == 3
    assert policies["no-telnet"]["devices_failing"] == 1
    code, out, err = checks.run("--db", url, "--fail-under", "25", "--format", "html", "summary")
    assert code == 0, err
    checks.check_html(out)
    assert checks.run("--db", url, "--fail-under", "26", "summary")[0] == 1


def test_max_age_skips_through_the_sql_sink(tmp_path: Path) -> None:
    """The validators ask the SQL sink when a device last passed (even after a restart)."""
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    policy = parse_policy(
        '[policies.p]\ntype = "PCKGS"\n[[enforcements]]\npolicy = "p"\nmax_age = "1h"\n'
        '[products."Debian*".packages]\nopenssl = { min = "3.0.0" }\n',
        "max-age.toml",
    )
    facts = HostFacts(
        "debian", "Debian", "12", packages=(("openssl", "3.0.11-1"),), device_id="dev-1"
    )
    clock = FakeClock()
    sink = SqlEvidenceSink(EvidenceStore(url), clock=clock)
    engine = PolicyEngine(policy, clock=clock, sink=sink)
    validators = build_validators(engine, swima_store=MemorySwimaStore())
    assess(engine, validators, sink, 1, "a@corp", "192.0.2.1", facts)
    sink.close()
    # the gateway restarts 10 minutes later: the pass is preloaded from the database
    clock.advance(600)
    sink = SqlEvidenceSink(EvidenceStore(url), clock=clock)
    assert sink.flush(10)
    engine = PolicyEngine(policy, clock=clock, sink=sink)
    validators = build_validators(engine, swima_store=MemorySwimaStore())
    assess(engine, validators, sink, 1, "a@corp", "192.0.2.1", facts)
    clock.advance(3600)
    assess(engine, validators, sink, 2, "a@corp", "192.0.2.1", facts)
    sink.close()
    history = checks.report_json(url, "endpoint", "dev-1")
    outcomes = [(r["session"], r["outcome"]) for r in history["sections"]["results"]]
    assert [o for _, o in sorted(outcomes)] == ["passed", "skipped", "passed"]
