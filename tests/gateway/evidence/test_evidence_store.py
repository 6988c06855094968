"""gateway.db on SQLite: schema, what the records become, sync_policy, last_compliant, the
threaded writer (non-blocking, ordered, retrying) and crash consistency."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, func, inspect, select, text

from gateway.db import (
    DatabaseMissing,
    EvidenceStore,
    InvalidDatabaseUrl,
    NotAnEvidenceDatabase,
    SqlEvidenceSink,
    open_evidence_sink,
    open_for_reading,
)
from gateway.db.engine import head_revision
from gateway.db.models import (
    ACCOUNTING_TABLE,
    DEVICES_TABLE,
    ENFORCEMENTS_TABLE,
    GROUPS_TABLE,
    INVENTORIES_TABLE,
    ITEMS_TABLE,
    POLICIES_TABLE,
    REMEDIATIONS_TABLE,
    RESULTS_TABLE,
    SESSIONS_TABLE,
    SOFTWARE_TABLE,
    VERSION_TABLE,
    VERSIONS_TABLE,
    metadata,
)
from gateway.db.store import AccountingUpdate, Record
from nea.imv.evidence import DeviceFacts, EvidenceSink, SessionStart
from nea.policy import parse_policy
from tests.gateway.evidence.evidence_data import (
    DAY1,
    DAY2,
    POLICY_TOML,
    _decide,
    _result,
    policy_config,
    write_assessments,
)
from tests.gateway.report import report_checks as checks

ROOT = Path(__file__).resolve().parents[3]


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the migrated database and the models (``alembic check``)."""
    with engine.connect() as c:
        ctx = MigrationContext.configure(c, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, metadata) if VERSION_TABLE not in repr(d)]


def rows(engine: Engine, table: Any, *where: Any) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(select(table).where(*where).order_by(table.c.id)))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evidence.db'}"


@pytest.fixture
def store(url: str) -> Iterator[EvidenceStore]:
    s = EvidenceStore(url)
    yield s
    s.close()


