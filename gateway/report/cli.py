"""``nea-report``: compliance reports from the evidence database, for auditors and operators.

Commands::

    nea-report summary                 compliance rate, sessions by recommendation, by OS,
                                       by policy, trend by day
    nea-report endpoints               latest state of each device
    nea-report endpoint DEVICE-ID      a device's history: sessions, per-policy results with
                                       their evidence, remediation, inventories
    nea-report sessions [--limit N]    sessions (with --since / --until)
    nea-report policies                pass/fail per policy, enforced groups, devices failing
    nea-report noncompliant            who is not compliant now, why, remediation sent

Options (before or after the command): ``--db URL`` (default ``$NEA_EVIDENCE_DB`` or
``sqlite:///var/nea-evidence.db``, the gateway's default, relative to the working
directory); ``--format table|json|csv|html``; ``--output FILE``; ``--since`` / ``--until``
(an ISO date or time in UTC, or a duration ago such as ``7d``, ``12h``); ``--fail-under
PERCENT`` (exit 1 when the device compliance rate is below PERCENT, or when no device has
been assessed).

Exit codes: 0 done; 1 compliance below ``--fail-under``; 2 usage error, missing or wrong
database, unknown device.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import IO, Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from gateway.db.engine import DEFAULT_DB_URL, open_for_reading, redacted
from gateway.db.errors import EvidenceError
from gateway.report.model import Report
from gateway.report.queries import (
    NotFound,
    Window,
    compliance,
    endpoint_report,
    endpoints_report,
    noncompliant_report,
    policies_report,
    sessions_report,
    summary_report,
)
from gateway.report.render import FORMATS, render

__all__ = ["ENV_DB", "build_parser", "main", "parse_time"]

ENV_DB = "NEA_EVIDENCE_DB"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Usage(Exception):
    pass


def parse_time(text: str, now: _dt.datetime) -> _dt.datetime:
    """An ISO date/time (UTC unless it says otherwise) or a duration ago (``7d``, ``12h``)."""
    m = _DURATION.match(text)
    if m:
        return now - _dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        value = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Usage(
            f"invalid time {text!r}: give an ISO date or time (2026-11-01, "
            "2026-11-01T08:00) or a duration ago (30m, 12h, 7d, 2w)"
        ) from None
    return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--db",
        metavar="URL",
        default=default(None),
        help=f"evidence database URL (default: ${ENV_DB} or {DEFAULT_DB_URL}; "
        "PostgreSQL: postgresql://user:password@host/dbname)",
    )
    parser.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default=default("table"),
        help="output format (default: table)",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        default=default(None),
        help="write the report to FILE instead of standard output",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        default=default(None),
        help="only sessions/results from TIME on (ISO date/time in UTC, or "
        "a duration ago: 7d, 12h)",
    )
    parser.add_argument(
        "--until", metavar="TIME", default=default(None), help="only sessions/results before TIME"
    )
    parser.add_argument(
        "--fail-under",
        metavar="PERCENT",
        type=float,
        default=default(None),
        help="exit 1 when the device compliance rate is below PERCENT",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nea-report",
        description="Compliance reports from the nea-gateway evidence database.",
        epilog="Exit codes: 0 ok, 1 compliance below --fail-under, 2 error.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {
        "summary": "compliance rate; sessions by recommendation, by OS, by policy; trend by day",
        "endpoints": "latest state of each device",
        "endpoint": "one device's history with per-policy results and evidence",
        "sessions": "sessions in a period (--since / --until)",
        "policies": "pass/fail per policy",
        "noncompliant": "non-compliant devices: who, why, remediation sent",
    }
    for name, text in commands.items():
        p = sub.add_parser(name, help=text, description=text)
        _common(p, suppress=True)
        if name == "endpoint":
            p.add_argument(
                "device",
                metavar="DEVICE-ID",
                help="the device id the endpoint reported (see `nea-report endpoints`)",
            )
            p.add_argument(
                "--limit",
                type=int,
                default=20,
                help="newest sessions to show (default 20, 0 = all)",
            )
        if name == "sessions":
            p.add_argument("--limit", type=int, default=0, help="at most N sessions (0 = all)")
            p.add_argument("--device", metavar="DEVICE-ID", help="only this device")
            p.add_argument("--identity", metavar="ID", help="only this identity")
    return parser


def _build(conn: Connection, args: argparse.Namespace, window: Window) -> Report:
    builders: dict[str, Callable[[], Report]] = {
        "summary": lambda: summary_report(conn, window),
        "endpoints": lambda: endpoints_report(conn, window),
        "endpoint": lambda: endpoint_report(conn, args.device, window, args.limit or None),
        "sessions": lambda: sessions_report(
            conn, window, args.limit or None, args.device, args.identity
        ),
        "policies": lambda: policies_report(conn, window),
        "noncompliant": lambda: noncompliant_report(conn, window),
    }
    return builders[args.command]()


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else 2

    def fail(message: str) -> int:
        print(f"nea-report: error: {message}", file=err)
        return 2

    now = _dt.datetime.now(_dt.UTC)
    try:
        window = Window(
            parse_time(args.since, now) if args.since else None,
            parse_time(args.until, now) if args.until else None,
        )
    except _Usage as exc:
        return fail(str(exc))
    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        return fail("--fail-under takes a percentage between 0 and 100")
    url = args.db or os.environ.get(ENV_DB) or DEFAULT_DB_URL
    try:
        engine = open_for_reading(url)
    except EvidenceError as exc:
        return fail(str(exc))
    meta = {
        "generated_at": now.isoformat(timespec="seconds"),
        "database": redacted(url),
        "filters": window.describe(),
    }
    rate = None
    try:
        with ExitStack() as stack:
            conn = stack.enter_context(engine.connect())
            report = _build(conn, args, window)
            report.meta = meta
            if args.fail_under is not None:
                rate = compliance(conn, window)
            target = out
            if args.output:
                try:
                    target = stack.enter_context(
                        open(args.output, "w", encoding="utf-8", newline="")
                    )
                except OSError as exc:
                    return fail(f"cannot write {args.output}: {exc.strerror or exc}")
            # long sections stream from the database while they are written
            render(report, args.format, target)
    except NotFound as exc:
        return fail(str(exc.args[0]))
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        return fail(f"reading {redacted(url)} failed: {str(orig).strip().splitlines()[0]}")
    except OSError as exc:
        return fail(f"cannot write the report: {exc.strerror or exc}")
    finally:
        engine.dispose()
    if rate is not None:
        ok, total, percent = rate
        if percent is None:
            print(
                f"nea-report: no device has been assessed; --fail-under {args.fail_under:g}% "
                "not met",
                file=err,
            )
            return 1
        if percent < args.fail_under:
            print(
                f"nea-report: compliance {percent:g}% ({ok}/{total} devices) is below "
                f"{args.fail_under:g}%",
                file=err,
            )
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
