"""gateway.db and nea-report on a real PostgreSQL server (tests/harness/postgres.py)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, inspect, select, text

from gateway.db import EvidenceStore, SqlEvidenceSink, open_evidence_sink
from gateway.db.engine import head_revision
from gateway.db.models import DEVICES_TABLE, RESULTS_TABLE, SESSIONS_TABLE, VERSION_TABLE
from nea.imv.evidence import DeviceFacts, SessionStart
from tests.gateway.evidence.evidence_data import (
    DAY1,
    DAY2,
    _decide,
    _result,
    policy_config,
    write_assessments,
)
from tests.gateway.evidence.test_evidence_store import schema_drift
from tests.gateway.report import report_checks as checks
from tests.harness.postgres import fresh_database, postgres_url

__all__ = ["postgres_url"]  # the fixture, re-exported for pytest


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh database on the session's server, dropped afterwards."""
    with fresh_database(postgres_url, "evidence_") as url:
        yield url


def test_upgrade_from_empty_and_no_drift(pg_url: str) -> None:
    store = EvidenceStore(pg_url)
    assert store.engine.dialect.name == "postgresql"
    assert "nea_sessions" in inspect(store.engine).get_table_names()
    with store.engine.connect() as c:
        assert c.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == (
            head_revision()
        )
    assert schema_drift(store.engine) == []
    store.close()
    EvidenceStore(pg_url).close()  # reopening runs no migration again


def test_every_report_on_postgresql(pg_url: str) -> None:
    sink = open_evidence_sink(pg_url)
    sink.sync_policy(policy_config())
    sink.sync_policy(policy_config())  # upsert twice: no duplicates
    write_assessments(sink, bind_address=sink.bind_address)
    sink.close()
    assert sink.dropped == 0
    checks.check_all(pg_url)
    # times come back as the same UTC instants
    store = EvidenceStore(pg_url)
    assert store.last_compliant("dev-a", "no-forwarding") == DAY1
    assert store.last_compliant("dev-a", "packages") == DAY2
    store.close()


def test_interrupted_session_on_postgresql(pg_url: str) -> None:
    sink = SqlEvidenceSink(EvidenceStore(pg_url))
    sink.session_started(SessionStart(1, "x@corp", DAY1))
    sink.facts_measured(DeviceFacts(1, DAY1, device_id="dev-x", product="Debian"))
    assert sink.flush(30)
    # the gateway dies here: nothing else arrives; a new one reads the database
    sink.close()
    doc = checks.report_json(pg_url, "sessions")
    (session,) = doc["sections"]["sessions"]
    assert session["state"] == "interrupted" and session["device"] == "dev-x"


def test_two_gateways_share_one_database(pg_url: str) -> None:
    """Two writers create the same devices/policies at once (INSERT ... ON CONFLICT)."""
    sinks = [open_evidence_sink(pg_url) for _ in range(2)]
    barrier = threading.Barrier(2)

    def gateway(n: int) -> None:
        sink = sinks[n]
        barrier.wait()
        for i in range(40):
            cid = i
            at = DAY1 + dt.timedelta(seconds=i)
            device = f"dev-{i % 10}"
            sink.session_started(SessionStart(cid, f"u{i}@corp", at))
            sink.facts_measured(
                DeviceFacts(
                    cid,
                    at,
                    device_id=device,
                    product="Debian",
                    version="12 x86_64",
                    packages=(("openssl", "3.0.15-1"),),
                )
            )
            sink.policy_result(_result(cid, device, f"u{i}@corp", "packages", "passed", at))
            sink.session_decided(_decide(cid, device, f"u{i}@corp", "allow", at))
            sink.session_ended(cid, at)
            if i % 5 == 0:
                assert sink.flush(30)

    threads = [threading.Thread(target=gateway, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for sink in sinks:
        sink.close()
        assert sink.dropped == 0
    store = EvidenceStore(pg_url)
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(SESSIONS_TABLE)).scalar() == 80
        assert c.execute(select(func.count()).select_from(DEVICES_TABLE)).scalar() == 10
        assert c.execute(select(func.count()).select_from(RESULTS_TABLE)).scalar() == 80
    store.close()
    assert checks.report_json(pg_url, "summary")["figures"]["compliance_rate"] == 100.0
