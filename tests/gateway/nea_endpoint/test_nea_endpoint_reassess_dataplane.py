"""Re-assessment with the userspace dataplane, each side in its own namespace: the
endpoint starts isolated (only 10.99.255.0/24 reachable through ESP), its profile is fixed,
SIGUSR1 re-authenticates, and the new IKE_SA's SAs and virtual IP replace the old ones on
the TUN device: 10.1.0.1 answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import PASSWORD, PROFILES, REPO
from tests.harness.tools import require
from tests.interop.test_nea_endpoint_dataplane import _config, _ping

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def _next_json(stream: Any) -> dict[str, Any]:
    lines = []
    for line in stream:
        lines.append(line)
        if line.rstrip() == "}":
            break
    doc = json.loads("".join(lines))
    assert isinstance(doc, dict)
    return doc


def test_reassessed_endpoint_moves_from_isolate_to_allow_networks(
    netns: Any, cert_factory: Any, tmp_path: Path
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
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "forwarding.toml", profile)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    gw_log = tmp_path / "gw.log"
    with gw_log.open("wb") as fh:
        daemon = gw_ns.popen(
            sys.executable, "-m", "gateway.daemon", "run", "-c", str(cfg),
            stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    endpoint = None
    try:
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in gw_log.read_text():
            assert daemon.poll() is None and time.monotonic() < deadline, gw_log.read_text()
            time.sleep(0.1)
        endpoint = cl_ns.popen(
            sys.executable, "-m", "gateway.nea_endpoint", "--server", "192.0.2.1",
            "--id", "bob", "--password", PASSWORD, "--ca", str(ca.cert_path),
            "--server-id", "gw.test", "--profile", str(profile),
            "--dataplane", "userspace", "--json", "--timeout", "20",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )  # fmt: skip
        assert endpoint.stdout is not None
        first = _next_json(endpoint.stdout)
        assert first["outcome"] == "isolate", first
        assert _ping(cl_ns, "10.99.255.1") and not _ping(cl_ns, "10.1.0.1")

        shutil.copy(PROFILES / "compliant.toml", profile)
        endpoint.send_signal(signal.SIGUSR1)
        second = _next_json(endpoint.stdout)
        assert second["outcome"] == "allow", second
        (vip,) = second["virtual_ips"]
        assert vip.startswith("10.3.0."), vip
        assert second["dataplane"].startswith("userspace ESP on nea-ep0"), second["dataplane"]
        deadline = time.monotonic() + 10
        while True:  # the new TUN device comes up right after the result is printed
            addrs = subprocess.run(
                cl_ns.cmd("ip", "-br", "addr", "show", "nea-ep0"), capture_output=True, text=True
            ).stdout
            if f"{vip}/32" in addrs or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert f"{vip}/32" in addrs, addrs
        assert _ping(cl_ns, "10.1.0.1"), gw_log.read_text()[-3000:]
        endpoint.send_signal(signal.SIGTERM)
        endpoint.wait(15)
        assert endpoint.returncode == 0
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
