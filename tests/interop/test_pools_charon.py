"""Issue 8: Debian's charon as a client gets its virtual IP and DNS server from nea-gateway's
pools.

* memory pool: two charons (own namespaces, PSK) get distinct addresses from ``[pools.rw]``
  and the pool's ``dns`` (charon's resolve plugin writes it to its resolv.conf file); the
  first one, reconnecting after the second took an address, gets its own address back
  (``reassign_after`` keeps it reserved for its identity);
* SQL pool (SQLite, made with ``nea-pool``; ``[pools.rw] database = URL``): the same;
* PostgreSQL pool shared by two daemons: see ``test_pools_charon_postgres.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.charon import DEFAULT_PLUGINS, Charon
from tests.harness.netns import Netns

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
PSK = "pool-interop-secret-0123456789abcdef"
DNS = "10.1.0.53"
NEA_POOL = "import sys; from gateway.pools.cli import main; sys.exit(main())"
"""``nea-pool`` without depending on the console script being installed."""

CLIENT_CONF = """\
connections {
  home {
    remote_addrs = %(gw)s
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {
      auth = psk
      id = %(id)s
    }
    remote {
      auth = psk
      id = gw.test
    }
    children {
      home {
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike-home {
    id = gw.test
    secret = "%(psk)s"
  }
}
"""

GW_CONF = """
dataplane = "none"
[ike]
listen = "0.0.0.0"
[control]
socket = "{sock}"
[nea]
database = false
[connections.rw]
pools = ["rw"]
[connections.rw.local]
auth = "psk"
id = "gw.test"
[connections.rw.remote]
auth = "psk"
[connections.rw.children.net]
local_ts = ["10.1.0.0/16"]
[secrets.ike-any]
secret = "{psk}"
"""


class Daemon:
    """``nea-gateway run -c FILE`` in a namespace; control commands through its socket."""

    def __init__(self, ns: Netns, workdir: Path, pools: str, pool: str = "rw") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sock = workdir / "ctl.sock"
        self.config = workdir / "gateway.toml"
        self.config.write_text(
            GW_CONF.replace("{sock}", str(self.sock)).replace("{psk}", PSK)
            .replace('pools = ["rw"]', f'pools = ["{pool}"]') + pools
        )
        self.log_path = workdir / "gateway.log"
        with self.log_path.open("wb") as fh:
            self.proc = ns.popen(
                sys.executable, "-m", "gateway.daemon", "run", "-c", str(self.config),
                cwd=workdir, env=ENV, stdout=fh, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nea-gateway did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", *args, "-s", str(self.sock)],
            capture_output=True, text=True, env=ENV, timeout=60, check=False,
        )
        assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
        return r.stdout

    def vips(self) -> dict[str, list[str]]:
        """remote identity -> virtual IPs of the established IKE_SAs (``list-sas --json``)."""
        sas: list[dict[str, Any]] = json.loads(self.cli("list-sas", "--json"))
        return {
            sa["remote_id"]: list(sa["remote_vips"])
            for sa in sas
            if sa.get("state") == "ESTABLISHED"
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def client(charon_factory: Any, ns: Netns, name: str, gw: str, tmp: Path) -> Charon:
    """A charon with the resolve plugin writing DNS servers to its own resolv.conf."""
    workdir_resolv = tmp / f"{name}-resolv.conf"
    charon: Charon = charon_factory(
        ns, name, plugins=(*DEFAULT_PLUGINS, "resolve"),
        charon_options=f"  plugins {{\n    resolve {{\n      file = {workdir_resolv}\n"
                       "    }\n  }\n",
    )
    charon.resolv_conf = workdir_resolv  # type: ignore[attr-defined]
    charon.write_swanctl_conf(CLIENT_CONF % {"gw": gw, "id": f"{name}.test", "psk": PSK})
    charon.load_all()
    return charon


def vip_of(charon: Charon) -> str:
    (sa,) = charon.list_sas()
    assert sa.state == "ESTABLISHED", charon.list_sas_text()
    (vip,) = sa.local_vips
    return str(vip)


def dns_of(charon: Charon) -> str:
    path: Path = charon.resolv_conf  # type: ignore[attr-defined]
    return path.read_text() if path.exists() else ""


def site(netns: Any, count: int) -> tuple[Netns, list[tuple[Netns, str]]]:
    gw = netns.namespace("gw")
    clients = []
    for n in range(count):
        cl = netns.namespace("cl")
        netns.veth(gw, cl, f"192.0.2.{4 * n + 1}/30", f"192.0.2.{4 * n + 2}/30")
        clients.append((cl, f"192.0.2.{4 * n + 1}"))
    return gw, clients


def _reconnect_scenario(daemon: Daemon, a: Charon, b: Charon, prefix: str) -> None:
    a.initiate("home")
    vip_a = vip_of(a)
    assert vip_a.startswith(prefix), vip_a
    assert f"nameserver {DNS}" in dns_of(a), dns_of(a) + a.log_tail(40)
    assert daemon.vips() == {"a.test": [vip_a]}
    a.terminate(ike="home")
    a.wait_for(lambda sas: not sas)
    b.initiate("home")
    vip_b = vip_of(b)
    assert vip_b.startswith(prefix) and vip_b != vip_a, (vip_a, vip_b)
    a.initiate("home")
    assert vip_of(a) == vip_a
    assert daemon.vips() == {"a.test": [vip_a], "b.test": [vip_b]}


def test_memory_pool_vip_dns_and_same_address_again(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    gw, ((ns_a, gw_a), (ns_b, gw_b)) = site(netns, 2)
    daemon = Daemon(gw, tmp_path / "gw", (
        '[pools.rw]\naddrs = "10.3.0.0/28"\n'
        f'dns = "{DNS}"\nreassign_after = 3600\n'
    ))
    try:
        a = client(charon_factory, ns_a, "a", gw_a, tmp_path)
        b = client(charon_factory, ns_b, "b", gw_b, tmp_path)
        _reconnect_scenario(daemon, a, b, "10.3.0.")
        pools = json.loads(daemon.cli("list-pools", "--json"))
        (rw,) = [p for p in pools if p["name"] == "rw"]
        assert rw["online"] == 2, rw
    except BaseException:
        print(daemon.log()[-6000:])
        raise
    finally:
        daemon.stop()


def test_sql_pool_sqlite_vip_dns_and_same_address_again(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'pool.db'}"
    for args in (
        ("--add", "rw", "--start", "10.4.0.1", "--end", "10.4.0.14", "--timeout", "1"),
        ("--addattr", "dns", "--server", DNS, "--pool", "rw"),
    ):
        r = subprocess.run(
            [sys.executable, "-c", NEA_POOL, *args, "--db", db],
            capture_output=True, text=True, env=ENV, timeout=60, check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    gw, ((ns_a, gw_a), (ns_b, gw_b)) = site(netns, 2)
    daemon = Daemon(gw, tmp_path / "gw", f'[pools.rw]\ndatabase = "{db}"\n')
    try:
        a = client(charon_factory, ns_a, "a", gw_a, tmp_path)
        b = client(charon_factory, ns_b, "b", gw_b, tmp_path)
        _reconnect_scenario(daemon, a, b, "10.4.0.")
    finally:
        daemon.stop()
