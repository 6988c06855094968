"""nea-report at scale: ``summary`` and ``noncompliant`` over a generated evidence database.

Also ``sessions`` (all 100,000 rows, streamed from the database while written).

Generates (bulk inserts, one transaction per table chunk) an evidence database of 100,000
sessions of 10,000 devices over 30 days -- 85 % allow, 8 % isolate, 4 % block, 3 %
interrupted, five per-policy results per decided session (about 485,000 results) and a
remediation record per non-compliant session -- then runs each report as ``nea-report`` in a
fresh process (output to /dev/null) and prints wall time and the process's peak RSS.

Run: ``python bench/bench_report.py [--sessions N] [--devices N] [--db URL]``; with
``--db postgresql://...`` it uses that (empty) database; with ``--postgres`` a throw-away
server from tests/harness/postgres.py. Not part of the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from bench.common import Figure, Result, progress  # noqa: E402
from gateway.db.engine import open_for_writing  # noqa: E402
from gateway.db.models import (  # noqa: E402
    DEVICES_TABLE,
    ENFORCEMENTS_TABLE,
    GROUPS_TABLE,
    IDENTITIES_TABLE,
    POLICIES_TABLE,
    PRODUCTS_TABLE,
    REMEDIATIONS_TABLE,
    RESULTS_TABLE,
    SESSIONS_TABLE,
)

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
OSES = [
    "Debian 12 x86_64",
    "Debian 11 x86_64",
    "Ubuntu 22.04 x86_64",
    "Ubuntu 24.04 x86_64",
    "Fedora 40 x86_64",
    "Windows 11 x86_64",
]
POLICIES = [
    ("no-forwarding", "FWDEN", "isolate"),
    ("no-default-password", "PWDEN", "block"),
    ("packages", "PCKGS", "isolate"),
    ("no-telnet", "TCPBL", "block"),
    ("supported-os", "OSVER", "block"),
]
CHUNK = 20_000


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def generate(engine: Engine, sessions: int, devices: int, seed: int = 7) -> dict[str, int]:
    rnd = random.Random(seed)
    counts: dict[str, int] = {}

    def bulk(table: Any, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows):
            with engine.begin() as conn:
                conn.execute(table.insert(), chunk)
        counts[table.name] = counts.get(table.name, 0) + len(rows)

    bulk(
        PRODUCTS_TABLE,
        [{"id": i + 1, "name": n, "vendor_id": 0, "product_id": 0} for i, n in enumerate(OSES)],
    )
    bulk(
        GROUPS_TABLE,
        [
            {
                "id": 1,
                "name": "default",
                "parent_id": None,
                "description": "",
                "criteria": "{}",
                "active": True,
            }
        ],
    )
    bulk(
        POLICIES_TABLE,
        [
            {
                "id": i + 1,
                "name": n,
                "type": t,
                "argument": "",
                "rec_fail": r,
                "rec_noresult": "allow",
                "reason": f"{n} failed",
                "remediation_uri": None,
                "active": True,
            }
            for i, (n, t, r) in enumerate(POLICIES)
        ],
    )
    bulk(
        ENFORCEMENTS_TABLE,
        [
            {
                "id": i + 1,
                "policy_id": i + 1,
                "group_id": 1,
                "max_age": None,
                "rec_fail": None,
                "rec_noresult": None,
                "active": True,
            }
            for i in range(len(POLICIES))
        ],
    )
    device_os = [rnd.randrange(len(OSES)) + 1 for _ in range(devices)]
    bulk(IDENTITIES_TABLE, [{"id": i + 1, "name": f"user{i}@corp.example"} for i in range(devices)])
    bulk(
        DEVICES_TABLE,
        [
            {
                "id": i + 1,
                "value": f"{i:032x}",
                "product_id": device_os[i],
                "first_seen": START,
                "last_seen": START,
            }
            for i in range(devices)
        ],
    )
    span = 30 * 86400
    session_rows: list[dict[str, Any]] = []
    result_rows: list[dict[str, Any]] = []
    remediation_rows: list[dict[str, Any]] = []
    for sid in range(1, sessions + 1):
        device = (sid - 1) % devices
        at = START + dt.timedelta(seconds=span * (sid - 1) // sessions)
        roll = rnd.random()
        rec = (
            "allow"
            if roll < 0.85
            else "isolate"
            if roll < 0.93
            else "block"
            if roll < 0.97
            else None
        )
        session_rows.append(
            {
                "id": sid,
                "connection_id": sid % 65536,
                "started_at": at,
                "ended_at": at + dt.timedelta(minutes=30) if rec else None,
                "retry": False,
                "identity_id": device + 1,
                "device_id": device + 1,
                "product_id": device_os[device],
                "address": f"192.0.2.{sid % 250 + 1}",
                "facts": '{"forwarding":0}',
                "packages_inventory_id": None,
                "swima_inventory_id": None,
                "decided_at": at if rec else None,
                "recommendation": rec,
                "access": {
                    "allow": "allowed",
                    "isolate": "quarantined",
                    "block": "denied",
                    None: None,
                }[rec],
                "evaluation": None
                if rec is None
                else ("compliant" if rec == "allow" else "noncompliant_major"),
                "reasons": "{}",
                "validators": "{}",
            }
        )
        if rec is None:
            continue
        failing = -1 if rec == "allow" else (0 if rec == "isolate" else 1)
        for p in range(len(POLICIES)):
            failed = p == failing
            result_rows.append(
                {
                    "session_id": sid,
                    "device_id": device + 1,
                    "policy_id": p + 1,
                    "group_id": 1,
                    "outcome": "failed" if failed else "passed",
                    "recommendation": POLICIES[p][2] if failed else "allow",
                    "evaluation": "noncompliant_major" if failed else "compliant",
                    "at": at,
                    "evidence": '{"forwarding":1}' if failed else "{}",
                    "reason": f"{POLICIES[p][0]} failed" if failed else "",
                    "remediation": '["https://help.example.com/fix"]' if failed else "[]",
                    "validator": "os",
                }
            )
        if failing >= 0:
            remediation_rows.append(
                {
                    "session_id": sid,
                    "policy_id": failing + 1,
                    "validator": "os",
                    "uri": None,
                    "text": "Please fix",
                    "language": "en",
                    "at": at,
                }
            )
    bulk(SESSIONS_TABLE, session_rows)
    del session_rows
    bulk(RESULTS_TABLE, result_rows)
    del result_rows
    bulk(REMEDIATIONS_TABLE, remediation_rows)
    if engine.dialect.name == "postgresql":  # ids were given explicitly: move the sequences on
        with engine.begin() as conn:
            for table in (
                PRODUCTS_TABLE,
                GROUPS_TABLE,
                POLICIES_TABLE,
                ENFORCEMENTS_TABLE,
                IDENTITIES_TABLE,
                DEVICES_TABLE,
                SESSIONS_TABLE,
            ):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT max(id) FROM {table.name}))"
                )
            conn.exec_driver_sql("ANALYZE")
    return counts


_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from gateway.report.cli import main
code = main(sys.argv[2:])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("VmHWM", int(hwm.split()[1]), file=sys.stderr)
raise SystemExit(code)
"""


