"""Hypothesis: any order of evidence records (records before a start, after an end, retries,
unknown connections, repeated ends) is stored without an error, and every report over the
result is consistent with the rows."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.db import AddressBound, EvidenceStore, SessionEnded
from gateway.db.engine import create_evidence_engine
from gateway.db.models import RESULTS_TABLE, SESSIONS_TABLE, metadata
from gateway.report.model import Report
from gateway.report.queries import (
    Window,
    endpoint_report,
    endpoints_report,
    noncompliant_report,
    policies_report,
    sessions_report,
    summary_report,
)
from gateway.report.render import FORMATS, render
from nea.imv.evidence import DeviceFacts, RemediationRecord, SessionStart
from tests.gateway.evidence.evidence_data import DAY1, _decide, _result

CONNS = st.integers(1, 3)
DEVICES = st.sampled_from([None, "dev-1", "dev-2"])
WHO = st.sampled_from([None, "a@corp", "b@corp"])


def _at(minute: int) -> dt.datetime:
    return DAY1 + dt.timedelta(minutes=minute)


records = st.one_of(
    st.builds(
        lambda c, w, m, r: SessionStart(c, w, _at(m), retry=r),
        CONNS,
        WHO,
        st.integers(0, 3000),
        st.booleans(),
    ),
    st.builds(
        lambda c, d, m, p, v, f, pk: DeviceFacts(
            c, _at(m), device_id=d, product=p, version=v, forwarding=f, packages=pk
        ),
        CONNS,
        DEVICES,
        st.integers(0, 3000),
        st.sampled_from([None, "Debian", "Ubuntu"]),
        st.sampled_from([None, "12", "22.04"]),
        st.sampled_from([None, 0, 1]),
        st.sampled_from([None, (), (("openssl", "3.0.9-1"),), (("a", "1"), ("b", "2"))]),
    ),
    st.builds(
        lambda c, d, w, p, o, m, r: _result(c, d, w or "x", p, o, _at(m), rec=r),
        CONNS,
        DEVICES,
        WHO,
        st.sampled_from(["packages", "no-forwarding"]),
        st.sampled_from(["passed", "failed", "no_result", "skipped"]),
        st.integers(0, 3000),
        st.sampled_from(["allow", "isolate", "block"]),
    ),
    st.builds(
        lambda c, d, v, m: _decide(c, d, "who", v, _at(m)),
        CONNS,
        DEVICES,
        st.sampled_from(["allow", "isolate", "block"]),
        st.integers(0, 3000),
    ),
    st.builds(
        lambda c, d, m: RemediationRecord(c, d, None, "os", "packages", None, "fix", "en", _at(m)),
        CONNS,
        DEVICES,
        st.integers(0, 3000),
    ),
    st.builds(lambda c, m: SessionEnded(c, _at(m)), CONNS, st.integers(0, 3000)),
    st.builds(AddressBound, CONNS, st.sampled_from(["192.0.2.1", "2001:db8::1"])),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(records, max_size=12), min_size=1, max_size=4))
def test_any_record_order_is_stored_and_reported(batches: list[list[Any]]) -> None:
    engine = create_evidence_engine("sqlite://")
    metadata.create_all(engine)  # the migrations' tables (see test_migrations_match_the_models)
    store = EvidenceStore(engine=engine)
    for batch in batches:
        assert store.apply(batch) == 0
    with engine.connect() as conn:
        sessions = conn.execute(select(func.count()).select_from(SESSIONS_TABLE)).scalar_one()
        decided = conn.execute(
            select(func.count()).where(SESSIONS_TABLE.c.recommendation.is_not(None))
        ).scalar_one()
        results = conn.execute(select(func.count()).select_from(RESULTS_TABLE)).scalar_one()
        expected_results = sum(1 for b in batches for r in b if type(r).__name__ == "PolicyResult")
        assert results == expected_results
        window = Window()
        summary = summary_report(conn, window)
        assert summary.figures["sessions"] == sessions
        assert summary.figures["decided_sessions"] == decided
        assert summary.figures["interrupted_sessions"] == sessions - decided
        by_policy = {r["policy"]: r for r in summary.sections[2].rows}
        assert (
            sum(
                r["passed"] + r["failed"] + r["no_result"] + r["skipped"]
                for r in by_policy.values()
            )
            == results
        )
        devices = [r["device"] for r in endpoints_report(conn, window).sections[0].rows]
        builders: list[Callable[[], Report]] = [
            lambda: summary_report(conn, window),
            lambda: endpoints_report(conn, window),
            lambda: sessions_report(conn, window),  # streamed: built again per format
            lambda: policies_report(conn, window),
            lambda: noncompliant_report(conn, window),
            *(partial(endpoint_report, conn, d, window) for d in devices),
        ]
        for n, build in enumerate(builders):
            # rich tables are slow to lay out: the table format for the first report only
            for fmt in FORMATS if n == 0 else ("json", "csv", "html"):
                out = io.StringIO()
                render(build(), fmt, out)
                if fmt == "json":
                    json.loads(out.getvalue())
    engine.dispose()
