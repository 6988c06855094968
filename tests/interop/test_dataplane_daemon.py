"""The real daemon (``python -m gateway.daemon run``) with ``dataplane = "userspace"`` in the
gateway namespace, Debian's charon with kernel-libipsec as the client: traffic flows through
the daemon's own composition (ESP on its NAT-T socket, CHILD_SAs installed from its events),
ping both ways and a TCP transfer with a matching checksum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.dataplane.netns_pair import tcp_transfer
from tests.harness.netns import Netns
from tests.harness.tools import require

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PSK = "daemon-dataplane-psk-0123456789"
GW_INNER = "10.1.0.1"

GW_CONF = f"""
dataplane = "userspace"
[ike]
listen = "192.0.2.1"
[control]
socket = "{{sock}}"
[pools.rw]
addrs = "10.3.0.0/28"
[connections.rw]
pools = ["rw"]
[connections.rw.local]
auth = "psk"
id = "gw.test"
[connections.rw.remote]
auth = "psk"
id = "cl.test"
[connections.rw.children.net]
local_ts = ["10.1.0.0/16"]
[secrets.ike-rw]
id = "cl.test"
secret = "{PSK}"
[nea]
database = false
"""

CLIENT_CONF = f"""\
connections {{
  home {{
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {{
      auth = psk
      id = cl.test
    }}
    remote {{
      auth = psk
      id = gw.test
    }}
    children {{
      home {{
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
      }}
    }}
  }}
}}
secrets {{
  ike-home {{
    id = gw.test
    secret = "{PSK}"
  }}
}}
"""


class Daemon:
    def __init__(self, ns: Netns, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sock = workdir / "ctl.sock"
        self.config = workdir / "gateway.toml"
        self.config.write_text(GW_CONF.replace("{sock}", str(self.sock)))
        self.log_path = workdir / "gateway.log"
        self._log = self.log_path.open("ab")
        self.proc = ns.popen(
            sys.executable,
            "-m",
            "gateway.daemon",
            "run",
            "-c",
            str(self.config),
            cwd=str(workdir),
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nea-gateway did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stats(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", "stats", "--json", "-s", str(self.sock)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=True,
        ).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def test_daemon_userspace_dataplane_with_charon(netns, charon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require("ping")
    gw_ns, cl_ns = netns.namespace("dmgw"), netns.namespace("dmcl")
    netns.veth(gw_ns, cl_ns, "192.0.2.1/24", "192.0.2.2/24")
    gw_ns.run("ip", "addr", "add", f"{GW_INNER}/32", "dev", "lo")
    gw_ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    daemon = Daemon(gw_ns, tmp_path / "gw")
    try:
        assert daemon.stats()["dataplane"] == "userspace"
        charon = charon_factory(cl_ns, "cl")
        charon.write_swanctl_conf(CLIENT_CONF)
        charon.load_all()
        charon.initiate("home")
        (sa,) = charon.list_sas()
        vip = sa.local_vips[0]
        deadline = time.monotonic() + 10
        while "nea-esp0" not in gw_ns.run("ip", "route", "get", vip, check=False).stdout:
            assert time.monotonic() < deadline, daemon.log()[-4000:]
            time.sleep(0.05)
        cl_ns.run("ping", "-c", "3", "-i", "0.2", "-W", "2", GW_INNER, timeout=30)
        gw_ns.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", GW_INNER, vip, timeout=30)
        digest_s, digest_c, n, _ = tcp_transfer(gw_ns, GW_INNER, cl_ns, 10 * 1024 * 1024)
        assert n == 10 * 1024 * 1024 and digest_s == digest_c
        child = charon.list_sas()[0].child("home")
        assert int(child.raw["bytes-in"]) > 10 * 1024 * 1024, child.raw
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()