def run_report(url: str, *argv: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of ``nea-report --db url argv`` in a new process.

    The peak is the child's own VmHWM (ru_maxrss would include the parent's pages at fork)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), "--db", url, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    peak = 0.0
    for line in proc.stderr.splitlines():
        if line.startswith("VmHWM "):
            peak = int(line.split()[1]) / 1024
        else:
            print(line, file=sys.stderr)
    return elapsed, peak, proc.returncode


def writer_throughput(url: str, sessions: int = 2000) -> tuple[float, float, int]:
    """Assessments per second through the threaded SqlEvidenceSink (start, facts with a
    200-package inventory every 10th session, 5 results, decision, end), and the time the
    caller spent handing the records over (what the reactor would wait)."""
    from gateway.db import EvidenceStore, SqlEvidenceSink
    from nea.imv.evidence import (
        DeviceFacts,
        PolicyOutcome,
        PolicyResult,
        SessionDecision,
        SessionStart,
    )
    from nea.pb_tnc.imv import ActionRecommendation
    from nea.pb_tnc.messages import AccessRecommendation, AssessmentResult

    sink = SqlEvidenceSink(EvidenceStore(url))
    packages = tuple((f"pkg{k}", "1.0") for k in range(200))
    handed = 0.0
    started = time.perf_counter()
    for i in range(sessions):
        at = START + dt.timedelta(seconds=i)
        device = f"writer-dev-{i % 500}"
        t0 = time.perf_counter()
        sink.session_started(SessionStart(i, f"w{i}@corp", at))
        sink.facts_measured(
            DeviceFacts(
                i,
                at,
                device_id=device,
                product="Debian",
                version="12 x86_64",
                forwarding=0,
                packages=packages if i % 10 == 0 else None,
            )
        )
        for name, ptype, _ in POLICIES:
            sink.policy_result(
                PolicyResult(
                    i,
                    device,
                    f"w{i}@corp",
                    name,
                    ptype,
                    "default",
                    PolicyOutcome.PASSED,
                    ActionRecommendation.ALLOW,
                    AssessmentResult.COMPLIANT,
                    at,
                )
            )
        sink.session_decided(
            SessionDecision(
                i,
                device,
                f"w{i}@corp",
                AccessRecommendation.ALLOWED,
                ActionRecommendation.ALLOW,
                AssessmentResult.COMPLIANT,
                at,
            )
        )
        sink.session_ended(i, at)
        handed += time.perf_counter() - t0
    sink.close(timeout=600)
    elapsed = time.perf_counter() - started
    return sessions / elapsed, handed / sessions * 1e6, sink.dropped


