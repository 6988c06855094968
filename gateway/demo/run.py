"""``make demo``: a gateway and a fleet of simulated endpoints on loopback, in under a minute.

Steps (each announced on the console):

1. a CA, the gateway's certificate and client certificates under ``./var/demo/``;
2. ``nea-gateway`` (``python -m gateway.daemon run``) in a subprocess with a configuration
   written next to them: loopback, 500/4500 as root (else 10500/14500; free ports if those
   are taken), memory pools ``allow`` and ``isolate``, the evidence database
   ``./var/demo/nea-evidence.db`` (SQLite), ``examples/policy.toml``, dataplane ``none``
   without root and ``userspace`` with root; one connection per EAP method, told apart by
   the gateway identity the endpoint asks for (``ttls.gw.demo``, ``peap.gw.demo``, ...);
3. the fleet: simulated endpoints (``examples/profiles/``: compliant, IP forwarding on,
   forbidden package, open forbidden port, outdated OS) connecting with real IKEv2 and
   EAP-TTLS / PEAP (PT-EAP posture inside), EAP-TLS (no posture: IKEv2 runs posture inside a
   tunnel method) and EAP-FAST when the gateway offers it, a few at a time, with a live table;
4. the gateway is stopped (its evidence writer flushes), then ``nea-report summary`` and
   the path of its HTML version.

Whatever is missing in this installation (EAP-FAST in the gateway's IKEv2 connections, the
report) is said plainly and the rest runs; nothing is simulated beyond the endpoints' facts.
Exit status: 0 when every endpoint got the outcome its profile calls for, 1 otherwise, 2 when
the gateway could not be started.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.daemon.config import random_secret
from gateway.demo.pki import DemoPki, Issued

__all__ = ["FleetMember", "fleet_plan", "main"]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DOMAIN = "demo.test"
GW_NAME = "gw.demo"
METHOD_CONNECTION = {"eap-ttls": "ttls", "eap-peap": "peap", "eap-tls": "tls", "eap-fast": "fast"}
POSTURE_METHODS = ("eap-ttls", "eap-peap", "eap-fast")

EXPECTED = {
    "compliant": "allow",
    "forwarding": "isolate",
    "forbidden-package": "isolate",
    "outdated-os": "isolate",
    "forbidden-port": "denied",
}
"""What examples/policy.toml decides for each example profile (shown beside the result; a
difference makes the demo exit 1)."""

_CYCLE: tuple[tuple[str, str | None, bool], ...] = (
    ("eap-ttls", "compliant", True),
    ("eap-peap", "forwarding", True),
    ("eap-ttls", "forbidden-port", True),
    ("eap-tls", None, True),
    ("eap-fast", "compliant", True),
    ("eap-peap", "compliant", True),
    ("eap-ttls", "forbidden-package", True),
    ("eap-peap", "outdated-os", True),
    ("eap-ttls", "forwarding", True),
    ("eap-peap", "forbidden-port", True),
    ("eap-fast", "forwarding", True),
    ("eap-ttls", "compliant", False),
    ("eap-ttls", "outdated-os", True),
    ("eap-peap", "forbidden-package", True),
    ("eap-tls", None, True),
    ("eap-ttls", "compliant", True),
)
"""(method, profile, right password) in the order endpoints are made."""


@dataclass
class FleetMember:
    name: str
    identity: str
    method: str
    profile: str | None
    password: str
    """What the endpoint says."""
    secret: str
    """What the gateway has on file for it (differs for the wrong-password endpoint)."""
    cert: Issued | None = None
    status: str = "waiting"
    result: Any = None
    started: float = 0.0

    @property
    def good_password(self) -> bool:
        return self.password == self.secret

    @property
    def expected(self) -> str:
        if not self.good_password:
            return "auth-failed"
        if self.profile is None:
            return "allow"
        return EXPECTED.get(self.profile, "?")


@dataclass
class DemoState:
    members: list[FleetMember] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fleet_plan(count: int, *, fast: bool) -> list[tuple[str, str | None, bool]]:
    """``count`` (method, profile, right password) entries, EAP-FAST left out when the
    gateway does not offer it."""
    cycle = [c for c in _CYCLE if fast or c[0] != "eap-fast"]
    return [cycle[i % len(cycle)] for i in range(count)]


# --------------------------------------------------------------------------------------------
# The gateway


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ports(host: str) -> tuple[int, int]:
    preferred = (500, 4500) if os.geteuid() == 0 else (10500, 14500)
    if all(_udp_free(host, p) for p in preferred):
        return preferred
    socks = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((host, 0))
            socks.append(s)
        a, b = (s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()
    return a, b


def fast_in_gateway() -> str | None:
    """None when the gateway accepts EAP-FAST IKEv2 connections, else why not."""
    from gateway.daemon.config import ConfigError, parse_config

    try:
        parse_config(
            {
                "connections": {
                    "fast": {
                        "local": {"auth": "psk", "id": "gw"},
                        "remote": {"auth": "eap-fast"},
                    }
                }
            },
            "<probe>",
        )
    except ConfigError as exc:
        if "eap-fast" in str(exc):
            return exc.reason
    from gateway.nea_endpoint import eap_fast_available

    if not eap_fast_available():
        return "this installation has no EAP-FAST peer method"
    return None


def gateway_config(
    workdir: Path,
    host: str,
    ports: tuple[int, int],
    dataplane: str,
    pki: DemoPki,
    gw: Issued,
    members: Sequence[FleetMember],
    methods: Sequence[str],
) -> str:
    out = [
        "# Written by `make demo` (gateway.demo); see docs for every key.",
        f'dataplane = "{dataplane}"',
        "[ike]",
        f'listen = "{host}"',
        f"port = {ports[0]}",
        f"port_nat_t = {ports[1]}",
        "[control]",
        f'socket = "{workdir / "nea-gateway.ctl"}"',
        "[pools.allow]",
        'addrs = "10.3.0.0/24"',
        "[pools.isolate]",
        'addrs = "10.99.0.0/24"',
        "[nea]",
        f'policy = "{EXAMPLES / "policy.toml"}"',
        f'database = "sqlite:///{workdir / "nea-evidence.db"}"',
        "[authorities.demo]",
        f'cacert = "{pki.ca.cert_path}"',
        "[secrets.private-gw]",
        f'file = "{gw.key_path}"',
    ]
    for m in members:
        if m.method != "eap-tls":
            out += [f"[secrets.eap-{m.name}]", f'id = "{m.identity}"', f'secret = "{m.secret}"']
    for method in methods:
        conn = METHOD_CONNECTION[method]
        out += [
            f"[connections.{conn}]",
            'pools = ["allow"]',
            f"[connections.{conn}.local]",
            'auth = "pubkey"',
            f'certs = ["{gw.cert_path}"]',
            f'id = "{conn}.{GW_NAME}"',
            f"[connections.{conn}.remote]",
            f'auth = "{method}"',
        ]
        if method in POSTURE_METHODS:
            inner = '["mschapv2", "gtc"]' if method == "eap-fast" else '["mschapv2", "md5"]'
            out += [
                f"eap_inner = {inner}",
                f"[connections.{conn}.posture]",
                "assess = true",
                f"[connections.{conn}.children.allow]",
                'local_ts = ["10.1.0.0/16"]',
                'verdict = ["allow"]',
                f"[connections.{conn}.children.isolate]",
                'local_ts = ["10.99.255.0/24"]',
                'verdict = ["isolate"]',
                'pools = ["isolate"]',
            ]
        else:
            out += [f"[connections.{conn}.children.net]", 'local_ts = ["10.1.0.0/16"]']
    return "\n".join(out) + "\n"


class GatewayProcess:
    """``nea-gateway run -c FILE`` in a subprocess, its output in a log file."""

    def __init__(self, config: Path, log_path: Path, cwd: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> str:
        """Start and wait for "nea-gateway started"; returns that log line."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.log_path.open("wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.daemon", "run", "-c", str(self.config)],
                cwd=self.cwd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "nea-gateway started" in line:
                    return line
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nea-gateway exited with status {self.proc.returncode}:\n"
                    + "\n".join(self.log().splitlines()[-15:])
                )
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("nea-gateway did not start within 30 s:\n" + self.log()[-2000:])

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


