"""A nea-gateway scenario site: one gateway namespace with the daemon (userspace dataplane,
RADIUS, SQLite evidence database) and an "allow" subnet (10.1.0.0/16) and a "remediation"
subnet (10.1.99.0/24... here 10.99.255.0/24) behind it, client namespaces on their own veths.

In the spirit of strongSwan's testing/tests/tnc/ scenarios: a policy file with the
allow/isolate/block outcomes of ``examples/profiles/``, clients running ``nea-endpoint``, and
the results read back from the evidence database with ``nea-report``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.certs import CertFactory, Issued
from tests.harness.netns import Netns, NetnsFactory

__all__ = [
    "ALLOW_ADDR",
    "PASSWORD",
    "POLICY",
    "PROFILES",
    "RADIUS_SECRET",
    "REMEDIATION_ADDR",
    "REPO",
    "Site",
    "nea_report",
    "ping",
]

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "examples" / "profiles"
POLICY = REPO / "examples" / "policy.toml"
PASSWORD = "scenario-pw"
RADIUS_SECRET = "scenario-radius-secret"
ALLOW_ADDR = "10.1.0.1"
REMEDIATION_ADDR = "10.99.255.1"
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def nea_report(db_url: str, *args: str) -> Any:
    """``nea-report --db URL --format json ARGS`` parsed."""
    r = subprocess.run(
        [sys.executable, "-m", "gateway.report", "--db", db_url, "--format", "json", *args],
        capture_output=True, text=True, env=ENV, timeout=60, check=False,
    )
    assert r.returncode == 0, f"nea-report {args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def ping(ns: Netns, dst: str) -> bool:
    r = subprocess.run(
        ns.cmd("ping", "-c", "2", "-i", "0.2", "-W", "2", dst),
        capture_output=True, text=True, check=False,
    )
    return r.returncode == 0


def _config(site: Site) -> str:
    ca, gw = site.ca, site.gw
    return f"""
dataplane = "userspace"
[ike]
listen = "0.0.0.0"
port = 500
port_nat_t = 4500
[control]
socket = "{site.socket}"
[pools.allow]
addrs = "10.3.0.0/24"
[pools.isolate]
addrs = "10.98.0.0/24"
quarantine = true
[secrets.eap-users]
id = "alice"
id-2 = "bob"
id-3 = "carol"
id-4 = "dave"
id-5 = "erin"
id-6 = "frank"
id-7 = "grace"
id-8 = "heidi"
id-9 = "ivan"
secret = "{PASSWORD}"
[secrets.private-gw]
file = "{gw.key_path}"
[authorities.ca]
cacert = "{ca.cert_path}"
[nea]
policy = "{site.policy}"
database = "{site.db_url}"
[connections.rw]
pools = ["allow"]
[connections.rw.local]
auth = "pubkey"
certs = ["{gw.chain_path}"]
id = "gw.test"
[connections.rw.remote]
auth = "eap-ttls"
eap_inner = ["mschapv2"]
[connections.rw.posture]
assess = true
[connections.rw.children.allow]
local_ts = ["10.1.0.0/16"]
verdict = ["allow"]
[connections.rw.children.isolate]
local_ts = ["10.99.255.0/24"]
verdict = ["isolate"]
pools = ["isolate"]

