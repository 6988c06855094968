"""``nea-gateway run`` as a process and its control commands through the unix socket.

Two daemons on loopback (free unprivileged ports): ``gw`` answers with a PSK connection and a
pool, ``cl`` has a connection to ``gw`` and is told to ``initiate``.  Checks the output of
``list-sas`` / ``list-conns`` / ``stats`` (tables and ``--json``), ``reload`` keeping the SA,
``terminate`` (the peer sees the Delete) and SIGTERM (Deletes to every peer before exit).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
PSK = "loopback-test-secret"


def _free_udp_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _json(sock: Path, *args: str) -> Any:
    return json.loads(_cli(args[0], "-s", str(sock), "--json", *args[1:]).stdout)


class Daemon:
    def __init__(self, workdir: Path, name: str, config: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir()
        self.config = self.dir / "gw.toml"
        self.config.write_text(config)
        self.sock = self.dir / "ctl.sock"
        self.log = self.dir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.daemon", "run", "-c", str(self.config)],
                cwd=self.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()}")
            if (
                self.sock.exists()
                and _cli("stats", "-s", str(self.sock), check=False).returncode == 0
            ):
                return
            time.sleep(0.1)
        raise AssertionError(f"daemon did not come up: {self.log.read_text()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _configs(gw_ports: list[int], cl_ports: list[int]) -> tuple[str, str]:
    gw = f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = {gw_ports[0]}
port_nat_t = {gw_ports[1]}
retransmit_timeout = 1
[control]
socket = "ctl.sock"
[log]
default = 1
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
    cl = f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = {cl_ports[0]}
port_nat_t = {cl_ports[1]}
retransmit_timeout = 1
[control]
socket = "ctl.sock"
[connections.home]
remote_addrs = "127.0.0.1"
vips = "0.0.0.0"
[connections.home.local]
auth = "psk"
id = "cl.test"
[connections.home.remote]
auth = "psk"
id = "gw.test"
[connections.home.children.home]
remote_ts = ["10.1.0.0/16"]
[secrets.ike-home]
secret = "{PSK}"
[nea]
database = false
"""
    return gw, cl


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    gw_ports = _free_udp_ports(2)
    cl_ports = _free_udp_ports(2)
    gw_conf, cl_conf = _configs(gw_ports, cl_ports)
    gw, cl = Daemon(tmp_path, "gw", gw_conf), Daemon(tmp_path, "cl", cl_conf)
    gw.gw_port = gw_ports[0]  # type: ignore[attr-defined]
    try:
        gw.start()
        cl.start()
        yield gw, cl
    finally:
        for d in (cl, gw):
            d.stop()


def _wait(pred: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached")


@pytest.mark.slow
def test_control_commands_between_two_daemons(pair: tuple[Daemon, Daemon]) -> None:
    gw, cl = pair
    port = str(gw.gw_port)  # type: ignore[attr-defined]
    out = _cli("initiate", "-s", str(cl.sock), "--ike", "home", "--remote-port", port)
    assert "initiate completed successfully: home #1 ESTABLISHED with 127.0.0.1" in out.stdout

    (sa,) = _json(gw.sock, "list-sas")
    assert sa["name"] == "rw" and sa["state"] == "ESTABLISHED" and sa["uniqueid"] == 1
    assert sa["remote_id"] == "cl.test" and sa["local_id"] == "gw.test"
    assert sa["remote_vips"] == ["10.3.0.1"] and sa["remote_host"] == "127.0.0.1"
    assert sa["children"][0]["name"] == "net"
    assert sa["children"][0]["local_ts"] == ["10.1.0.0/16"]
    (csa,) = _json(cl.sock, "list-sas")
    assert csa["initiator"] and csa["spi_i"] == sa["spi_i"] and csa["spi_r"] == sa["spi_r"]

    table = _cli("list-sas", "-s", str(gw.sock)).stdout
    for text in (
        "rw: #1",
        "ESTABLISHED",
        "'cl.test'",
        "[10.3.0.1]",
        "net: INSTALLED",
        "10.1.0.0/16",
    ):
        assert text in table, table
    conns = _cli("list-conns", "-s", str(gw.sock)).stdout
    assert (
        "rw" in conns and "psk" in conns and "'gw.test'" in conns and "net (allow/isolate)" in conns
    )
    (conn,) = _json(gw.sock, "list-conns")
    assert conn["remote"]["id"] == "cl.test" and conn["pools"] == ["rw"]

    (pool,) = _json(gw.sock, "list-pools")
    assert pool["name"] == "rw" and pool["online"] == 1 and pool["size"] == 14
    assert "rw" in _cli("list-pools", "-s", str(gw.sock)).stdout
    stats = _json(gw.sock, "stats")
    assert stats["ike_sas"] == 1 and stats["child_sas"] == 1 and stats["half_open"] == 0
    assert stats["packets"]["ike_received"] >= 2 and stats["dataplane"] == "none"
    assert "1 established, 0 half-open" in _cli("stats", "-s", str(gw.sock)).stdout

    # reload: a new connection appears, the SA stays
    gw.config.write_text(
        gw.config.read_text() + '[connections.extra]\n[connections.extra.local]\nauth = "psk"\n'
        '[connections.extra.remote]\nauth = "psk"\n[secrets.ike-extra]\nsecret = "x"\n'
    )
    assert "added ['extra']" in _cli("reload", "-s", str(gw.sock)).stdout
    assert [c["name"] for c in _json(gw.sock, "list-conns")] == ["rw", "extra"]
    (sa2,) = _json(gw.sock, "list-sas")
    assert sa2["ike_sa"] == sa["ike_sa"]
    # a broken file: reload refused with the key, the daemon keeps running
    good = gw.config.read_text()
    gw.config.write_text(good + "\n[connections.extra.bogus]\n")
    bad = _cli("reload", "-s", str(gw.sock), check=False)
    assert bad.returncode == 1 and "connections.extra.bogus: unknown key" in bad.stderr
    gw.config.write_text(good)

    # terminate on the gateway: the client sees the Delete
    out = _cli("terminate", "-s", str(gw.sock), "--ike", "rw")
    assert "terminate completed successfully: rw #1" in out.stdout
    assert _json(gw.sock, "list-sas") == []
    _wait(lambda: _json(cl.sock, "list-sas") == [])
    missing = _cli("terminate", "-s", str(gw.sock), "--ike", "rw", check=False)
    assert missing.returncode == 1 and "no IKE_SA matches 'rw'" in missing.stderr

    # SIGTERM on the client: it deletes its SA at the gateway before exiting
    _cli("initiate", "-s", str(cl.sock), "--ike", "home", "--remote-port", port)
    assert len(_json(gw.sock, "list-sas")) == 1
    assert cl.stop() == 0
    _wait(lambda: _json(gw.sock, "list-sas") == [])
    assert "shutting down: deleting 1 IKE_SA(s)" in cl.log.read_text()
    assert not cl.sock.exists()


def test_cli_without_daemon(tmp_path: Path) -> None:
    proc = _cli("stats", "-s", str(tmp_path / "none.sock"), check=False)
    assert proc.returncode == 1
    assert "cannot reach nea-gateway" in proc.stderr and "Traceback" not in proc.stderr
