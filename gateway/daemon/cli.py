"""``nea-gateway``: the daemon (``run``) and its control commands.

::

    nea-gateway init DIR [options]      # a new gateway directory (gateway/init.py)
    nea-gateway run [-c FILE]           # the daemon; embedded defaults without -c
    nea-gateway check -c FILE           # check a configuration and exit
    nea-gateway list-sas [--ike NAME] [--json]
    nea-gateway list-conns [--json]
    nea-gateway list-pools [--json]
    nea-gateway initiate --ike NAME [--remote ADDR]
    nea-gateway terminate --ike NAME|ID
    nea-gateway reload
    nea-gateway reassess --all | --ike NAME|ID   # re-authenticate: posture runs again
    nea-gateway stats [--json]

Exit codes: 0 success, 1 command failed (daemon unreachable, no such SA), 2 bad usage or
configuration (the message names the file, key and reason).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gateway.daemon.config import (
    ConfigError,
    GatewayConfig,
    LogSpec,
    default_config,
    default_socket_path,
    load_config,
)
from gateway.daemon.control import ControlError, call

__all__ = ["SUBSYSTEM_LOGGERS", "configure_logging", "main", "run"]

SUBSYSTEM_LOGGERS: dict[str, tuple[str, ...]] = {
    "dmn": ("gateway.daemon",),
    "ike": ("ike.sa", "ike.auth", "gateway.ike_udp"),
    "chd": ("gateway.daemon.chd",),
    "cfg": ("gateway.daemon.cfg", "gateway.pools"),
    "enc": ("ike.message", "ike.payloads", "ike.crypto"),
    "net": ("gateway.daemon.net", "gateway.radius", "radius"),
    "knl": ("gateway.daemon.knl", "gateway.dataplane"),
    "tls": ("ike.eap", "ike.eap_tls", "ike.eap_ttls", "ike.eap_peap"),
    "tnc": ("nea.pb_tnc", "nea.pt_eap", "nea.pa"),
    "imv": ("nea.imv", "nea.policy", "gateway.db"),
}
"""strongSwan subsystem name -> the Python loggers it covers."""

_LEVELS = {-1: logging.CRITICAL + 10, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def _py_level(level: int) -> int:
    return _LEVELS.get(level, logging.DEBUG - 5 if level > 2 else logging.INFO)


class _SubsystemFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        best, best_len = "lib", 0
        for subsys, prefixes in SUBSYSTEM_LOGGERS.items():
            for p in prefixes:
                if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                    best, best_len = subsys, len(p)
        record.subsys = best.upper()
        return True


def configure_logging(spec: LogSpec, *, verbose: int = 0) -> None:
    """Levels per subsystem (``[log]``), to stderr or ``[log] file``."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if spec.file is not None:
        spec.file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(spec.file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(subsys)s %(message)s"))
    handler.addFilter(_SubsystemFilter())
    root.addHandler(handler)
    default = spec.levels.get("default", 1) + verbose
    root.setLevel(_py_level(default))
    logging.getLogger("twisted").setLevel(logging.DEBUG if default >= 2 else logging.WARNING)
    for subsys, prefixes in SUBSYSTEM_LOGGERS.items():
        level = spec.levels.get(subsys)
        for p in prefixes:
            logging.getLogger(p).setLevel(
                _py_level(level + verbose) if level is not None else logging.NOTSET
            )


# --------------------------------------------------------------------------------------------
# run


def _open_evidence(config: GatewayConfig) -> Any:
    """The evidence database sink when posture runs anywhere and ``[nea] database`` is set."""
    nea = config.nea
    posture = (
        any(c.posture.assess for c in config.connections)
        or (config.radius is not None and config.radius.posture)
        or config.pt_tls is not None
    )
    if nea is None or not posture or not nea.database:
        return None
    try:
        from gateway.db.sink import open_evidence_sink
    except ImportError as exc:
        logging.getLogger("gateway.daemon").warning("evidence database not available: %s", exc)
        return None
    if nea.database.startswith("sqlite:///") and not nea.database.startswith("sqlite:////"):
        Path(nea.database[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return open_evidence_sink(nea.database)
    except Exception as exc:
        raise ConfigError(config.source, "nea.database", str(exc)) from None


def run(config: GatewayConfig, config_path: Path | None, reactor: Any = None) -> int:
    """Start the daemon in ``reactor`` and run it until SIGTERM/SIGINT."""
    from gateway.daemon.control import listen
    from gateway.daemon.pt_tls import start_pt_tls
    from gateway.daemon.radius import start_radius
    from gateway.daemon.service import Gateway

    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    from twisted.python import log as twisted_log

    twisted_log.PythonLoggingObserver("twisted").start()  # type: ignore[no-untyped-call]
    sink = _open_evidence(config)
    gateway = Gateway(config, reactor, config_path=config_path, evidence_sink=sink)
    sock = config.control.socket.absolute()

    def abort() -> None:
        """Undo a half start: close ports, dataplane and sink and run the reactor's
        shutdown triggers (they stop the worker threads), so the process can exit."""
        gateway._close_resources()
        reactor.fireSystemEvent("shutdown")

    try:
        control_port = listen(reactor, sock, gateway)
    except (ControlError, OSError) as exc:
        print(f"nea-gateway: control socket {sock}: {exc}", file=sys.stderr)
        abort()
        return 1
    try:
        gateway.start()
        gateway.radius = start_radius(gateway, reactor)
        gateway.pt_tls = start_pt_tls(gateway, reactor)
    except Exception as exc:
        config_error = isinstance(exc, ConfigError)
        print(f"nea-gateway: {'' if config_error else 'cannot start: '}{exc}", file=sys.stderr)
        control_port.stopListening()
        sock.unlink(missing_ok=True)
        abort()
        return 2 if config_error else 1
    log = logging.getLogger("gateway.daemon")
    log.info(
        "nea-gateway started (%s), control socket %s, dataplane %s",
        config.source,
        sock,
        gateway.dataplane.name,
    )
    if not config.connections:
        log.warning("no connections configured; see docs/config.md")

    def cleanup() -> None:
        control_port.stopListening()
        sock.unlink(missing_ok=True)

    reactor.addSystemEventTrigger("before", "shutdown", gateway.stop)
    reactor.addSystemEventTrigger("after", "shutdown", cleanup)
    reactor.run()
    return 0


# --------------------------------------------------------------------------------------------
# Output


def _ago(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h"


def _print_sas(console: Console, sas: list[dict[str, Any]]) -> None:
    if not sas:
        console.print("no IKE_SAs")
        return
    table = Table(title="IKE_SAs", show_lines=True)
    for col in ("IKE_SA", "state", "local", "remote", "EAP id / vips", "verdict", "CHILD_SAs"):
        table.add_column(col, overflow="fold")
    for sa in sas:
        if sa.get("state") == "CONNECTING":
            table.add_row(
                f"{sa.get('name') or '?'} {sa['ike_sa']}",
                f"CONNECTING\n{sa.get('detail', '')}",
                "",
                "",
                "",
                "",
                "",
            )
            continue
        children = "\n".join(
            f"{c['name']}: INSTALLED, ESP{' in UDP' if c['encap'] else ''} "
            f"{c['spi_in']}_i {c['spi_out']}_o\n"
            f"  {c['encr']}{'/' + c['integ'] if c['integ'] else ''}\n"
            f"  {', '.join(c['local_ts'])} === {', '.join(c['remote_ts'])}"
            for c in sa["children"]
        )
        eap = sa.get("remote_eap_id")
        vips = ", ".join(sa.get("remote_vips") or [])
        table.add_row(
            f"{sa['name']}: #{sa['uniqueid']}\n{sa['spi_i']}_i{'*' if sa['initiator'] else ''}\n"
            f"{sa['spi_r']}_r{'' if sa['initiator'] else '*'}",
            f"{sa['state']}\n{_ago(sa.get('established'))} ago\n{sa['suite']}",
            f"'{sa['local_id']}'\n@ {sa['local_host']}[{sa['local_port']}]",
            f"'{sa['remote_id']}'\n@ {sa['remote_host']}[{sa['remote_port']}]",
            "\n".join(x for x in (f"EAP: '{eap}'" if eap else "", vips and f"[{vips}]") if x),
            sa.get("verdict") or "-",
            children or "-",
        )
    console.print(table)


def _print_conns(console: Console, conns: list[dict[str, Any]]) -> None:
    if not conns:
        console.print("no connections")
        return
    table = Table(title="connections", show_lines=True)
    for col in ("connection", "addresses", "local", "remote", "pools", "posture", "children"):
        table.add_column(col, overflow="fold")
    for c in conns:
        children = "\n".join(
            f"{ch['name']} ({'/'.join(ch['verdict'])}): {', '.join(ch['local_ts'])} === "
            f"{', '.join(ch['remote_ts'])}"
            + (f" pools {', '.join(ch['pools'])}" if ch["pools"] else "")
            for ch in c["children"]
        )
        table.add_row(
            c["name"],
            f"{', '.join(c['local_addrs'])}...{', '.join(c['remote_addrs'])}\nIKEv2 "
            + ", ".join(c["proposals"]),
            f"{c['local']['auth']}\n'{c['local']['id']}'",
            f"{c['remote']['auth']}\n'{c['remote']['id']}'"
            + (f"\nEAP '{c['remote']['eap_id']}'" if c["remote"].get("eap_id") else ""),
            ", ".join(c["pools"]) or "-",
            c["posture"]["method"] if c["posture"]["assess"] else "-",
            children or "-",
        )
    console.print(table)


def _print_stats(console: Console, s: dict[str, Any]) -> None:
    table = Table(title="nea-gateway", show_header=False)
    table.add_column("key")
    table.add_column("value")
    table.add_row("uptime", f"{_ago(s['uptime'])}, since {s['since']}")
    table.add_row(
        "listening", f"{s['listen']['address']} ports {', '.join(map(str, s['listen']['ports']))}"
    )
    table.add_row("dataplane", s["dataplane"])
    table.add_row(
        "IKE_SAs",
        f"{s['ike_sas']} established, {s['half_open']} half-open, {s['connecting']} connecting",
    )
    table.add_row("CHILD_SAs", str(s["child_sas"]))
    p = s["packets"]
    table.add_row(
        "packets",
        f"IKE {p['ike_received']} in / {p['ike_sent']} out, {p['invalid']} invalid, "
        f"{p['errors']} errors; ESP {p['esp_received']} in, {p['esp_dropped']} dropped; "
        f"{p['keepalives']} keepalives",
    )
    engine = s.get("engine") or {}
    if engine:
        table.add_row(
            "IKE engine", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in engine.items())
        )
    t = s["totals"]
    table.add_row(
        "totals",
        f"{t['established']} established, {t['closed']} closed, {t['auth_failed']} auth failed, "
        f"{t['children_installed']} CHILD_SAs, {t['children_failed']} CHILD_SA failures, "
        f"{t['posture_assessments']} assessments, {t.get('reassessments', 0)} re-assessments "
        f"asked, {t['reloads']} reloads",
    )
    table.add_row(
        "verdicts",
        ", ".join(f"{k} {v}" for k, v in s["verdicts"].items()) + " (none: refused by posture)",
    )
    for pool in s["pools"]:
        table.add_row(
            f"pool {pool['name']}",
            f"{pool['online']}/{pool['size']} online ({', '.join(pool['ranges'])})",
        )
    console.print(table)


def _print_pools(console: Console, pools: list[dict[str, Any]]) -> None:
    table = Table(title="pools")
    for col in ("pool", "ranges", "size", "online", "leased"):
        table.add_column(col, overflow="fold")
    for p in pools:
        table.add_row(
            p["name"], ", ".join(p["ranges"]), str(p["size"]), str(p["online"]), str(p["leased"])
        )
    console.print(table)


# --------------------------------------------------------------------------------------------
# main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nea-gateway",
        description="NEA posture gateway: IKEv2 responder with EAP and PT-EAP posture, "
        "RADIUS front-end, and its control commands.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def control(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-s",
            "--socket",
            type=Path,
            help="control socket (default: -c FILE's control.socket, else $NEA_GATEWAY_SOCKET "
            "or ./var/nea-gateway.ctl)",
        )
        p.add_argument("-c", "--config", type=Path, help="take the socket path from this file")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    from gateway.init import add_arguments as init_arguments

    init_dir = sub.add_parser(
        "init",
        help="create a gateway directory (CA, certificate, gateway.toml, policy, databases)",
        description="Create a gateway directory: CA, gateway certificate, gateway.toml, "
        "policy.toml and the databases.",
    )
    init_arguments(init_dir)
    run_p = sub.add_parser("run", help="run the daemon")
    run_p.add_argument("-c", "--config", type=Path, help="configuration file (TOML)")
    run_p.add_argument("-v", "--verbose", action="count", default=0, help="raise every log level")
    check = sub.add_parser("check", help="check a configuration file and exit")
    check.add_argument("-c", "--config", type=Path, required=True)
    for name, text in (
        ("list-sas", "IKE_SAs and CHILD_SAs (like swanctl --list-sas)"),
        ("list-conns", "configured connections"),
        ("list-pools", "virtual IP pools"),
        ("reload", "re-read the configuration; established SAs stay"),
        ("stats", "counters"),
    ):
        p = sub.add_parser(name, help=text)
        control(p)
        if name == "list-sas":
            p.add_argument("--ike", help="only this connection, unique id or SPI")
    init = sub.add_parser("initiate", help="start an IKE_SA of a connection")
    control(init)
    init.add_argument("--ike", required=True, help="connection name")
    init.add_argument("--remote", help="peer address (default: the connection's remote_addrs)")
    init.add_argument("--remote-port", type=int, default=500)
    init.add_argument("--timeout", type=float, default=15.0)
    reassess = sub.add_parser(
        "reassess",
        help="re-assess posture: ask IKE_SAs to re-authenticate (RFC 4478 AUTH_LIFETIME)",
    )
    control(reassess)
    which = reassess.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every IKE_SA with posture")
    which.add_argument("--ike", help="connection name, unique id (#N) or SPI")
    term = sub.add_parser("terminate", help="delete IKE_SAs (INFORMATIONAL Delete)")
    control(term)
    term.add_argument("--ike", required=True, help="connection name, unique id (#N) or SPI")
    term.add_argument("--timeout", type=float, default=5.0)
    return parser


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        return load_config(args.config).control.socket
    return default_socket_path()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A pipe or a file gets whole lines (no ellipsis), a terminal its own width.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if args.cmd == "init":
        from gateway.init import run_from_args

        return run_from_args(args)
    try:
        if args.cmd == "run":
            config = load_config(args.config) if args.config else default_config()
            configure_logging(config.log, verbose=args.verbose)
            return run(config, args.config)
        if args.cmd == "check":
            config = load_config(args.config)
            from gateway.daemon.compose import compose

            compose(config)
            print(f"{args.config}: OK ({len(config.connections)} connections)")
            return 0
        path = _socket_path(args)
        cmd_args: dict[str, Any] = {}
        timeout = 30.0
        if args.cmd == "list-sas" and args.ike:
            cmd_args["ike"] = args.ike
        if args.cmd == "initiate":
            cmd_args = {
                "ike": args.ike,
                "remote": args.remote,
                "remote_port": args.remote_port,
                "timeout": args.timeout,
            }
            timeout = args.timeout + 5
        if args.cmd == "terminate":
            cmd_args = {"ike": args.ike, "timeout": args.timeout}
            timeout = args.timeout + 5
        if args.cmd == "reassess":
            cmd_args = {"all": args.all, "ike": args.ike}
        result = call(path, args.cmd, cmd_args, timeout=timeout)
    except ConfigError as exc:
        print(f"nea-gateway: {exc}", file=sys.stderr)
        return 2
    except ControlError as exc:
        print(f"nea-gateway: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    if args.cmd == "list-sas":
        _print_sas(console, result)
    elif args.cmd == "list-conns":
        _print_conns(console, result)
    elif args.cmd == "list-pools":
        _print_pools(console, result)
    elif args.cmd == "stats":
        _print_stats(console, result)
    elif args.cmd == "initiate":
        console.print(
            f"initiate completed successfully: {result['name']} #{result['uniqueid']} "
            f"ESTABLISHED with {result['remote_host']}"
        )
    elif args.cmd == "terminate":
        names = ", ".join(f"{t['name']} #{t['uniqueid']}" for t in result["terminated"])
        state = "completed successfully" if result.get("complete") else "sent, no answer yet"
        console.print(f"terminate {state}: {names}")
    elif args.cmd == "reload":
        console.print(
            f"reloaded: added {result['added'] or '-'}, removed {result['removed'] or '-'}, "
            f"changed {result['changed'] or '-'}; {result['kept_sas']} IKE_SA(s) kept"
        )
        for note in result["notes"]:
            console.print(f"note: {note}")
        again = result.get("reassess") or {}
        if again.get("ike") or again.get("radius"):
            console.print(
                f"policy change: {len(again['ike'])} IKE_SA(s) asked to re-authenticate, "
                f"{again['radius']} RADIUS session(s) disconnected to re-authenticate"
            )
        if again.get("pt_tls"):
            console.print(f"policy change: SRETRY sent on {len(again['pt_tls'])} PT-TLS session(s)")
    elif args.cmd == "reassess":
        names = ", ".join(f"{t['name']} #{t['uniqueid']}" for t in result["reassess"])
        console.print(f"re-authentication requested: {names or 'none'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
