"""A real ``nea-gateway`` daemon in a subprocess on loopback, for nea-endpoint tests.

One connection per EAP method, told apart by the gateway identity the endpoint asks for
(IDr): ``ttls.gw.test``, ``peap.gw.test``, ``tls.gw.test``, ``md5.gw.test``; ``psk-client``
uses IKE PSK.  Posture (PT-EAP, examples/policy.toml) on the TTLS and PEAP connections.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.tools import free_udp_ports

REPO = Path(__file__).resolve().parents[3]
PROFILES = REPO / "examples" / "profiles"
POLICY = REPO / "examples" / "policy.toml"
PASSWORD = "hello"
PSK = "sesame"
NAMES = (
    "gw.test", "ttls.gw.test", "peap.gw.test", "tls.gw.test", "md5.gw.test", "fast.gw.test"
)


def fast_supported() -> bool:
    """Whether nea-gateway accepts EAP-FAST IKEv2 connections (the daemon's config says)."""
    from gateway.demo.run import fast_in_gateway

    return fast_in_gateway() is None


def _children(posture: bool) -> str:
    if not posture:
        return '[connections.{n}.children.net]\nlocal_ts = ["10.1.0.0/16"]\n'
    return (
        "[connections.{n}.posture]\nassess = true\n"
        '[connections.{n}.children.allow]\nlocal_ts = ["10.1.0.0/16"]\nverdict = ["allow"]\n'
        '[connections.{n}.children.isolate]\nlocal_ts = ["10.99.255.0/24"]\n'
        'verdict = ["isolate"]\npools = ["isolate"]\n'
    )


def gateway_config(workdir: Path, ca: Any, gw: Any, port: int, natt: int) -> str:
    parts = [
        f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = {port}
port_nat_t = {natt}
[control]
socket = "{workdir / "ctl.sock"}"
[pools.allow]
addrs = "10.3.0.0/24"
[pools.isolate]
addrs = "10.99.0.0/24"
[secrets.eap-bob]
id = "bob"
secret = "{PASSWORD}"
[secrets.ike-psk]
secret = "{PSK}"
[secrets.private-gw]
file = "{gw.key_path}"
[authorities.ca]
cacert = "{ca.cert_path}"
[nea]
policy = "{POLICY}"
database = "sqlite:///{workdir / "evidence.db"}"

[connections.psk]
pools = ["allow"]
[connections.psk.local]
auth = "psk"
id = "gw.test"
[connections.psk.remote]
auth = "psk"
id = "psk-client"
[connections.psk.children.net]
local_ts = ["10.1.0.0/16"]
"""
    ]
    methods = [
        ("ttls", "eap-ttls", True),
        ("peap", "eap-peap", True),
        ("tls", "eap-tls", False),
        ("md5", "eap-md5", False),
    ]
    if fast_supported():
        methods.append(("fast", "eap-fast", True))
    for name, auth, posture in methods:
        inner = {
            "eap-ttls": '\neap_inner = ["mschapv2", "md5"]',
            "eap-peap": '\neap_inner = ["mschapv2", "md5"]',
            "eap-fast": '\neap_inner = ["mschapv2", "gtc"]',
        }.get(auth, "")
        parts.append(
            f"""
[connections.{name}]
pools = ["allow"]
[connections.{name}.local]
auth = "pubkey"
certs = ["{gw.chain_path}"]
id = "{name}.gw.test"
[connections.{name}.remote]
auth = "{auth}"{inner}
"""
            + _children(posture).format(n=name)
        )
    return "\n".join(parts)


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    workdir: Path
    ca_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_gateway(workdir: Path, ca: Any, gw: Any) -> GatewayProcess:
    port, natt = free_udp_ports(2)
    cfg = workdir / "gw.toml"
    cfg.write_text(gateway_config(workdir, ca, gw, port, natt))
    log_path = workdir / "gw.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.daemon", "run", "-c", str(cfg)],
            cwd=workdir,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    g = GatewayProcess(proc, port, log_path, workdir, Path(ca.cert_path))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "nea-gateway started" in g.log():
            return g
        if proc.poll() is not None:
            raise RuntimeError(f"nea-gateway exited {proc.returncode}:\n{g.log()[-3000:]}")
        time.sleep(0.1)
    g.stop()
    raise RuntimeError(f"nea-gateway did not start:\n{g.log()[-3000:]}")


def run_endpoint(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "gateway.nea_endpoint", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