[radius]
listen = "127.0.0.1"
auth_port = 1812
acct_port = 1813
methods = ["ttls", "peap"]
inner_methods = ["mschapv2", "md5"]
certs = ["{gw.chain_path}"]
posture = true
[[radius.clients]]
address = "127.0.0.0/8"
secret = "{RADIUS_SECRET}"
name = "scenario-switch"
[radius.vlans]
allow = "10"
allow_filter_id = "employees"
isolate = "99"
isolate_filter_id = "quarantine"
"""


@dataclass
class Site:
    """The gateway namespace, its daemon and the client namespaces made so far."""

    nets: NetnsFactory
    workdir: Path
    certs: CertFactory
    gw_ns: Netns = field(init=False)
    ca: Issued = field(init=False)
    gw: Issued = field(init=False)
    daemon: subprocess.Popen[bytes] | None = None
    clients: int = 0

    def __post_init__(self) -> None:
        self.gw_ns = self.nets.namespace("gw")
        self.gw_ns.run("ip", "addr", "add", f"{ALLOW_ADDR}/16", "dev", "lo")
        self.gw_ns.run("ip", "addr", "add", f"{REMEDIATION_ADDR}/24", "dev", "lo")
        self.ca = self.certs.ca("ca")
        self.gw = self.certs.issue(self.ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
        self.policy = self.workdir / "policy.toml"
        shutil.copy(POLICY, self.policy)
        self.db_url = f"sqlite:///{self.workdir / 'evidence.db'}"
        self.socket = self.workdir / "ctl.sock"
        self.config = self.workdir / "gateway.toml"
        self.config.write_text(_config(self))
        self.log = self.workdir / "gateway.log"

    # ------------------------------------------------------------------ daemon
    def start(self) -> None:
        with self.log.open("wb") as fh:
            self.daemon = self.gw_ns.popen(
                sys.executable, "-m", "gateway.daemon", "run", "-c", str(self.config),
                stdout=fh, stderr=subprocess.STDOUT, env=ENV, cwd=self.workdir,
            )
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in self.log.read_text():
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(5)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def control(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``nea-gateway ARGS -s SOCKET`` (run from the host: the socket is a file)."""
        return subprocess.run(
            [sys.executable, "-m", "gateway.daemon", *args, "-s", str(self.socket)],
            capture_output=True, text=True, env=ENV, timeout=30, check=False,
        )

    def list_sas(self) -> list[dict[str, Any]]:
        r = self.control("list-sas", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        data = json.loads(r.stdout)
        return list(data) if isinstance(data, list) else list(data.get("ike_sas", data))

    # ------------------------------------------------------------------ clients
    def client(self) -> tuple[Netns, str]:
        """A new client namespace on its own veth; returns it and the gateway address."""
        n = self.clients
        self.clients += 1
        ns = self.nets.namespace("cl")
        net = f"192.0.2.{n * 4}"
        gw_addr, cl_addr = f"192.0.2.{n * 4 + 1}", f"192.0.2.{n * 4 + 2}"
        del net
        self.nets.veth(self.gw_ns, ns, f"{gw_addr}/30", f"{cl_addr}/30")
        return ns, gw_addr

    def endpoint_args(self, server: str, user: str, profile: Path, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "gateway.nea_endpoint", "--server", server,
            "--id", user, "--password", PASSWORD, "--ca", str(self.ca.cert_path),
            "--server-id", "gw.test", "--profile", str(profile), "--json",
            "--timeout", "20", *extra,
        ]

    def run_once(
        self, ns: Netns, server: str, user: str, profile: Path
    ) -> tuple[int, dict[str, Any]]:
        """``nea-endpoint --once --json``: (exit status, result)."""
        r = subprocess.run(
            ns.cmd(*self.endpoint_args(server, user, profile, "--once")),
            capture_output=True, text=True, env=ENV, timeout=60, check=False,
        )
        try:
            result = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(
                f"nea-endpoint: {r.returncode}\n{r.stdout}\n{r.stderr}\n{self.log_tail()}"
            ) from None
        return r.returncode, result

    def connect(
        self, ns: Netns, server: str, user: str, profile: Path
    ) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        """``nea-endpoint --dataplane userspace`` left running; its JSON result."""
        proc = ns.popen(
            *self.endpoint_args(server, user, profile, "--dataplane", "userspace"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.rstrip() == "}":
                break
        try:
            return proc, json.loads("".join(lines))
        except ValueError:
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"nea-endpoint: {''.join(lines)}\n{err}") from None


def write_profile(path: Path, base: str, **device: Any) -> Path:
    """A copy of ``examples/profiles/BASE.toml`` with ``[device]`` keys replaced."""
    import tomllib

    doc = tomllib.loads((PROFILES / f"{base}.toml").read_text())
    doc["device"].update(device)
    lines: list[str] = []
    for table, body in doc.items():
        lines.append(f"[{table}]")
        for k, v in body.items():
            lines.append(f"{json.dumps(k)} = {_toml(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v)
