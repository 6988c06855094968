"""Liveness, deletes and IKE_SA rekeying between Debian's charon (client, kernel-libipsec, own
namespace) and the real daemon (``python -m gateway.daemon run``), issue 6:

- charon's dead peer detection (``dpd_delay = 2s``) is answered and its IKE_SA stays up;
- a peer that stops answering is found by the gateway's own requests: the IKE_SA is deleted
  after the retransmissions and its virtual IP goes back to the pool, once with the IKE_SA
  rekey of ``rekey_time`` as the unanswered request, once with the daemon's ``dpd_delay``;
- ``swanctl --terminate --ike`` and ``--terminate --child`` from charon are followed by the
  daemon (IKE_SA gone and the address free; only the CHILD_SA gone, IKE_SA kept);
- an IKE_SA rekey started by charon and one started by the daemon while a TCP transfer and a
  ping run through the userspace dataplane: the checksum matches, no ping is lost, and the
  CHILD_SA lives on under the new IKE SPIs.

The daemon's own ``terminate`` is covered in test_gateway_charon.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.charon import Charon
from tests.harness.netns import Netns
from tests.harness.tools import require

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PSK = "gateway-liveness-secret-0123456789"
GW_INNER = "10.1.0.1"

GW_CONF = f"""
dataplane = "{{dataplane}}"
[ike]
listen = "192.0.2.1"
retransmit_timeout = 0.5
retransmit_base = 1.5
retransmit_tries = 2
[control]
socket = "{{sock}}"
[log]
default = 1
ike = 2
[pools.rw]
addrs = "10.3.0.0/28"
[connections.rw]
pools = ["rw"]
{{conn_extra}}
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
{{conn_extra}}
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

# A paced sender: ``nbytes`` in 64 KiB blocks with a pause after each, so that the transfer
# spans the rekey; prints the SHA-256 of what it sent.
PACED_SERVER = r"""
import hashlib, os, socket, sys, time
n = int(sys.argv[2]); pause = float(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5002)); s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
h = hashlib.sha256(); sent = 0; block = os.urandom(65536)
while sent < n:
    chunk = block[: min(len(block), n - sent)]
    c.sendall(chunk); h.update(chunk); sent += len(chunk)
    block = hashlib.sha256(block).digest() * 2048
    time.sleep(pause)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(h.hexdigest(), flush=True)
"""

RECEIVER = r"""
import hashlib, socket, sys
c = socket.create_connection((sys.argv[1], 5002), timeout=30)
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(262144)
    if not b: break
    h.update(b); n += len(b)
c.close()
print(h.hexdigest(), n, flush=True)
"""


