"""Two standalone userspace dataplanes (``python -m gateway.dataplane.userspace``) in a pair
of namespaces: ``gw`` (192.0.2.1, protected network 10.1.0.0/16 with 10.1.0.1 on lo) and
``cl`` (192.0.2.2, virtual IP 10.3.0.2 on its TUN device).  Used by the interop tests and
bench/bench_esp.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.dataplane.esp import EspTransform, SaSpec
from tests.gateway.dataplane.esp_helpers import GCM128, sa_json, sa_pair, ts
from tests.harness.netns import Netns, NetnsFactory

REPO = Path(__file__).resolve().parents[3]
PYTHON = sys.executable

GW_OUTER, CL_OUTER = "192.0.2.1", "192.0.2.2"
GW_INNER, CL_VIP = "10.1.0.1", "10.3.0.2"
REMEDIATION = "10.66.0.1"


@dataclass
class Side:
    ns: Netns
    ifname: str
    veth: str
    control: Path
    proc: subprocess.Popen[Any]
    specs: list[SaSpec] = field(default_factory=list)


@dataclass
class Pair:
    gw: Side
    cl: Side
    workdir: Path


def start_runner(
    ns: Netns, workdir: Path, name: str, listen: str, sas: list[SaSpec], addresses: list[str]
) -> tuple[subprocess.Popen[Any], Path, str]:
    control = workdir / f"{name}.ctl"
    cfg = {
        "listen": listen,
        "port": 4500,
        "ifname": f"esp{name}",
        "mtu": 1400,
        "addresses": addresses,
        "control": str(control),
        "stats_file": str(workdir / f"{name}.stats.json"),
        "sas": [sa_json(s) for s in sas],
    }
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(cfg))
    log = (workdir / f"{name}.log").open("wb")
    proc = ns.popen(
        PYTHON,
        "-m",
        "gateway.dataplane.userspace",
        "--config",
        str(path),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(b"READY") or not line:
            break
    if not line.startswith(b"READY"):
        proc.kill()
        raise RuntimeError(
            f"runner {name} did not start:\n{(workdir / f'{name}.log').read_text()[-3000:]}"
        )
    return proc, control, line.split()[1].decode()


def start_pair(
    netns: NetnsFactory,
    workdir: Path,
    transform: EspTransform = GCM128,
    *,
    gw_ts: tuple[str, ...] = ("10.1.0.0/16",),
    remediation: bool = False,
    keys: tuple[bytes, bytes, bytes, bytes] | None = None,
) -> Pair:
    workdir.mkdir(parents=True, exist_ok=True)
    gw_ns, cl_ns = netns.namespace("espgw"), netns.namespace("espcl")
    v_gw, v_cl = netns.veth(gw_ns, cl_ns, f"{GW_OUTER}/24", f"{CL_OUTER}/24")
    gw_ns.run("ip", "addr", "add", f"{GW_INNER}/32", "dev", "lo")
    if remediation:
        gw_ns.run("ip", "addr", "add", f"{REMEDIATION}/32", "dev", "lo")
    gw_ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    a, b = sa_pair(
        transform, a_ts=tuple(ts(t) for t in gw_ts), b_ts=(ts(f"{CL_VIP}/32"),), keys=keys
    )
    gproc, gctl, gif = start_runner(gw_ns, workdir, "gw", GW_OUTER, [a], [])
    cproc, cctl, cif = start_runner(cl_ns, workdir, "cl", CL_OUTER, [b], [f"{CL_VIP}/32"])
    return Pair(
        Side(gw_ns, gif, v_gw, gctl, gproc, [a]),
        Side(cl_ns, cif, v_cl, cctl, cproc, [b]),
        workdir,
    )


def stop_pair(pair: Pair) -> dict[str, dict[str, Any]]:
    """SIGTERM both runners; returns their final stats."""
    out: dict[str, dict[str, Any]] = {}
    for name, side in (("gw", pair.gw), ("cl", pair.cl)):
        side.proc.terminate()
        try:
            side.proc.wait(10)
        except subprocess.TimeoutExpired:
            side.proc.kill()
        f = pair.workdir / f"{name}.stats.json"
        out[name] = json.loads(f.read_text()) if f.exists() else {}
    return out


TCP_SERVER = r"""
import hashlib, os, socket, sys, time
n = int(sys.argv[2]); rate = float(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
h = hashlib.sha256(); sent = 0; t0 = time.monotonic()
block = os.urandom(65536)
while sent < n:
    chunk = block[: min(len(block), n - sent)]
    c.sendall(chunk); h.update(chunk); sent += len(chunk)
    block = hashlib.sha256(block).digest() * 2048
    if rate > 0:
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(h.hexdigest(), flush=True)
"""

TCP_CLIENT = r"""
import hashlib, socket, sys, time
c = socket.create_connection((sys.argv[1], 5001), timeout=60)
h = hashlib.sha256(); n = 0; t0 = time.monotonic()
while True:
    b = c.recv(262144)
    if not b: break
    h.update(b); n += len(b)
dt = time.monotonic() - t0
c.close()
print(h.hexdigest(), n, dt, flush=True)
"""


def tcp_transfer(
    server_ns: Netns,
    server_addr: str,
    client_ns: Netns,
    nbytes: int,
    timeout: float = 300,
    rate: float = 0,
) -> tuple[str, str, int, float]:
    """Send ``nbytes`` from a server in ``server_ns`` to a client in ``client_ns``; returns
    (server sha256, client sha256, bytes received, seconds).  ``rate`` (bytes/s, 0 = as fast
    as it goes) paces the sender, so a test that rekeys mid-transfer does not depend on how
    fast an idle machine moves the data."""
    server = server_ns.popen(
        PYTHON,
        "-c",
        TCP_SERVER,
        server_addr,
        str(nbytes),
        str(rate),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "LISTENING"
    client = client_ns.run(PYTHON, "-c", TCP_CLIENT, server_addr, timeout=timeout)
    digest_c, n, dt = client.stdout.split()
    digest_s = server.stdout.readline().strip()
    server.wait(30)
    return digest_s, digest_c, int(n), float(dt)