# --------------------------------------------------------------------------------------------
# The fleet


_STYLE = {
    "allow": "green",
    "isolate": "yellow",
    "denied": "red",
    "auth-failed": "magenta",
    "error": "bold red",
}


def _why(result: Any) -> str:
    """The first reason the gateway gave (PB-Reason-String), else the failure."""
    p = result.posture
    if p is not None and result.posture_ran and p.reasons:
        return str(p.reasons[0][1])
    if result.outcome in ("auth-failed", "error"):
        return str(result.message)
    return ""


def fleet_table(state: DemoState) -> Table:
    t = Table(title="Fleet", expand=False, show_lines=False)
    widths = {"endpoint": 4, "method": 8, "profile": 17, "result": 11, "virtual IP": 10}
    for col, width in widths.items():
        t.add_column(col, no_wrap=True, min_width=width)
    t.add_column("ok", no_wrap=True, min_width=2)
    t.add_column("why", no_wrap=True, overflow="ellipsis", max_width=34)
    for m in state.members:
        r = m.result
        profile = (m.profile or "-") + ("" if m.good_password else ", bad password")
        if r is None:
            status = Text(m.status, style="dim" if m.status == "waiting" else "cyan")
            t.add_row(m.name, m.method, profile, status, "", "", "")
            continue
        style = _STYLE.get(r.outcome, "")
        ok = r.outcome == m.expected
        t.add_row(
            m.name,
            m.method,
            profile,
            Text(r.outcome, style=style),
            ", ".join(r.virtual_ips) or "-",
            Text("✓", style="green") if ok else Text(f"✗ {m.expected}?", style="bold red"),
            _why(r),
        )
    return t