REPORTS = (
    ("summary", "json"),
    ("summary", "html"),
    ("summary", "table"),
    ("noncompliant", "json"),
    ("noncompliant", "html"),
    ("noncompliant", "table"),
    ("sessions", "csv"),
    ("sessions", "table"),
)


@dataclass(frozen=True)
class Outcome:
    dialect: str
    counts: dict[str, int]
    generate_seconds: float
    reports: list[tuple[str, str, float, float, int]]
    """(report, format, seconds, peak RSS MiB, exit code); the first is ``--help``."""
    writer_rate: float
    writer_handover_us: float
    writer_dropped: int


def run(
    url: str, sessions: int, devices: int, writer_sessions: int, say: Callable[[str], None]
) -> Outcome:
    engine = open_for_writing(url)
    started = time.perf_counter()
    say(f"generating {sessions:,} sessions of {devices:,} devices")
    counts = generate(engine, sessions, devices)
    gen = time.perf_counter() - started
    engine.dispose()
    say(
        f"generated {counts['nea_sessions']:,} sessions, {counts['nea_devices']:,} devices, "
        f"{counts['nea_results']:,} results, {counts['nea_remediations']:,} remediations "
        f"in {gen:.1f} s ({engine.dialect.name})"
    )
    reports = [("(start-up: --help)", "-", *run_report(url, "--help"))]
    for report, fmt in REPORTS:
        say(f"nea-report --format {fmt} {report}")
        reports.append((report, fmt, *run_report(url, "--format", fmt, report)))
    say(f"writer: {writer_sessions:,} assessments through the threaded sink")
    rate, per_call, dropped = writer_throughput(url, writer_sessions)
    return Outcome(engine.dialect.name, counts, gen, reports, rate, per_call, dropped)


def collect(quick: bool) -> list[Result]:
    """Seconds and peak RSS per report, generation time and writer throughput (SQLite)."""
    sessions, devices, writer = (10_000, 1_000, 500) if quick else (100_000, 10_000, 2000)
    with tempfile.TemporaryDirectory(prefix="nea-bench-") as tmp:
        out = run(f"sqlite:///{tmp}/evidence.db", sessions, devices, writer, progress)
    scale = f"{sessions // 1000}k sessions, {out.dialect}"
    results: list[Result] = [
        Figure("report", "generate the database", "s", out.generate_seconds, note=scale)
    ]
    for report, fmt, seconds, rss, code in out.reports:
        if code != 0:
            raise RuntimeError(f"nea-report {report} --format {fmt} exited with {code}")
        what = "start-up (nea-report --help)" if fmt == "-" else f"{report} --format {fmt}"
        results.append(Figure("report", what, "s", seconds, note=scale))
        results.append(Figure("report", f"{what}, peak RSS", "MiB", rss, note=scale))
    if out.writer_dropped:
        raise RuntimeError(f"the evidence writer dropped {out.writer_dropped} records")
    note = f"{writer:,} assessments, {out.dialect}"
    results.append(
        Figure(
            "report",
            "evidence writer",
            "assessments/s",
            out.writer_rate,
            better="higher",
            note=note,
        )
    )
    results.append(
        Figure(
            "report",
            "evidence writer, caller hand-over",
            "µs/assessment",
            out.writer_handover_us,
            note=note,
        )
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--db", help="an empty database to fill (default: a temporary SQLite)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="use a throw-away PostgreSQL server (Debian's postgresql)",
    )
    args = parser.parse_args(argv)
    console = Console()
    with ExitStack() as stack:
        if args.db:
            url = args.db
        elif args.postgres:
            from tests.harness.postgres import postgres_server

            url = stack.enter_context(postgres_server())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="nea-bench-"))
            url = f"sqlite:///{tmp}/evidence.db"
        out = run(url, args.sessions, args.devices, 2000, console.print)
        table = Table(
            title=f"nea-report over {args.sessions:,} sessions / "
            f"{args.devices:,} devices ({out.dialect})"
        )
        for column in ("report", "format", "seconds", "peak RSS MiB", "exit"):
            table.add_column(column, justify="left" if column in ("report", "format") else "right")
        for report, fmt, seconds, rss, code in out.reports:
            table.add_row(report, fmt, f"{seconds:.2f}", f"{rss:.0f}", str(code))
        console.print(table)
        console.print(
            f"writer: {out.writer_rate:,.0f} assessments/s through the threaded sink "
            f"(9 records each); the caller spent {out.writer_handover_us:,.0f} us per "
            f"assessment handing them over; {out.writer_dropped} dropped"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
