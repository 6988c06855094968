"""Several ``nea-endpoint --once`` processes at the same time in one network namespace,
against a real nea-gateway on port 500 there, while another program holds UDP 4500 on the
endpoints' address: each binds 500, cannot bind 4500, falls back to an ephemeral port, and
every one of them must complete (the fallback once reused the stopped 500 listener's
protocol object, whose transport Twisted then cleared: IKE_AUTH was never sent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import PSK, REPO, gateway_config
from tests.harness.certs import CertFactory
from tests.harness.netns import NetnsFactory

pytestmark = [pytest.mark.netns, pytest.mark.slow]

GW_IP, CL_IP = "127.0.0.1", "127.0.0.2"
CLIENTS = 4
HOLD_4500 = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"s.bind(({CL_IP!r}, 4500))\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def _wait_for(path: Path, text: str, proc: subprocess.Popen[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{path.read_text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} within {timeout} s:\n{path.read_text()[-3000:]}")


def test_simultaneous_once_clients_with_4500_taken(
    netns: NetnsFactory, tmp_path: Path
) -> None:
    f = CertFactory(tmp_path / "pki")
    ca = f.ca("ca")
    gw = f.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    ns = netns.namespace("nep")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cfg = tmp_path / "gw.toml"
    cfg.write_text(gateway_config(tmp_path, ca, gw, 500, 4500))
    gw_log = tmp_path / "gw.log"
    with gw_log.open("wb") as fh:
        gw_proc = ns.popen(
            sys.executable, "-m", "gateway.daemon", "run", "-c", str(cfg),
            cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    _wait_for(gw_log, "nea-gateway started", gw_proc, 30)
    hold_log = tmp_path / "hold.log"
    with hold_log.open("wb") as fh:
        holder = ns.popen(sys.executable, "-c", HOLD_4500, stdout=fh, stderr=subprocess.STDOUT)
    _wait_for(hold_log, "held", holder, 10)

    argv = [
        sys.executable, "-m", "gateway.nea_endpoint",
        "--server", f"{GW_IP}:500", "--source", CL_IP,
        "--id", "psk-client", "--psk", PSK, "--no-posture",
        "--once", "--json", "--timeout", "20",
    ]  # fmt: skip
    clients = [
        ns.popen(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(CLIENTS)
    ]
    outcomes = []
    for proc in clients:
        out, err = proc.communicate(timeout=60)
        assert out, f"no output (rc {proc.returncode}): {err}\n{gw_log.read_text()[-2000:]}"
        doc = json.loads(out)
        outcomes.append((proc.returncode, doc["outcome"], doc["local"]))
    assert [o[:2] for o in outcomes] == [(0, "allow")] * CLIENTS, outcomes
    locals_ = {o[2] for o in outcomes}
    assert len(locals_) == CLIENTS and f"{CL_IP}:4500" not in locals_, outcomes