def test_upgrade_from_empty_creates_every_table_at_head(store: EvidenceStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    expected = {
        "nea_products",
        "nea_packages",
        "nea_versions",
        "nea_software",
        "nea_inventories",
        "nea_inventory_items",
        "nea_identities",
        "nea_devices",
        "nea_groups",
        "nea_policies",
        "nea_enforcements",
        "nea_sessions",
        "nea_results",
        "nea_remediations",
        "nea_accounting",
        VERSION_TABLE,
    }
    assert tables == expected
    with store.engine.connect() as c:
        version = c.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    assert version == head_revision()


def test_migrations_match_the_models(store: EvidenceStore) -> None:
    assert schema_drift(store.engine) == []


def test_reopening_is_idempotent_and_shares_a_database_with_the_pools(url: str) -> None:
    from gateway.pools import SqlPools

    pools = SqlPools(url)
    EvidenceStore(url).close()
    EvidenceStore(url).close()
    reader = open_for_reading(url)
    names = set(inspect(reader).get_table_names())
    assert {"pools", "identities", "nea_identities", "nea_sessions"} <= names
    reader.dispose()
    pools.close()


def test_records_become_rows(store: EvidenceStore) -> None:
    sink = SqlEvidenceSink(store, threaded=False)
    assert isinstance(sink, EvidenceSink)
    sink.sync_policy(policy_config())
    write_assessments(sink, bind_address=sink.bind_address)
    e = store.engine
    sessions = rows(e, SESSIONS_TABLE)
    assert len(sessions) == 6
    first = sessions[0]
    assert first.started_at == DAY1 and first.ended_at == DAY1 + dt.timedelta(minutes=2)
    assert (first.recommendation, first.access, first.evaluation) == (
        "allow",
        "allowed",
        "compliant",
    )
    assert first.address == "192.0.2.10" and first.connection_id == 1
    assert json.loads(first.facts)["forwarding"] == 0
    assert json.loads(first.validators) == {"os": ["allow", "compliant"]}
    # the same connection id in a later run is a new session
    assert sessions[2].connection_id == 1 and sessions[2].address == "192.0.2.11"
    dave = sessions[4]
    assert dave.recommendation is None and dave.ended_at is None and dave.decided_at is None
    assert json.loads(sessions[1].reasons) == {"os": "IP forwarding is enabled"}

    devices = {d.value: d for d in rows(e, DEVICES_TABLE)}
    assert sorted(devices) == ["dev-a", "dev-b", "dev-c", "dev-d"]
    assert devices["dev-a"].first_seen == DAY1
    assert devices["dev-a"].last_seen == DAY2 + dt.timedelta(minutes=1)

    # inventories: dev-a's identical package list on day 2 reuses the day-1 inventory
    assert sessions[0].packages_inventory_id == sessions[2].packages_inventory_id
    assert sessions[0].packages_inventory_id != sessions[1].packages_inventory_id  # dev-b
    inventories = rows(e, INVENTORIES_TABLE)
    assert sorted((i.kind, i.count) for i in inventories) == [
        ("packages", 1),
        ("packages", 2),
        ("packages", 2),
        ("swima", 1),
    ]
    versions = {(v.release) for v in rows(e, VERSIONS_TABLE)}
    assert versions == {"3.0.15-1~deb12u1", "5.2.15-2+b2", "3.0.9-1"}
    assert [s.identifier for s in rows(e, SOFTWARE_TABLE)] == ["swid:ubuntu.com/openssl-3.0.9"]
    with e.connect() as c:
        assert c.execute(select(func.count()).select_from(ITEMS_TABLE)).scalar() == 6

    results = rows(e, RESULTS_TABLE)
    assert len(results) == 12
    failed = [r for r in results if r.outcome == "failed"]
    assert [(r.recommendation, json.loads(r.evidence)) for r in failed] == [
        ("isolate", {"forwarding": 1}),
        ("block", {"blacklisted": [["openssl", "3.0.9-1"]]}),
    ]
    assert json.loads(failed[0].remediation) == ["https://help.example.com/forwarding"]
    remediations = rows(e, REMEDIATIONS_TABLE)
    assert [(r.text, r.language) for r in remediations] == [
        ("Disable IP forwarding", "en"),
        ("Upgrade openssl", "en"),
    ]


def test_sync_policy_upserts_and_deactivates(store: EvidenceStore) -> None:
    store.sync_policy(policy_config())
    e = store.engine
    groups = {g.name: g for g in rows(e, GROUPS_TABLE)}
    assert groups["debian"].parent_id == groups["default"].id
    assert json.loads(groups["debian"].criteria)["products"] == ["Debian*"]
    policies = {p.name: p for p in rows(e, POLICIES_TABLE)}
    assert (policies["no-forwarding"].type, policies["no-forwarding"].rec_fail) == (
        "FWDEN",
        "isolate",
    )
    assert policies["no-forwarding"].reason == "IP forwarding is enabled"
    assert policies["default-password"].rec_noresult == "allow"
    enforcements = rows(e, ENFORCEMENTS_TABLE)
    assert len(enforcements) == 3
    fwd = next(x for x in enforcements if x.policy_id == policies["no-forwarding"].id)
    assert fwd.max_age == 86400 and fwd.active

    # the file changes: packages policy gone, forwarding now blocks, max_age dropped
    changed = (
        POLICY_TOML.split("[policies.packages]")[0].replace(
            'rec_fail = "isolate"', 'rec_fail = "block"'
        )
        + """
[policies.default-password]
type = "PWDEN"
[[enforcements]]
policy = "no-forwarding"
group = "default"
[[enforcements]]
policy = "default-password"
group = "debian"
"""
    )
    store.sync_policy(parse_policy(changed, "changed.toml"))
    policies2 = {p.name: p for p in rows(e, POLICIES_TABLE)}
    assert policies2["no-forwarding"].id == policies["no-forwarding"].id  # updated in place
    assert policies2["no-forwarding"].rec_fail == "block"
    assert not policies2["packages"].active and policies2["no-forwarding"].active
    active = {(x.policy_id, x.group_id): x for x in rows(e, ENFORCEMENTS_TABLE) if x.active}
    assert set(active) == {
        (policies["no-forwarding"].id, groups["default"].id),
        (policies["default-password"].id, groups["debian"].id),
    }
    assert active[(policies["no-forwarding"].id, groups["default"].id)].max_age is None


def test_results_name_policies_that_are_not_in_the_file(store: EvidenceStore) -> None:
    store.session_started(SessionStart(7, "x@corp", DAY1))
    store.policy_result(_result(7, "dev-x", "x@corp", "packages", "passed", DAY1))
    (policy,) = rows(store.engine, POLICIES_TABLE)
    assert (policy.name, policy.type, policy.active) == ("packages", "PCKGS", True)
    store.sync_policy(policy_config())  # later sync fills in the details
    policy = next(p for p in rows(store.engine, POLICIES_TABLE) if p.name == "packages")
    assert policy.rec_fail == "block" and policy.reason == "vulnerable packages installed"


def test_records_without_a_start_open_a_session(store: EvidenceStore) -> None:
    store.facts_measured(DeviceFacts(9, DAY1, device_id="dev-z", product="Debian"))
    store.session_decided(_decide(9, "dev-z", "z@corp", "allow", DAY1))
    (session,) = rows(store.engine, SESSIONS_TABLE)
    assert session.recommendation == "allow" and session.device_id is not None


def test_retry_handshake_is_a_new_session_of_the_same_device(store: EvidenceStore) -> None:
    store.bind_address(3, "192.0.2.99")
    store.session_started(SessionStart(3, "r@corp", DAY1))
    store.facts_measured(
        DeviceFacts(3, DAY1, device_id="dev-r", product="Debian", version="12 x86_64")
    )
    store.session_decided(_decide(3, "dev-r", "r@corp", "isolate", DAY1))
    store.session_started(SessionStart(3, "r@corp", DAY2, retry=True))
    store.session_decided(_decide(3, None, "r@corp", "allow", DAY2))
    store.session_ended(3, DAY2 + dt.timedelta(hours=1))
    first, second = rows(store.engine, SESSIONS_TABLE)
    assert second.retry and not first.retry
    assert second.device_id == first.device_id and second.product_id == first.product_id
    assert second.address == first.address == "192.0.2.99"
    assert first.ended_at == second.ended_at == DAY2 + dt.timedelta(hours=1)
    assert (first.recommendation, second.recommendation) == ("isolate", "allow")


def test_session_start_carries_the_address(store: EvidenceStore) -> None:
    # positional construction as before the field existed still works
    assert SessionStart(4, "p@corp", DAY1, False).address is None
    store.session_started(SessionStart(5, "a@corp", DAY1, address="198.51.100.7"))
    store.session_started(SessionStart(6, "b@corp", DAY1))
    store.bind_address(6, "198.51.100.8")  # a later bind still wins for its connection
    first, second = rows(store.engine, SESSIONS_TABLE)
    assert (first.address, second.address) == ("198.51.100.7", "198.51.100.8")
    store.session_started(SessionStart(5, "a@corp", DAY2, retry=True))
    assert rows(store.engine, SESSIONS_TABLE)[2].address == "198.51.100.7"


def test_upgrade_from_the_first_revision_keeps_the_rows(url: str) -> None:
    from alembic import command

    from gateway.db.engine import _alembic_config, create_evidence_engine

    engine = create_evidence_engine(url, create=True)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001_evidence_initial")
    with engine.begin() as conn:
        assert "nea_accounting" not in inspect(conn).get_table_names()
        conn.execute(
            SESSIONS_TABLE.insert(),
            {
                "connection_id": 1,
                "started_at": DAY1,
                "retry": False,
                "facts": "{}",
                "reasons": "{}",
                "validators": "{}",
            },
        )
    engine.dispose()
    store = EvidenceStore(url)  # upgrades to head
    try:
        assert schema_drift(store.engine) == []
        assert len(rows(store.engine, SESSIONS_TABLE)) == 1
        assert rows(store.engine, ACCOUNTING_TABLE) == []
    finally:
        store.close()


def _acct(**kw: Any) -> AccountingUpdate:
    values: dict[str, Any] = {
        "nas": "sw1",
        "acct_session_id": "A1",
        "started_at": DAY1,
        "updated_at": DAY1,
    }
    values.update(kw)
    return AccountingUpdate(**values)


def test_accounting_sessions_become_rows(store: EvidenceStore) -> None:
    store.session_started(SessionStart(8, "bob@corp", DAY1))
    later = DAY1 + dt.timedelta(minutes=5)
    store.accounting(_acct(connection_id=8, user_name="bob@corp", nas_address="192.0.2.10"))
    store.accounting(
        _acct(updated_at=later, connection_id=8, input_octets=5 * 2**32 + 7, duration=300)
    )
    store.accounting(_acct(nas="sw2"))  # same id on another NAS: another session
    (first, other) = rows(store.engine, ACCOUNTING_TABLE)
    (posture,) = rows(store.engine, SESSIONS_TABLE)
    assert (first.nas, first.acct_session_id, first.session_id) == ("sw1", "A1", posture.id)
    assert first.input_octets == 5 * 2**32 + 7 and first.duration == 300
    assert first.updated_at == later and first.stopped_at is None
    assert (other.nas, other.session_id, other.connection_id) == ("sw2", None, None)
    stop = later + dt.timedelta(minutes=1)
    store.accounting(
        _acct(
            updated_at=stop,
            stopped_at=stop,
            connection_id=8,
            input_octets=9,
            output_octets=10,
            input_packets=11,
            output_packets=12,
            duration=360,
            terminate_cause=2,
        )
    )
    first = rows(store.engine, ACCOUNTING_TABLE, ACCOUNTING_TABLE.c.nas == "sw1")[0]
    assert (first.stopped_at, first.terminate_cause, first.duration) == (stop, 2, 360)
    assert (first.input_octets, first.output_octets) == (9, 10)
    assert (first.input_packets, first.output_packets) == (11, 12)
    # the NAS reuses the id after the Stop: a new row
    store.accounting(_acct(started_at=stop, updated_at=stop))
    assert len(rows(store.engine, ACCOUNTING_TABLE, ACCOUNTING_TABLE.c.nas == "sw1")) == 2


def test_accounting_continues_an_open_row_after_a_restart(url: str) -> None:
    store = EvidenceStore(url)
    store.accounting(_acct(user_name="bob"))
    store.close()
    again = EvidenceStore(url)
    try:
        end = DAY1 + dt.timedelta(hours=1)
        # a restarted recorder opens the session again from a Stop that names no user
        again.accounting(
            _acct(started_at=DAY1 + dt.timedelta(seconds=1), updated_at=end, stopped_at=end)
        )
        (row,) = rows(again.engine, ACCOUNTING_TABLE)
        assert (row.started_at, row.stopped_at, row.user_name) == (DAY1, end, "bob")
    finally:
        again.close()


def test_a_bad_record_is_dropped_alone(store: EvidenceStore) -> None:
    start = SessionStart(1, "a@corp", DAY1)
    bad = _decide(1, "dev-a", "a@corp", "allow", DAY1)
    object.__setattr__(bad, "access", 99)  # not a PB-TNC access recommendation
    good = _result(1, "dev-a", "a@corp", "packages", "passed", DAY1)
    assert store.apply([start, bad, good]) == 1
    assert len(rows(store.engine, SESSIONS_TABLE)) == 1
    assert rows(store.engine, SESSIONS_TABLE)[0].recommendation is None
    assert len(rows(store.engine, RESULTS_TABLE)) == 1


def test_last_compliant(store: EvidenceStore) -> None:
    sink = SqlEvidenceSink(store, threaded=False)
    write_assessments(sink)
    assert sink.last_compliant("dev-a", "no-forwarding") == DAY1  # the skip on day 2 is no pass
    assert sink.last_compliant("dev-a", "packages") == DAY2
    assert sink.last_compliant("dev-b", "no-forwarding") is None
    assert sink.last_compliant("dev-b", "default-password") is None  # no result is no pass
    assert sink.last_compliant("nobody", "packages") is None
    assert store.compliant_since(DAY2)[("dev-c", "no-forwarding")] == DAY2 + dt.timedelta(
        minutes=10
    )
    assert ("dev-a", "no-forwarding") not in store.compliant_since(DAY2)


def test_threaded_sink_preloads_last_compliant(url: str) -> None:
    first = open_evidence_sink(url, threaded=False)
    write_assessments(first)
    first.close()
    now = DAY2 + dt.timedelta(days=1)
    sink = SqlEvidenceSink(EvidenceStore(url), clock=lambda: now)
    assert sink.flush(10)
    assert sink.last_compliant("dev-a", "packages") == DAY2
    assert sink.last_compliant("dev-a", "no-forwarding") == DAY1
    # a pass it sees is known at once, before the writer has stored it
    later = now + dt.timedelta(minutes=5)
    sink.session_started(SessionStart(11, "alice@corp", later))
    sink.policy_result(_result(11, "dev-a", "alice@corp", "no-forwarding", "passed", later))
    assert sink.last_compliant("dev-a", "no-forwarding") == later
    sink.close()
    sink.close()  # idempotent
    dropped = sink.dropped
    sink.session_started(SessionStart(12, None, later))  # after close: dropped, no error
    assert sink.dropped == dropped + 1
    horizon = SqlEvidenceSink(EvidenceStore(url), clock=lambda: DAY2 + dt.timedelta(days=60))
    assert horizon.flush(10)
    assert horizon.last_compliant("dev-a", "packages") is None  # older than 30 days
    horizon.close()


class _SlowStore(EvidenceStore):
    """Blocks every write until released (a slow or locked database)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = threading.Event()
        self.batches: list[int] = []

    def apply(self, records: Any) -> int:
        records = list(records)
        assert self.gate.wait(10)
        self.batches.append(len(records))
        return super().apply(records)


def test_threaded_sink_never_blocks_the_caller_and_keeps_order(url: str) -> None:
    store = _SlowStore(url)
    sink = SqlEvidenceSink(store, batch=1000)
    started = time.perf_counter()
    write_assessments(sink, bind_address=sink.bind_address)
    assert time.perf_counter() - started < 1.0  # nothing waited for the database
    assert not sink.flush(0.2)  # the writer is stuck, the caller is not
    store.gate.set()
    assert sink.flush(10)
    sink.close()
    assert sum(store.batches) == sink.written and sink.dropped == 0
    assert len(store.batches) < sink.written  # records were batched
    checks.check_sessions(url)


class _FlakyStore(EvidenceStore):
    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def apply(self, records: Any) -> int:
        records = list(records)
        if self.failures:
            self.failures -= 1
            # fail after the first record went in: the transaction must be rolled back
            with self.engine.begin() as c:
                c.execute(
                    SESSIONS_TABLE.insert().values(
                        connection_id=999,
                        started_at=DAY1,
                        retry=False,
                        facts="{}",
                        reasons="{}",
                        validators="{}",
                    )
                )
                raise ConnectionError("database went away")
        return super().apply(records)


def test_writer_retries_a_failed_batch(url: str) -> None:
    store = _FlakyStore(url, failures=2)
    sink = SqlEvidenceSink(store, retries=3)
    write_assessments(sink)
    sink.close()
    assert sink.dropped == 0
    assert [s.connection_id for s in rows(store.engine, SESSIONS_TABLE)] == [1, 2, 1, 3, 4, 5]


def test_writer_gives_up_after_its_retries(url: str) -> None:
    store = _FlakyStore(url, failures=100)
    sink = SqlEvidenceSink(store, retries=1)
    sink.session_started(SessionStart(1, "a", DAY1))
    assert sink.flush(10)
    assert sink.dropped == 1
    sink.close()


def test_rolled_back_batch_restores_the_connection_state(store: EvidenceStore) -> None:
    store.session_started(SessionStart(1, "a@corp", DAY1))
    fail = [True]

    def refuse_commit(conn: Any) -> None:
        if fail and fail.pop():
            raise OSError("disk full")

    event.listen(store.engine, "commit", refuse_commit)
    batch: list[Record] = [
        SessionStart(2, "b@corp", DAY1),
        DeviceFacts(1, DAY1, device_id="dev-a", product="Debian"),
    ]
    with pytest.raises(OSError, match="disk full"):
        store.apply(batch)
    assert len(rows(store.engine, SESSIONS_TABLE)) == 1
    assert rows(store.engine, DEVICES_TABLE) == []
    assert store.apply(batch) == 0  # the same batch again, as the writer retries it
    store.session_decided(_decide(2, None, "b@corp", "allow", DAY1))
    sessions = rows(store.engine, SESSIONS_TABLE)
    assert [(s.connection_id, s.recommendation) for s in sessions] == [(1, None), (2, "allow")]
    (device,) = rows(store.engine, DEVICES_TABLE)
    assert sessions[0].device_id == device.id


# --------------------------------------------------------------------------- open errors


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(DatabaseMissing, match="no evidence database"):
        open_for_reading(f"sqlite:///{tmp_path / 'missing.db'}")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(NotAnEvidenceDatabase):
        open_for_reading(f"sqlite:///{junk}")
    with pytest.raises(NotAnEvidenceDatabase):
        EvidenceStore(f"sqlite:///{junk}")
    with pytest.raises(InvalidDatabaseUrl, match="invalid database URL"):
        EvidenceStore("mysql+nodriver://x/y")


# --------------------------------------------------------------------------- crash


WRITER = r"""
import datetime as dt, sys, time
sys.path.insert(0, sys.argv[2])
from gateway.db import open_evidence_sink
from nea.imv.evidence import DeviceFacts, SessionStart
from tests.gateway.evidence.evidence_data import DAY1, _decide, _result

sink = open_evidence_sink(sys.argv[1])
mode = sys.argv[3]
if mode == "mid-session":
    sink.bind_address(1, "192.0.2.50")
    sink.session_started(SessionStart(1, "crash@corp", DAY1))
    sink.facts_measured(DeviceFacts(1, DAY1, device_id="dev-crash", product="Debian",
                                    version="12 x86_64", forwarding=0))
    sink.policy_result(_result(1, "dev-crash", "crash@corp", "no-forwarding", "passed", DAY1))
    assert sink.flush(30)
    print("ready", flush=True)
    time.sleep(60)
else:  # busy: sessions as fast as possible until killed
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        at = DAY1 + dt.timedelta(seconds=i)
        sink.session_started(SessionStart(i, f"u{i}@corp", at))
        sink.facts_measured(DeviceFacts(i, at, device_id=f"dev-{i % 50}", product="Debian",
                                        version="12 x86_64",
                                        packages=tuple((f"p{k}", str(i % 3)) for k in range(30))))
        sink.policy_result(_result(i, f"dev-{i % 50}", f"u{i}@corp", "packages", "passed", at))
        sink.session_decided(_decide(i, f"dev-{i % 50}", f"u{i}@corp", "allow", at))
        sink.session_ended(i, at)
        if i % 20 == 0:
            time.sleep(0.001)
"""


def _start_writer(url: str, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(ROOT), mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_killed_writer_leaves_an_interrupted_session(url: str) -> None:
    proc = _start_writer(url, "mid-session")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    doc = checks.report_json(url, "sessions")
    (session,) = doc["sections"]["sessions"]
    assert session["state"] == "interrupted" and session["ended"] is None
    assert (session["device"], session["address"], session["os"]) == (
        "dev-crash",
        "192.0.2.50",
        "Debian 12 x86_64",
    )
    history = checks.report_json(url, "endpoint", "dev-crash")
    assert [r["outcome"] for r in history["sections"]["results"]] == ["passed"]
    summary = checks.report_json(url, "summary")
    assert summary["figures"]["interrupted_sessions"] == 1
    # the gateway starts again on the same database and carries on
    sink = open_evidence_sink(url, threaded=False)
    sink.session_started(SessionStart(1, "crash@corp", DAY2))
    sink.session_decided(_decide(1, "dev-crash", "crash@corp", "allow", DAY2))
    sink.close()
    states = [s["state"] for s in checks.report_json(url, "sessions")["sections"]["sessions"]]
    assert states == ["interrupted", "allow"]


def test_killed_busy_writer_leaves_a_consistent_database(url: str, tmp_path: Path) -> None:
    proc = _start_writer(url, "busy")
    db = tmp_path / "evidence.db"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # kill once a fair amount has been written
        try:
            with sqlite3.connect(db, timeout=5) as c:
                if c.execute("SELECT count(*) FROM nea_sessions").fetchone()[0] > 150:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        total, decided, ended = c.execute(
            "SELECT count(*), count(recommendation), count(ended_at) FROM nea_sessions"
        ).fetchone()
        assert total > 150
        # every batch is one transaction: at most the sessions of the last batch are open
        assert decided >= total - 1 and ended >= total - 1
        # every inventory is complete (written in the same transaction as its items)
        broken = c.execute(
            "SELECT count(*) FROM nea_inventories i WHERE i.count != "
            "(SELECT count(*) FROM nea_inventory_items t WHERE t.inventory_id = i.id)"
        ).fetchone()[0]
        assert broken == 0
        results = c.execute("SELECT count(*) FROM nea_results").fetchone()[0]
        assert results in (total, total - 1)
    doc = checks.report_json(url, "summary")
    assert doc["figures"]["sessions"] == total
    assert doc["figures"]["interrupted_sessions"] == total - decided
