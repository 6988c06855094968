"""Issue 8: two nea-gateway processes (two namespaces) share one PostgreSQL pool; clients
(Debian's charon and nea-endpoint with IKE PSK) connect to both at the same time; the virtual
IPs both daemons report in ``list-sas --json`` are all distinct and all from the pool.

The pool is ``[pools.shared] database = URL`` with ``crash_recovery = false`` (strongSwan
attr-sql's setting: a gateway starting must not take the other gateway's online leases). The
duplicate check itself was verified to fail with two separate memory pools.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.netns import Netns
from tests.harness.postgres import postgres_url
from tests.interop.test_pools_charon import ENV, NEA_POOL, PSK, Daemon, client, vip_of

pytestmark = [pytest.mark.netns, pytest.mark.slow]

__all__ = ["postgres_url"]

ENDPOINTS_PER_GATEWAY = 3


def _seed(url: str) -> None:
    for args in (
        ("--replace", "shared", "--start", "10.5.0.1", "--end", "10.5.0.62", "--timeout", "1"),
        ("--addattr", "dns", "--server", "10.1.0.53", "--pool", "shared"),
    ):
        r = subprocess.run(
            [sys.executable, "-c", NEA_POOL, *args, "--db", url],
            capture_output=True, text=True, env=ENV, timeout=60, check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr


def _endpoint(ns: Netns, server: str, ident: str) -> subprocess.Popen[str]:
    return ns.popen(
        sys.executable, "-m", "gateway.nea_endpoint", "--server", server, "--id", ident,
        "--eap", "none", "--psk", PSK, "--server-id", "gw.test", "--no-posture",
        "--timeout", "30",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
    )


def test_two_gateways_share_postgres_pool_without_duplicates(
    netns: Any, charon_factory: Any, tmp_path: Path, postgres_url: str
) -> None:
    _seed(postgres_url)
    # crash_recovery off: a starting gateway must not release the other one's leases
    _run(netns, charon_factory, tmp_path,
         f'[pools.shared]\ndatabase = "{postgres_url}"\ncrash_recovery = false\n')


def _run(netns: Any, charon_factory: Any, tmp_path: Path, pools: str) -> None:
    """Two daemons with ``pools`` (pool "shared"), a charon and nea-endpoints (each in a
    namespace of its own) on each; asserts
    that every virtual IP handed out is distinct and in 10.5.0.0/26."""
    gateways = []
    clients: list[tuple[Netns, str]] = []
    endpoint_nets: list[list[tuple[Netns, str]]] = []
    for g in range(2):
        gw = netns.namespace(f"gw{g}")
        gateways.append(gw)
        mine = []
        for n in range(ENDPOINTS_PER_GATEWAY + 1):
            ns = netns.namespace(f"c{g}")
            netns.veth(gw, ns, f"192.0.2.{4 * n + 1}/30", f"192.0.2.{4 * n + 2}/30")
            mine.append((ns, f"192.0.2.{4 * n + 1}"))
        clients.append(mine[0])
        endpoint_nets.append(mine[1:])
    daemons: list[Daemon] = []
    procs: list[subprocess.Popen[str]] = []
    try:
        for g, gw in enumerate(gateways):
            daemons.append(Daemon(gw, tmp_path / f"gw{g}", pools, pool="shared"))
        charons = [client(charon_factory, ns, f"c{g}", server, tmp_path)
                   for g, (ns, server) in enumerate(clients)]
        for g, nets in enumerate(endpoint_nets):
            for n, (ns, server) in enumerate(nets):
                procs.append(_endpoint(ns, server, f"ep{g}-{n}.test"))
        for c in charons:
            c.swanctl("--initiate", "--child", "home", "--timeout", "30", check=False)
        want = 2 * (ENDPOINTS_PER_GATEWAY + 1)
        deadline = time.monotonic() + 60
        assigned: dict[str, str] = {}
        while time.monotonic() < deadline:
            assigned = {}
            for d in daemons:
                for ident, vips in d.vips().items():
                    for vip in vips:
                        assigned[f"{d.config.parent.name}/{ident}"] = vip
            if len(assigned) >= want:
                break
            time.sleep(0.5)
        assert len(assigned) == want, assigned
        assert len(set(assigned.values())) == want, assigned
        net = ipaddress.ip_network("10.5.0.0/26")
        assert all(ipaddress.ip_address(v) in net for v in assigned.values()), assigned
        assert {vip_of(c) for c in charons} <= set(assigned.values())
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                _, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            if p.returncode not in (0, -signal.SIGTERM):
                print(f"nea-endpoint exit {p.returncode}: {err[-1500:]}")
        for d in daemons:
            d.stop()