def _device_id(identity: str) -> str:
    """A machine-id-shaped (32 hex digits) device id derived from the endpoint's name."""
    return hashlib.sha256(f"nea-gateway demo {identity}".encode()).hexdigest()[:32]


def run_fleet(
    state: DemoState,
    console: Console,
    host: str,
    port: int,
    ca: Path,
    parallel: int,
    timeout: float,
) -> None:
    from twisted.internet import defer

    from gateway.endpoint import load_profile
    from gateway.nea_endpoint import EndpointClient, EndpointOptions

    facts = {
        name: load_profile(EXAMPLES / "profiles" / f"{name}.toml")
        for name in {m.profile for m in state.members if m.profile}
    }

    def options(m: FleetMember) -> EndpointOptions:
        return EndpointOptions(
            server=host,
            port=port,
            id=m.identity,
            eap=m.method,
            password=m.password if m.method != "eap-tls" else None,
            cert=m.cert.cert_path if m.cert else None,
            key=m.cert.key_path if m.cert else None,
            ca=(ca,),
            server_id=f"{METHOD_CONNECTION[m.method]}.{GW_NAME}",
            posture=m.profile is not None,
            timeout=timeout,
            source=host,
        ).check()

    async def main(reactor: Any) -> None:
        sem = defer.DeferredSemaphore(parallel)
        with Live(fleet_table(state), console=console, refresh_per_second=8) as live:

            def refresh() -> None:
                live.update(fleet_table(state))

            async def one(m: FleetMember) -> None:
                def progress(text: str) -> None:
                    m.status = text
                    refresh()

                m.started = time.monotonic()
                base = facts.get(m.profile or "")
                # Each simulated endpoint is its own machine: its own ITA Device ID.
                own = (
                    dataclasses.replace(base, device_id=_device_id(m.identity))
                    if base is not None
                    else None
                )
                client = EndpointClient(options(m), reactor, facts=own, on_progress=progress)
                m.result = await client.connect()
                refresh()
                await client.disconnect()

            async def limited(m: FleetMember) -> None:
                await sem.acquire()
                try:
                    await one(m)
                finally:
                    sem.release()

            await defer.gatherResults(
                [defer.ensureDeferred(limited(m)) for m in state.members], consumeErrors=True
            )
            refresh()

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    failure: list[Any] = []

    def go() -> None:
        d = defer.ensureDeferred(main(reactor))
        d.addErrback(failure.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run(installSignalHandlers=False)
    if failure:
        failure[0].raiseException()


# --------------------------------------------------------------------------------------------
# Main


def _say(console: Console, text: str) -> None:
    console.print(f"[bold cyan]»[/bold cyan] {text}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway.demo",
        description="Run nea-gateway on its defaults with a fleet of simulated endpoints.",
    )
    p.add_argument("--endpoints", type=int, default=24, help="fleet size [24]")
    p.add_argument("--parallel", type=int, default=4, help="endpoints connecting at once [4]")
    p.add_argument("--workdir", type=Path, default=Path("var") / "demo", help="[./var/demo]")
    p.add_argument("--timeout", type=float, default=30.0, help="per endpoint, seconds [30]")
    p.add_argument(
        "--dataplane",
        choices=("auto", "none", "userspace"),
        default="auto",
        help="auto: userspace as root, else none",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    if args.endpoints < 1 or args.parallel < 1:
        console.print("[red]--endpoints and --parallel must be at least 1[/red]")
        return 2
    t0 = time.monotonic()
    host = "127.0.0.1"
    workdir: Path = args.workdir.resolve()
    try:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
    except OSError as exc:
        console.print(f"[red]cannot prepare {workdir}[/red]: {exc.strerror}")
        return 2
    state = DemoState()
    # The endpoints' engines log (e.g. a PEAP failure on a denied endpoint) to a file, not
    # over the live table.
    logging.basicConfig(
        level=logging.INFO,
        filename=str(workdir / "endpoints.log"),
        format="%(asctime)s %(name)s %(message)s",
    )

    console.rule("[bold]nea-gateway demo")
    fast_missing = fast_in_gateway()
    methods = ["eap-ttls", "eap-peap", "eap-tls"] + ([] if fast_missing else ["eap-fast"])
    if fast_missing:
        state.notes.append(f"EAP-FAST is left out: {fast_missing}.")
        _say(console, f"[yellow]EAP-FAST is left out[/yellow]: {fast_missing}.")

    _say(console, f"Generating a CA, the gateway's and the clients' certificates in {workdir}")
    pki = DemoPki(workdir / "pki")
    gw = pki.issue(
        "gateway",
        GW_NAME,
        dns=(GW_NAME, *(f"{c}.{GW_NAME}" for c in METHOD_CONNECTION.values())),
        server=True,
    )
    plan = fleet_plan(args.endpoints, fast=not fast_missing)
    for i, (method, profile, good) in enumerate(plan, 1):
        name = f"ep{i:02d}"
        identity = f"{name}@{DOMAIN}"
        secret = random_secret(12)
        password = secret if good else random_secret(12)
        m = FleetMember(name, identity, method, profile, password, secret)
        if method == "eap-tls":
            m.cert = pki.issue(name, identity, emails=(identity,))
        state.members.append(m)

    root = os.geteuid() == 0
    dataplane = args.dataplane
    if dataplane == "auto":
        dataplane = "userspace" if root else "none"
    ports = _ports(host)
    config = workdir / "nea-gateway.toml"

    def write_config(dp: str) -> None:
        config.write_text(
            gateway_config(workdir, host, ports, dp, pki, gw, state.members, methods)
        )

    write_config(dataplane)
    gateway = GatewayProcess(config, workdir / "nea-gateway.log", workdir)
    why = "" if root else " (not root: unprivileged ports, no dataplane)"
    _say(
        console,
        f"Starting nea-gateway on {host} UDP {ports[0]}/{ports[1]}, dataplane {dataplane}{why}",
    )
    try:
        started = gateway.start()
    except RuntimeError as exc:
        if dataplane == "none":
            console.print(f"[red]nea-gateway did not start[/red]: {exc}")
            return 2
        console.print(f"[yellow]nea-gateway did not start with dataplane {dataplane}[/yellow]: "
                      f"{str(exc).splitlines()[-1]}")
        state.notes.append(f"dataplane {dataplane} failed at start-up; ran with none.")
        dataplane = "none"
        write_config(dataplane)
        _say(console, "Starting nea-gateway again with dataplane none")
        try:
            started = gateway.start()
        except RuntimeError as exc2:
            console.print(f"[red]nea-gateway did not start[/red]: {exc2}")
            return 2
    console.print(f"  [dim]{started.split(' ', 3)[-1]}[/dim]")
    console.print(
        f"  [dim]configuration {config}, logs {gateway.log_path} and "
        f"{workdir / 'endpoints.log'}[/dim]"
    )

    counts: dict[str, int] = {}
    try:
        with_posture = sum(1 for m in state.members if m.profile)
        _say(
            console,
            f"Connecting {len(state.members)} simulated endpoints ({args.parallel} at a time) "
            f"over IKEv2 with {', '.join(methods)}; {with_posture} answer a PT-EAP posture "
            "assessment",
        )
        run_fleet(state, console, host, ports[0], pki.ca.cert_path, args.parallel, args.timeout)
        console.print()
        _gateway_stats(console, state, workdir / "nea-gateway.ctl")
    finally:
        _say(console, "Stopping nea-gateway (Deletes sent, evidence flushed)")
        rc = gateway.stop()
        if rc not in (0, None):
            console.print(f"[yellow]nea-gateway exited with status {rc}[/yellow]")

    for m in state.members:
        outcome = m.result.outcome if m.result is not None else "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    mismatches = [
        m for m in state.members if m.result is None or m.result.outcome != m.expected
    ]
    line = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    _say(console, f"Fleet done: {line}")
    for m in mismatches:
        got = m.result.outcome if m.result is not None else "no result"
        msg = m.result.message if m.result is not None else ""
        console.print(f"  [red]{m.identity}: expected {m.expected}, got {got}[/red] {msg}")

    db_url = f"sqlite:///{workdir / 'nea-evidence.db'}"
    report_ok = _report(console, state, db_url, workdir)
    elapsed = time.monotonic() - t0
    for note in state.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.rule(f"done in {elapsed:.1f} s")
    if mismatches:
        return 1
    return 0 if report_ok else 1


def _gateway_stats(console: Console, state: DemoState, socket_path: Path) -> None:
    """The gateway's own counters (``nea-gateway stats`` over the control socket)."""
    from gateway.daemon.control import ControlError, call

    _say(console, f"nea-gateway stats (control socket {socket_path})")
    try:
        stats = call(socket_path, "stats", timeout=10)
    except ControlError as exc:
        state.notes.append(f"nea-gateway stats failed: {exc}")
        console.print(f"  [yellow]{exc}[/yellow]")
        return
    totals = stats.get("totals", {})
    verdicts = ", ".join(f"{n} {k}" for k, n in sorted(stats.get("verdicts", {}).items()))
    console.print(
        f"  IKE_SAs established {totals.get('established')}, authentication failures "
        f"{totals.get('auth_failed')}, posture assessments {totals.get('posture_assessments')}"
        f" ({verdicts or 'no verdicts'}), CHILD_SAs installed "
        f"{totals.get('children_installed')}, dataplane {stats.get('dataplane')}"
    )


def _report(console: Console, state: DemoState, db_url: str, workdir: Path) -> bool:
    try:
        from gateway.report.cli import main as report_main
    except ImportError as exc:
        msg = f"nea-report is not available in this installation ({exc}); no report."
        state.notes.append(msg)
        console.print(f"[yellow]{msg}[/yellow]")
        return False
    _say(console, f"nea-report summary --db {db_url}")
    import io

    buf, err = io.StringIO(), io.StringIO()
    rc = report_main(["summary", "--db", db_url], stdout=buf, stderr=err)
    console.print(Group(Text(buf.getvalue().rstrip())))
    if rc != 0:
        console.print(f"[red]nea-report failed ({rc})[/red]: {err.getvalue().strip()}")
        return False
    html = workdir / "report.html"
    rc = report_main(
        ["summary", "--db", db_url, "--format", "html", "--output", str(html)],
        stdout=io.StringIO(),
        stderr=err,
    )
    if rc != 0:
        console.print(f"[red]nea-report --format html failed ({rc})[/red]: {err.getvalue()}")
        return False
    _say(console, f"HTML report: [bold]{html}[/bold]")
    return True
