"""Real processes on loopback: ``nea-gateway`` with ``[pt_tls]`` (referral on) and
``nea-endpoint --pt-tls referral`` (plain mode, no dataplane).  The endpoint is isolated by
PT-EAP inside IKE_AUTH, opens a PT-TLS session to the PDP the gateway named in its
PB-PDP-Referral (SASL PLAIN), fixes its profile and gets SIGUSR1: CRETRY over PT-TLS -> allow,
and the gateway moves the SAME IKE_SA (same SPIs in list-sas) to its allow child with a
CREATE_CHILD_SA; the isolate child is deleted.

Outside a tunnel the PT-TLS connection comes from 127.0.0.1, not the virtual IP: the gateway
ties it to the IKE_SA by the authenticated identity (one IKE_SA of ``bob``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import (
    NAMES,
    PROFILES,
    REPO,
    GatewayProcess,
    gateway_config,
)
from tests.gateway.nea_endpoint.test_nea_endpoint_reassess_loopback import Endpoint
from tests.harness.certs import CertFactory
from tests.harness.tools import free_udp_ports

pytestmark = pytest.mark.slow


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    f = CertFactory(tmp_path / "pki")
    ca = f.ca("ca")
    gw = f.issue(ca, "gw.test", san_dns=NAMES, eku=("serverAuth",))
    workdir = tmp_path / "gw"
    workdir.mkdir()
    port, natt = free_udp_ports(2)
    cfg = workdir / "gw.toml"
    cfg.write_text(
        gateway_config(workdir, ca, gw, port, natt)
        + f"""
[pt_tls]
listen = "127.0.0.1"
port = {_free_tcp_port()}
client_auth = "sasl"
certs = ["{gw.chain_path}"]
referral = true
"""
    )
    log_path = workdir / "gw.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.daemon", "run", "-c", str(cfg), "-v"],
            cwd=workdir, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    g = GatewayProcess(proc, port, log_path, workdir, Path(ca.cert_path))
    try:
        deadline = time.monotonic() + 30
        while "nea-gateway started" not in g.log():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nea-gateway did not start:\n{g.log()[-3000:]}")
            time.sleep(0.1)
        yield g
    finally:
        g.stop()
        print(g.log()[-4000:])


def _sas(gateway: GatewayProcess) -> list[dict[str, Any]]:
    r = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "list-sas", "--json",
         "-c", str(gateway.workdir / "gw.toml")],
        capture_output=True, text=True, timeout=30, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    sas = doc["sas"] if isinstance(doc, dict) else doc
    return [s for s in sas if s.get("remote_eap_id") == "bob"]


def test_cretry_over_pt_tls_moves_the_same_ike_sa_to_allow(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    profile = tmp_path / "me.toml"
    shutil.copy(PROFILES / "outdated-os.toml", profile)
    ep = Endpoint(gateway, profile, "--pt-tls", "referral")
    try:
        first = ep.next_result()
        assert (first["outcome"], first["verdict"]) == ("isolate", "isolate"), first
        # the PT-TLS session opened through the referral: first assessment there, same verdict
        opened = ep.next_result()
        assert opened["outcome"] == "isolate", opened
        assert opened["ike"]["spi_i"] == first["ike"]["spi_i"]
        (sa,) = _sas(gateway)
        assert sa["verdict"] == "isolate" and sa["pt_tls"] is not None, sa
        shutil.copy(PROFILES / "compliant.toml", profile)  # remediated
        ep.proc.send_signal(signal.SIGUSR1)
        second = ep.next_result()
        assert second["outcome"] == "allow", second
        assert second["ike"]["spi_i"] == first["ike"]["spi_i"]  # no new IKE_SA
        assert second["ike"]["spi_r"] == first["ike"]["spi_r"]
        # our side of the gateway's allow child (the isolate one is gone)
        assert [c["remote_ts"] for c in first["children"]] == [["10.99.255.0/24"]], first
        assert [c["remote_ts"] for c in second["children"]] == [["10.1.0.0/16"]], second
        assert second["virtual_ips"] == first["virtual_ips"]  # the address stays
        (sa,) = _sas(gateway)
        assert (sa["spi_i"], sa["spi_r"]) == (first["ike"]["spi_i"], first["ike"]["spi_r"])
        assert sa["verdict"] == "allow"
        assert [c["name"] for c in sa["children"]] == ["allow"], sa
        assert ep.proc.poll() is None, "still connected"
    finally:
        out = ep.stop_output()
    assert ep.proc.returncode == 0, out
    log = gateway.log()
    assert "isolate -> allow after re-assessment" in log, log[-3000:]
