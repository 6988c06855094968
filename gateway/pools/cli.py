"""``nea-pool``: manage SQL pools and attributes, the counterpart of strongSwan's ``ipsec pool``.

The database is ``--db URL``, else ``$NEA_POOL_DB``, else ``sqlite:///var/nea-pool.db`` (a
SQLite file under ./var/ of the working directory, created on first use). PostgreSQL:
``--db postgresql://user:password@host/dbname`` (psycopg 3). The schema is created or migrated
on first use.

Exit codes: 0 done; 2 usage error (bad option, malformed address/range/timeout/attribute: fix
the command line); 1 operational error (unknown pool, pool exists, overlapping range, database
failure). ``--batch FILE`` runs one command per line in a single transaction: all or nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from gateway.pools.addresses import parse_address
from gateway.pools.attributes import (
    ATTRIBUTE_KEYWORDS,
    ConfigAttributeType,
    ValueKind,
    attribute_type_name,
    encode_attribute,
    format_attribute_value,
    lookup_keyword,
)
from gateway.pools.base import Lease
from gateway.pools.errors import InvalidArgument, PoolError
from gateway.pools.sql import DEFAULT_DB_URL, LeaseFilter, SqlPools, parse_timeout

__all__ = ["main"]

_OPS = (
    "status",
    "add",
    "replace",
    "del_",
    "resize",
    "leases",
    "purge",
    "addattr",
    "delattr",
    "showattr",
    "statusattr",
    "batch",
)
_LEGACY_ATTR_NAMES = {"dns", "nbns", "wins"}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nea-pool",
        description="Manage virtual IP pools, leases and configuration attributes in SQL.",
        epilog=(
            "Database: --db URL, else $NEA_POOL_DB, else sqlite:///var/nea-pool.db (./var/). "
            "Timeouts are hours as in ipsec pool (24) or take a unit: 90s, 30m, 12h, 7d; "
            "0 makes leases static. Exit codes: 2 usage error, 1 operational error."
        ),
    )
    ops = p.add_mutually_exclusive_group(required=True)
    ops.add_argument("--status", action="store_true", help="pools with usage statistics")
    ops.add_argument("--add", metavar="NAME", help="add a pool (--start/--end or --addresses)")
    ops.add_argument("--replace", metavar="NAME", help="like --add, replacing an existing pool")
    ops.add_argument("--del", dest="del_", metavar="NAME", help="delete a pool and its leases")
    ops.add_argument("--resize", metavar="NAME", help="grow a pool to a new --end")
    ops.add_argument("--leases", action="store_true", help="list leases (see --filter)")
    ops.add_argument("--purge", metavar="NAME", help="delete the lease history of a pool")
    ops.add_argument("--addattr", metavar="TYPE", help="add an attribute (keyword or number)")
    ops.add_argument("--delattr", metavar="TYPE", help="delete attributes of a type")
    ops.add_argument("--showattr", action="store_true", help="list attribute keywords")
    ops.add_argument("--statusattr", action="store_true", help="list stored attributes")
    ops.add_argument("--batch", metavar="FILE", help="run commands from FILE ('-' = stdin)")
    p.add_argument("--start", metavar="ADDR", help="first address of the pool")
    p.add_argument("--end", metavar="ADDR", help="last address (--add, --resize)")
    p.add_argument("--timeout", metavar="T", default="0", help="lease timeout (default 0: static)")
    p.add_argument("--addresses", metavar="FILE", help="lines 'ip' or 'ip=identity'")
    p.add_argument("--filter", metavar="F", help="pool=,id=,addr=,tstamp=,status=")
    p.add_argument("--pool", metavar="NAME", help="attribute for this pool only")
    p.add_argument("--identity", metavar="ID", help="attribute for this identity (with --pool)")
    for opt in ("--addr", "--mask", "--server"):
        p.add_argument(opt, dest="v_addr", metavar="ADDR", help="address value (dns, nbns, ...)")
    p.add_argument("--subnet", dest="v_subnet", metavar="CIDR", help="subnet value (split-include)")
    p.add_argument("--string", dest="v_string", metavar="TEXT", help="text value (banner)")
    p.add_argument("--hex", dest="v_hex", metavar="HEX", help="raw value in hex (any type)")
    p.add_argument("--hexout", action="store_true", help="attribute values in hex")
    p.add_argument("--utc", action="store_true", help="times in UTC")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--db", metavar="URL", help="database URL")
    return p


@dataclass
class _Out:
    console: Console
    json: bool
    utc: bool
    results: list[Any]

    def text(self, line: str) -> None:
        if not self.json:
            self.console.print(Text(line))

    def table(self, table: Table) -> None:
        if not self.json:
            self.console.print(table)


def _op(args: argparse.Namespace) -> str:
    return next(op for op in _OPS if getattr(args, op) not in (None, False))


def _value(args: argparse.Namespace) -> tuple[ValueKind, str] | None:
    given = [
        (kind, v)
        for kind, v in (
            (ValueKind.ADDR, args.v_addr),
            (ValueKind.SUBNET, args.v_subnet),
            (ValueKind.STRING, args.v_string),
            (ValueKind.HEX, args.v_hex),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise InvalidArgument("give one value: --addr/--mask/--server, --subnet, --string or --hex")
    return given[0] if given else None


def _fmt_timeout(seconds: int) -> str:
    if seconds == 0:
        return "static"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _fmt_time(ts: int, utc: bool) -> str:
    if ts <= 1:
        return ""
    when = datetime.fromtimestamp(ts, UTC)
    return (when if utc else when.astimezone()).strftime("%Y-%m-%d %H:%M:%S%z")


def _iso(ts: int) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts > 1 else None


def _table(*columns: str) -> Table:
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for c in columns:
        t.add_column(c, no_wrap=True)
    return t


def _cells(*values: object) -> list[Text]:
    return [Text(str(v)) for v in values]


# the commands ------------------------------------------------------------------------------
def _status(store: SqlPools, conn: Connection, out: _Out) -> None:
    statuses = store.status(conn)
    attrs = store.list_attributes(conn)
    dns = [
        format_attribute_value(a.type, a.value)
        for a in attrs
        if a.type in (ConfigAttributeType.INTERNAL_IP4_DNS, ConfigAttributeType.INTERNAL_IP6_DNS)
    ]
    nbns = [
        format_attribute_value(a.type, a.value)
        for a in attrs
        if a.type in (ConfigAttributeType.INTERNAL_IP4_NBNS, ConfigAttributeType.INTERNAL_IP6_NBNS)
    ]
    rows: list[dict[str, Any]] = []
    for s in statuses:
        rows.append(
            {
                "name": s.name,
                "range": s.ranges[0],
                "timeout": s.timeout,
                "size": s.size,
                "online": s.online,
                "leased": s.leased,
                "online_percent": round(100 * s.online / s.size, 1) if s.size else 0.0,
                "leased_percent": round(100 * s.leased / s.size, 1) if s.size else 0.0,
            }
        )
    out.results.append({"pools": rows, "dns": dns, "nbns": nbns})
    out.text("dns servers: " + (" ".join(dns) if dns else "none"))
    out.text("nbns servers: " + (" ".join(nbns) if nbns else "none"))
    if not rows:
        out.text("no pools found.")
        return
    t = _table("name", "range", "timeout", "size", "online", "usage")
    for r in rows:
        t.add_row(
            *_cells(
                r["name"],
                r["range"],
                _fmt_timeout(r["timeout"]),
                r["size"],
                f"{r['online']} ({r['online_percent']:g}%)",
                f"{r['leased']} ({r['leased_percent']:g}%)",
            )
        )
    out.table(t)


def _add(store: SqlPools, conn: Connection, args: argparse.Namespace, out: _Out) -> None:
    replace = args.replace is not None
    name = args.replace if replace else args.add
    timeout = parse_timeout(args.timeout)
    if args.addresses is not None:
        if args.start or args.end:
            raise InvalidArgument("give either --addresses FILE or --start/--end, not both")
        try:
            if args.addresses == "-":
                lines = sys.stdin.read().splitlines()
            else:
                lines = Path(args.addresses).read_text().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"cannot read --addresses file: {exc}") from None
        count = store.add_address_pool(name, lines, timeout, replace=replace, conn=conn)
        out.results.append({"added": name, "addresses": count, "timeout": timeout})
        out.text(f"added pool '{name}': {count} addresses, timeout {_fmt_timeout(timeout)}")
        return
    if args.start is None or args.end is None:
        raise InvalidArgument(f"--add {name} needs --start and --end (or --addresses FILE)")
    start = parse_address(args.start, "--start address")
    end = parse_address(args.end, "--end address")
    st = store.add_pool(name, start, end, timeout, replace=replace, conn=conn)
    out.results.append(
        {"added": name, "start": str(start), "end": str(end), "size": st.size, "timeout": timeout}
    )
    out.text(
        f"{'replaced' if replace else 'added'} pool '{name}': {start}-{end}, "
        f"{st.size} addresses, timeout {_fmt_timeout(timeout)}"
    )


def _leases(store: SqlPools, conn: Connection, args: argparse.Namespace, out: _Out) -> None:
    found: list[Lease] = store.leases(LeaseFilter.parse(args.filter), conn)
    out.results.append(
        {
            "leases": [
                {
                    "pool": x.pool,
                    "address": str(x.address),
                    "status": x.state.value,
                    "acquired": x.acquired,
                    "released": x.released,
                    "acquired_iso": _iso(x.acquired),
                    "released_iso": _iso(x.released),
                    "identity": x.identity,
                }
                for x in found
            ]
        }
    )
    if not found:
        out.text("no matching leases found.")
        return
    t = _table("name", "address", "status", "start", "end", "identity")
    for x in found:
        t.add_row(
            *_cells(
                x.pool,
                x.address,
                x.state.value,
                _fmt_time(x.acquired, out.utc),
                _fmt_time(x.released, out.utc),
                x.identity,
            )
        )
    out.table(t)
    out.text(f"{len(found)} leases")


def _addattr(
    store: SqlPools, conn: Connection, args: argparse.Namespace, out: _Out, name: str
) -> None:
    value = _value(args)
    if value is None:
        raise InvalidArgument(
            f"--addattr {name} needs a value: --addr/--mask/--server, --subnet, --string or --hex"
        )
    type_, data = encode_attribute(name, *value)
    store.add_attribute(type_, data, args.pool, args.identity, conn)
    shown = format_attribute_value(type_, data)
    out.results.append(
        {
            "added_attribute": {
                "type": type_,
                "name": attribute_type_name(type_),
                "value": shown,
                "hex": data.hex(),
                "pool": args.pool,
                "identity": args.identity,
            }
        }
    )
    where = f" for pool '{args.pool}'" if args.pool else ""
    where += f" and identity '{args.identity}'" if args.identity else ""
    out.text(f"added {attribute_type_name(type_)} ({type_}) attribute {shown}{where}")


def _delattr(
    store: SqlPools, conn: Connection, args: argparse.Namespace, out: _Out, name: str
) -> None:
    value = _value(args)
    kw = lookup_keyword(name)
    if value is not None:
        type_, data = encode_attribute(name, *value)
        types: list[tuple[int, bytes | None]] = [(type_, data)]
    else:
        types = [(t, None) for t in dict.fromkeys(x for x in (kw.ip4, kw.ip6) if x is not None)]
    count = sum(store.delete_attributes(t, d, args.pool, args.identity, conn) for t, d in types)
    if count == 0:
        raise PoolError(
            f"no {kw.keyword} attribute matched"
            + (f" in pool '{args.pool}'" if args.pool else " (global)")
            + "; see --statusattr"
        )
    out.results.append({"deleted_attributes": count})
    out.text(f"deleted {count} {kw.keyword} attribute(s)")


def _showattr(out: _Out) -> None:
    rows: list[dict[str, Any]] = [
        {
            "keyword": k.keyword,
            "value": k.kind.value,
            "ipv4_type": k.ip4,
            "ipv6_type": k.ip6,
            "description": k.description,
        }
        for k in ATTRIBUTE_KEYWORDS.values()
    ]
    out.results.append({"keywords": rows})
    t = _table("keyword", "value", "IPv4 type", "IPv6 type", "description")
    for r in rows:
        t.add_row(
            *_cells(
                r["keyword"],
                "--" + str(r["value"]),
                _type_label(r["ipv4_type"]),
                _type_label(r["ipv6_type"]),
                r["description"],
            )
        )
    out.table(t)
    out.text("any IANA name (internal_ip4_dns, unity_banner, ...) or number also works (--hex)")


def _type_label(t: int | None) -> str:
    return "-" if t is None else f"{attribute_type_name(t)} ({t})"


def _statusattr(store: SqlPools, conn: Connection, args: argparse.Namespace, out: _Out) -> None:
    attrs = store.list_attributes(conn)
    rows = [
        {
            "type": a.type,
            "name": attribute_type_name(a.type),
            "value": format_attribute_value(a.type, a.value, args.hexout),
            "hex": a.value.hex(),
            "pool": a.pool,
            "identity": a.identity,
        }
        for a in attrs
    ]
    out.results.append({"attributes": rows})
    if not rows:
        out.text("no attributes found.")
        return
    t = _table("type", "value", "pool", "identity")
    for r in rows:
        t.add_row(
            *_cells(f"{r['name']} ({r['type']})", r["value"], r["pool"] or "", r["identity"] or "")
        )
    out.table(t)


def _run(store: SqlPools, conn: Connection, args: argparse.Namespace, out: _Out) -> None:
    op = _op(args)
    # ipsec pool compatibility: --add/--del dns|nbns|wins with a value is an attribute command
    if op in ("add", "del_") and getattr(args, op).lower() in _LEGACY_ATTR_NAMES:
        if _value(args) is not None:
            op = "addattr" if op == "add" else "delattr"
            setattr(args, op, getattr(args, "add" if op == "addattr" else "del_"))
    if args.identity is not None and args.pool is None:
        raise InvalidArgument("--identity requires --pool: identity attributes belong to a pool")
    if op == "status":
        _status(store, conn, out)
    elif op in ("add", "replace"):
        _add(store, conn, args, out)
    elif op == "del_":
        store.delete_pool(args.del_, conn)
        out.results.append({"deleted": args.del_})
        out.text(f"deleted pool '{args.del_}'")
    elif op == "resize":
        if args.end is None:
            raise InvalidArgument(f"--resize {args.resize} needs --end ADDR (the new last address)")
        end = parse_address(args.end, "--end address")
        gained = store.resize(args.resize, end, conn)
        out.results.append({"resized": args.resize, "end": str(end), "added": gained})
        out.text(f"resized pool '{args.resize}' to end at {end}: {gained} more addresses")
    elif op == "leases":
        _leases(store, conn, args, out)
    elif op == "purge":
        purged = store.purge(args.purge, conn)
        out.results.append({"purged": purged, "pool": args.purge})
        out.text(f"purged {purged} leases in pool '{args.purge}'")
    elif op == "addattr":
        _addattr(store, conn, args, out, args.addattr)
    elif op == "delattr":
        _delattr(store, conn, args, out, args.delattr)
    elif op == "showattr":
        _showattr(out)
    elif op == "statusattr":
        _statusattr(store, conn, args, out)


def _read_batch(parser: argparse.ArgumentParser, source: str) -> list[argparse.Namespace]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --batch file: {exc}") from None
    commands = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)
            args = parser.parse_args(words)
        except (UsageError, ValueError) as exc:
            raise InvalidArgument(f"batch line {number}: {exc}") from None
        if args.batch is not None:
            raise InvalidArgument(f"batch line {number}: --batch commands can not be nested")
        if args.db is not None or args.json:
            raise InvalidArgument(f"batch line {number}: give --db and --json on the command line")
        args.line = number
        commands.append(args)
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    stdout: TextIO = sys.stdout
    stderr: TextIO = sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except UsageError as exc:
        print(f"nea-pool: {exc}\n{parser.format_usage()}", end="", file=stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    buffer = io.StringIO()
    width = None if stdout.isatty() else 200
    console = Console(file=buffer, width=width, highlight=False, no_color=not stdout.isatty())
    out = _Out(console, args.json, args.utc, [])
    store: SqlPools | None = None
    try:
        commands = [args] if args.batch is None else _read_batch(parser, args.batch)
        if args.showattr:
            _showattr(out)
        else:
            url = args.db or os.environ.get("NEA_POOL_DB") or DEFAULT_DB_URL
            # the CLI never runs crash recovery: that would release the gateways' live leases
            store = SqlPools(url, crash_recovery=False)
            with store.engine.begin() as conn:
                for cmd in commands:
                    cmd.utc = cmd.utc or args.utc
                    try:
                        _run(store, conn, cmd, out)
                    except PoolError as exc:
                        if args.batch is not None:
                            exc.args = (f"batch line {cmd.line}: {exc} (nothing was changed)",)
                        raise
    except PoolError as exc:
        print(f"nea-pool: {exc}", file=stderr)
        return exc.exit_code
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        print(f"nea-pool: database error: {detail}", file=stderr)
        return 1
    finally:
        if store is not None:
            store.close()
    if args.json:
        result = out.results if args.batch is not None else out.results[0]
        json.dump(result, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
