"""nea-endpoint --dataplane userspace against our nea-gateway (dataplane userspace), each in
its own namespace: after EAP-TTLS + PT-EAP the endpoint's virtual IP sits on its TUN device
and ping reaches the networks of its verdict through ESP (allow: 10.1.0.0/16; isolate: only
10.99.255.0/24); SIGTERM deletes the IKE_SA and removes the TUN device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import PASSWORD, POLICY, PROFILES
from tests.harness.tools import require

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, ca: Any, gw: Any) -> str:
    return f"""
dataplane = "userspace"
[ike]
listen = "192.0.2.1"
port = 500
port_nat_t = 4500
[control]
socket = "{tmp / 'ctl.sock'}"
[pools.allow]
addrs = "10.3.0.0/24"
[pools.isolate]
addrs = "10.99.0.0/24"
[secrets.eap-bob]
id = "bob"
secret = "{PASSWORD}"
[secrets.private-gw]
file = "{gw.key_path}"
[authorities.ca]
cacert = "{ca.cert_path}"
[nea]
policy = "{POLICY}"
database = false
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
"""


def _ping(ns: Any, dst: str) -> bool:
    r = subprocess.run(
        ns.cmd("ping", "-c", "2", "-i", "0.2", "-W", "2", dst), capture_output=True, text=True
    )
    return r.returncode == 0


@pytest.mark.parametrize(("profile", "reach", "unreachable"), [
    ("compliant", "10.1.0.1", None),
    ("forwarding", "10.99.255.1", "10.1.0.1"),
])
def test_endpoint_installs_vip_and_sas(
    netns: Any, cert_factory: Any, tmp_path: Path, profile: str, reach: str,
    unreachable: str | None,
) -> None:
    require("ping")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun for the userspace dataplane")
    gw_ns, cl_ns = netns.namespace("gw"), netns.namespace("cl")
    netns.veth(gw_ns, cl_ns, "192.0.2.1/24", "192.0.2.2/24")
    gw_ns.run("ip", "addr", "add", "10.1.0.1/16", "dev", "lo")
    gw_ns.run("ip", "addr", "add", "10.99.255.1/24", "dev", "lo")
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    cfg = tmp_path / "gw.toml"
    cfg.write_text(_config(tmp_path, ca, gw))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    gw_log = tmp_path / "gw.log"
    with gw_log.open("wb") as fh:
        daemon = gw_ns.popen(
            sys.executable, "-m", "gateway.daemon", "run", "-c", str(cfg),
            stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )
    endpoint = None
    try:
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in gw_log.read_text():
            assert daemon.poll() is None and time.monotonic() < deadline, gw_log.read_text()
            time.sleep(0.1)
        endpoint = cl_ns.popen(
            sys.executable, "-m", "gateway.nea_endpoint", "--server", "192.0.2.1",
            "--id", "bob", "--password", PASSWORD, "--ca", str(ca.cert_path),
            "--server-id", "gw.test", "--profile", str(PROFILES / f"{profile}.toml"),
            "--dataplane", "userspace", "--json", "--timeout", "20",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )
        assert endpoint.stdout is not None
        lines = []
        for line in endpoint.stdout:
            lines.append(line)
            if line.rstrip() == "}":
                break
        res = json.loads("".join(lines))
        assert res["outcome"] == ("allow" if profile == "compliant" else "isolate"), res
        (vip,) = res["virtual_ips"]
        assert res["dataplane"].startswith("userspace ESP on nea-ep0"), res["dataplane"]
        addrs = subprocess.run(cl_ns.cmd("ip", "-br", "addr", "show", "nea-ep0"),
                               capture_output=True, text=True).stdout
        assert f"{vip}/32" in addrs
        assert _ping(cl_ns, reach), (gw_log.read_text()[-3000:])
        if unreachable is not None:
            assert not _ping(cl_ns, unreachable)
        endpoint.send_signal(signal.SIGTERM)
        endpoint.wait(15)
        links = subprocess.run(cl_ns.cmd("ip", "-br", "link"), capture_output=True,
                               text=True).stdout
        assert "nea-ep0" not in links
        assert "deleted" in gw_log.read_text() or "closed" in gw_log.read_text()
    except BaseException:
        print(gw_log.read_text()[-5000:])
        if endpoint is not None and endpoint.poll() is not None and endpoint.stderr:
            print(endpoint.stderr.read()[-3000:])
        raise
    finally:
        for p in (endpoint, daemon):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)
