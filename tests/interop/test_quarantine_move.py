"""Issue 7's quarantine promise end to end, each side in its own namespace: nea-gateway
(dataplane userspace, ``[pt_tls]`` listening on 10.99.255.1 inside the isolate child's
networks, referral on) and nea-endpoint (``--dataplane userspace --pt-tls referral``).

The endpoint is isolated by PT-EAP inside IKE_AUTH: only 10.99.255.0/24 answers through ESP.
It opens PT-TLS to the PDP the gateway named, through its isolate tunnel.  Its profile is fixed
and SIGUSR1 sends CRETRY over PT-TLS: the verdict is allow, the gateway sends CREATE_CHILD_SA
for the allow child and deletes the isolate one, on the SAME IKE_SA (same SPIs in list-sas):
10.1.0.1 answers through ESP, from the same virtual IP."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import PASSWORD, PROFILES, REPO
from tests.harness.tools import require
from tests.interop.test_nea_endpoint_dataplane import _config, _ping

pytestmark = [pytest.mark.netns, pytest.mark.slow]


class _Reader:
    """The endpoint's stdout, line by line from a thread (reads never block the test)."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def next_json(self, timeout: float = 40.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no result within {timeout} s: {''.join(lines)!r}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, "nea-endpoint exited"
            lines.append(line)
            if line.rstrip() == "}":
                doc = json.loads("".join(lines))
                assert isinstance(doc, dict)
                return doc


def _list_sas(gw_ns: Any, cfg: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    r = subprocess.run(
        gw_ns.cmd(sys.executable, "-m", "gateway.daemon", "list-sas", "--json", "-c", str(cfg)),
        capture_output=True, text=True, timeout=30, env=env, cwd=cfg.parent,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    sas: list[dict[str, Any]] = doc["sas"] if isinstance(doc, dict) else doc
    return sas


def test_cretry_over_pt_tls_moves_the_isolated_ike_sa_to_allow(
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
    cfg.write_text(
        _config(tmp_path, ca, gw)
        + f"""
[pt_tls]
listen = "10.99.255.1"
client_auth = "sasl"
certs = ["{gw.chain_path}"]
referral = true
"""
    )
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "forwarding.toml", profile)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    gw_log = tmp_path / "gw.log"
    with gw_log.open("wb") as fh:
        daemon = gw_ns.popen(
            sys.executable, "-m", "gateway.daemon", "run", "-c", str(cfg), "-v",
            stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    endpoint = None
    ep_log = tmp_path / "endpoint.log"
    ep_err = ep_log.open("w")
    try:
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in gw_log.read_text():
            assert daemon.poll() is None and time.monotonic() < deadline, gw_log.read_text()
            time.sleep(0.1)
        endpoint = cl_ns.popen(
            sys.executable, "-m", "gateway.nea_endpoint", "--server", "192.0.2.1",
            "--id", "bob", "--password", PASSWORD, "--ca", str(ca.cert_path),
            "--server-id", "gw.test", "--profile", str(profile),
            "--dataplane", "userspace", "--json", "--timeout", "20", "--pt-tls", "referral", "-v",
            stdout=subprocess.PIPE, stderr=ep_err, env=env, text=True,
        )  # fmt: skip
        assert endpoint.stdout is not None
        out = _Reader(endpoint.stdout)
        first = out.next_json()
        assert first["outcome"] == "isolate", first
        (vip,) = first["virtual_ips"]
        # the PT-TLS session through the isolate tunnel: assessed there too
        opened = out.next_json()
        assert opened["outcome"] == "isolate", opened
        assert _ping(cl_ns, "10.99.255.1") and not _ping(cl_ns, "10.1.0.1")
        (sa,) = _list_sas(gw_ns, cfg, env)
        assert sa["verdict"] == "isolate" and sa["pt_tls"] is not None, sa

        shutil.copy(PROFILES / "compliant.toml", profile)
        endpoint.send_signal(signal.SIGUSR1)
        second = out.next_json()
        assert second["outcome"] == "allow", second
        assert second["virtual_ips"] == [vip]
        assert second["ike"]["spi_i"] == first["ike"]["spi_i"]
        assert second["ike"]["spi_r"] == first["ike"]["spi_r"]
        assert [c["remote_ts"] for c in second["children"]] == [["10.1.0.0/16"]], second
        (sa,) = _list_sas(gw_ns, cfg, env)
        assert (sa["spi_i"], sa["spi_r"]) == (first["ike"]["spi_i"], first["ike"]["spi_r"])
        assert sa["verdict"] == "allow" and [c["name"] for c in sa["children"]] == ["allow"]
        assert _ping(cl_ns, "10.1.0.1"), gw_log.read_text()[-3000:]
        assert not _ping(cl_ns, "10.99.255.1")  # the isolate child is gone
        endpoint.send_signal(signal.SIGTERM)
        endpoint.wait(15)
        assert endpoint.returncode == 0
    except BaseException:
        print(gw_log.read_text()[-5000:])
        print(ep_log.read_text()[-6000:])
        raise
    finally:
        ep_err.close()
        for p in (endpoint, daemon):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)