class Daemon:
    """``python -m gateway.daemon run -c FILE`` in ``ns``; control commands via its socket."""

    def __init__(
        self, ns: Netns, workdir: Path, *, dataplane: str = "none", conn_extra: str = ""
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sock = workdir / "ctl.sock"
        self.config = workdir / "gateway.toml"
        self.config.write_text(
            GW_CONF.replace("{dataplane}", dataplane)
            .replace("{sock}", str(self.sock))
            .replace("{conn_extra}", conn_extra)
        )
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

    def json(self, command: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", command, "--json", "-s", str(self.sock)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        )
        assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)

    def list_sas(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("list-sas")
        return result

    def pool_online(self) -> int:
        (pool,) = [p for p in self.json("list-pools") if p["name"] == "rw"]
        online: int = pool["online"]
        return online

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"{what} not seen in {timeout}s"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def _setup(netns: Any, *, inner: bool = False) -> tuple[Netns, Netns]:
    gw, cl = netns.namespace("lvgw"), netns.namespace("lvcl")
    netns.veth(gw, cl, "192.0.2.1/24", "192.0.2.2/24")
    if inner:
        gw.run("ip", "addr", "add", f"{GW_INNER}/32", "dev", "lo")
        gw.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    return gw, cl


def _connect(charon_factory: Any, cl: Netns, daemon: Daemon, conn_extra: str = "") -> Charon:
    charon: Charon = charon_factory(cl, "cl")
    charon.write_swanctl_conf(CLIENT_CONF.replace("{conn_extra}", conn_extra))
    charon.load_all()
    charon.initiate("home")
    (csa,) = charon.list_sas()
    assert csa.state == "ESTABLISHED" and csa.child("home").state == "INSTALLED"
    (sa,) = daemon.list_sas()
    assert sa["state"] == "ESTABLISHED" and sa["remote_vips"] == list(csa.local_vips)
    assert daemon.pool_online() == 1
    return charon


def _spis(sa: dict[str, Any]) -> tuple[str, str]:
    return str(sa["spi_i"]), str(sa["spi_r"])


def test_charon_dpd_answered(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    """charon with ``dpd_delay = 2s`` on an idle IKE_SA sends empty INFORMATIONALs; every
    one is answered and the IKE_SA is the same one after three intervals."""
    gw, cl = _setup(netns)
    daemon = Daemon(gw, tmp_path / "gw")
    try:
        charon = _connect(charon_factory, cl, daemon, "    dpd_delay = 2s")
        (before,) = daemon.list_sas()
        deadline = time.monotonic() + 12
        while charon.log().count("parsed INFORMATIONAL response") < 3:
            assert time.monotonic() < deadline, charon.log_tail()
            time.sleep(0.2)
        log = charon.log()
        assert log.count("sending DPD request") >= 3, charon.log_tail()
        assert "retransmit" not in log, charon.log_tail()
        (csa,) = charon.list_sas()
        assert csa.state == "ESTABLISHED" and csa.child("home").state == "INSTALLED"
        (after,) = daemon.list_sas()
        assert after["uniqueid"] == before["uniqueid"] and _spis(after) == _spis(before)
        assert after["state"] == "ESTABLISHED"
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_dead_peer_deleted_and_address_released(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """charon's namespace drops everything (nftables): the daemon's next request (the IKE_SA
    rekey after ``rekey_time = 2s``) goes unanswered; after the retransmissions (0.5 s,
    then * 1.5, 2 tries) the IKE_SA is deleted and the virtual IP is free again."""
    require("nft")
    gw, cl = _setup(netns)
    daemon = Daemon(gw, tmp_path / "gw", conn_extra='rekey_time = "2s"')
    try:
        _connect(charon_factory, cl, daemon)
        cl.run("nft", "add", "table", "inet", "dead")
        for hook in ("input", "output"):
            cl.run(
                "nft", "add", "chain", "inet", "dead", hook,
                "{", "type", "filter", "hook", hook, "priority", "0", ";",
                "policy", "drop", ";", "}",
            )  # fmt: skip
        daemon.wait(lambda: daemon.list_sas() == [], "IKE_SA deleted", timeout=12)
        assert daemon.pool_online() == 0
        log = daemon.log()
        assert "retransmit 2 of message" in log, log[-4000:]
        assert "closed: peer not responding: retransmits exhausted" in log, log[-4000:]
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_gateway_dpd_detects_dead_peer(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    """The daemon's own dead peer detection (``dpd_delay = "2s"``, engine
    ``PeerConfig.dpd_delay``): charon answers its empty INFORMATIONALs and the IKE_SA stays;
    once charon's namespace drops everything, the IKE_SA is deleted after the retransmits
    and the virtual IP is free."""
    require("nft")
    gw, cl = _setup(netns)
    daemon = Daemon(gw, tmp_path / "gw", conn_extra='dpd_delay = "2s"')
    try:
        charon = _connect(charon_factory, cl, daemon)
        (before,) = daemon.list_sas()
        deadline = time.monotonic() + 8
        while charon.log().count("generating INFORMATIONAL response") < 2:
            assert time.monotonic() < deadline, charon.log_tail()
            time.sleep(0.2)
        assert "parsed INFORMATIONAL request 0 [ ]" in charon.log(), charon.log_tail()
        (sa,) = daemon.list_sas()
        assert _spis(sa) == _spis(before) and sa["state"] == "ESTABLISHED"
        cl.run("nft", "add", "table", "inet", "dead")
        for hook in ("input", "output"):
            cl.run(
                "nft", "add", "chain", "inet", "dead", hook,
                "{", "type", "filter", "hook", hook, "priority", "0", ";",
                "policy", "drop", ";", "}",
            )  # fmt: skip
        # next check within 2 s, retransmits after 0.5 s and 0.75 s, given up 1.125 s later
        daemon.wait(lambda: daemon.list_sas() == [], "IKE_SA deleted", timeout=10)
        assert daemon.pool_online() == 0
        log = daemon.log()
        assert "closed: peer not responding: retransmits exhausted" in log, log[-4000:]
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_charon_terminates_ike_sa(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    gw, cl = _setup(netns)
    daemon = Daemon(gw, tmp_path / "gw")
    try:
        charon = _connect(charon_factory, cl, daemon)
        charon.terminate(ike="home")
        charon.wait_for(lambda sas: not sas)
        # charon waits for our answer to its Delete before it reports success
        assert "parsed INFORMATIONAL response" in charon.log(), charon.log_tail()
        daemon.wait(lambda: daemon.list_sas() == [], "IKE_SA deleted")
        assert daemon.pool_online() == 0
        # the address can be handed out again: a new IKE_SA gets one
        charon.initiate("home")
        (sa,) = daemon.list_sas()
        assert sa["remote_vips"] and daemon.pool_online() == 1
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_charon_terminates_child_sa_only(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    gw, cl = _setup(netns)
    daemon = Daemon(gw, tmp_path / "gw")
    try:
        charon = _connect(charon_factory, cl, daemon)
        (before,) = daemon.list_sas()
        assert len(before["children"]) == 1
        charon.terminate(child="home")
        charon.wait_for(lambda sas: len(sas) == 1 and not sas[0].children)
        daemon.wait(lambda: not daemon.list_sas()[0]["children"], "CHILD_SA deleted")
        (after,) = daemon.list_sas()
        assert after["state"] == "ESTABLISHED" and _spis(after) == _spis(before)
        assert daemon.pool_online() == 1  # the IKE_SA keeps its virtual IP
        # and the IKE_SA is still usable: a new CHILD_SA on it
        charon.initiate("home")
        (again,) = daemon.list_sas()
        assert _spis(again) == _spis(before) and len(again["children"]) == 1
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


class Traffic:
    """A paced TCP transfer gateway -> client and a ping client -> gateway, both through the
    tunnel, running in the background."""

    def __init__(self, gw: Netns, cl: Netns, nbytes: int, seconds: float) -> None:
        self.nbytes = nbytes
        pause = seconds / (nbytes / 65536)
        self.server = gw.popen(
            sys.executable, "-c", PACED_SERVER, GW_INNER, str(nbytes), str(pause),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.server.stdout is not None
        assert self.server.stdout.readline().strip() == "LISTENING"
        self.client = cl.popen(
            sys.executable, "-c", RECEIVER, GW_INNER, stdout=subprocess.PIPE, text=True
        )
        count = int(seconds / 0.05)
        self.ping = cl.popen(
            "ping", "-n", "-c", str(count), "-i", "0.05", "-W", "2", GW_INNER,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.count = count

    def finish(self) -> tuple[int, int]:
        """Waits for both; asserts the checksum; returns (pings sent, pings received)."""
        out, _ = self.client.communicate(timeout=30)
        digest_c, n = out.split()
        assert self.server.stdout is not None
        digest_s = self.server.stdout.readline().strip()
        self.server.wait(10)
        assert int(n) == self.nbytes and digest_c == digest_s
        ping_out, _ = self.ping.communicate(timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", ping_out)
        assert m, ping_out
        return int(m.group(1)), int(m.group(2))


def _wait_route(gw: Netns, vip: str) -> None:
    deadline = time.monotonic() + 10
    while "nea-esp0" not in gw.run("ip", "route", "get", vip, check=False).stdout:
        assert time.monotonic() < deadline, "no route to the virtual IP over nea-esp0"
        time.sleep(0.05)


def _check_rekeyed(
    daemon: Daemon, charon: Charon, before: dict[str, Any], child_before: dict[str, Any]
) -> None:
    (after,) = daemon.list_sas()
    assert after["state"] == "ESTABLISHED"
    assert _spis(after) != _spis(before), (before, after)
    # the CHILD_SA moved to the new IKE_SA unchanged
    (child,) = after["children"]
    assert (child["spi_in"], child["spi_out"]) == (child_before["spi_in"], child_before["spi_out"])
    (csa,) = charon.list_sas()
    assert csa.state == "ESTABLISHED"
    assert csa.raw["initiator-spi"] in _spis(after) and csa.raw["responder-spi"] in _spis(after)
    assert csa.child("home").raw["spi-in"] == child["spi_out"]


@pytest.mark.parametrize("rekeyer", ["charon", "gateway"])
def test_ike_rekey_under_traffic(
    netns: Any, charon_factory: Any, tmp_path: Path, rekeyer: str
) -> None:
    """5 MB (paced over ~4 s) and 80 pings through the userspace dataplane while the IKE_SA is
    rekeyed, by charon (``swanctl --rekey --ike home``, a rekey, no reauth) or by the gateway
    (``rekey_time = "2s"``): the checksum matches, no ping is lost, the CHILD_SA survives
    under the new IKE SPIs."""
    require("ping")
    gw, cl = _setup(netns, inner=True)
    conn_extra = 'rekey_time = "2s"' if rekeyer == "gateway" else ""
    daemon = Daemon(gw, tmp_path / "gw", dataplane="userspace", conn_extra=conn_extra)
    try:
        charon = _connect(charon_factory, cl, daemon)
        (before,) = daemon.list_sas()
        (child_before,) = before["children"]
        _wait_route(gw, charon.list_sas()[0].local_vips[0])
        traffic = Traffic(gw, cl, 5 * 1024 * 1024, 4.0)
        time.sleep(1.0)
        if rekeyer == "charon":
            charon.swanctl("--rekey", "--ike", "home")  # no --reauth: a rekey
        charon.wait_for_log("IKE_SA home[2] rekeyed", timeout=8)
        # the rekey happened while both the transfer and the ping were still running
        assert traffic.client.poll() is None and traffic.ping.poll() is None
        charon.wait_for(lambda sas: len(sas) == 1 and sas[0].state == "ESTABLISHED")
        sent, received = traffic.finish()
        assert sent == traffic.count and received == sent, (sent, received)
        daemon.wait(lambda: _spis(daemon.list_sas()[0]) != _spis(before), "new IKE SPIs")
        _check_rekeyed(daemon, charon, before, child_before)
        exchange = "CREATE_CHILD_SA response" if rekeyer == "charon" else "CREATE_CHILD_SA request"
        assert f"parsed {exchange}" in charon.log(), charon.log_tail()
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()
