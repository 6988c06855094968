"""Debian's charon with kernel-libipsec (client, own namespace) against our IKE engine plus
our userspace ESP dataplane (gateway namespace): real traffic both ways through two
independent ESP implementations.

Composition as the daemon should do it: tests/gateway/dataplane/ike_esp_runner.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.dataplane.netns_pair import PYTHON, tcp_transfer
from tests.harness.netns import Netns
from tests.harness.tools import require

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "gateway" / "dataplane" / "ike_esp_runner.py"
PSK = "dataplane-psk-0123456789abcdef"
GW_INNER, REMEDIATION = "10.1.0.1", "10.66.0.1"

CLIENT_CONF = """\
connections {
  home {
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {
      auth = psk
      id = cl.test
    }
    remote {
      auth = psk
      id = gw.test
    }
    children {
      home {
        remote_ts = 10.1.0.0/16,10.66.0.0/24
        esp_proposals = %(esp)s
      }
    }
  }
}
secrets {
  ike-home {
    id-1 = cl.test
    id-2 = gw.test
    secret = "%(psk)s"
  }
}
"""


class Gateway:
    def __init__(self, ns: Netns, workdir: Path, isolate: list[str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.control = workdir / "gw.ctl"
        self.log_path = workdir / "gw.log"
        cfg = {
            "listen": "192.0.2.1",
            "events": str(workdir / "events.jsonl"),
            "control": str(self.control),
            "dataplane": {"kind": "userspace", "ifname": "nea-esp0", "isolate": isolate or []},
            "connections": [
                {
                    "name": "gw",
                    "local_id": "gw.test",
                    "remote_id": "cl.test",
                    "psk": PSK,
                    "pool": "10.3.0.0/28",
                    "children": [{"name": "net", "local_ts": ["10.1.0.0/16", "10.66.0.0/24"]}],
                }
            ],
        }
        path = workdir / "gw.json"
        path.write_text(json.dumps(cfg))
        self._log = self.log_path.open("ab")
        self.proc = ns.popen(
            sys.executable,
            str(RUNNER),
            str(path),
            cwd=str(REPO),
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while "IKE listening" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, op: str) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(str(self.control))
            s.sendall(json.dumps({"op": op}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply: dict[str, Any] = json.loads(buf)
        assert reply.get("ok"), reply
        return reply

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.request("stats")["stats"]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def setup(
    netns: Any, charon_factory: Any, tmp_path: Path, esp: str, isolate: list[str] | None = None
):  # type: ignore[no-untyped-def]
    require("ping")
    gw_ns, cl_ns = netns.namespace("dpgw"), netns.namespace("dpcl")
    netns.veth(gw_ns, cl_ns, "192.0.2.1/24", "192.0.2.2/24")
    for addr in (GW_INNER, REMEDIATION):
        gw_ns.run("ip", "addr", "add", f"{addr}/32", "dev", "lo")
    gw_ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    gw = Gateway(gw_ns, tmp_path / "gw", isolate)
    charon = charon_factory(cl_ns, "cl")
    charon.write_swanctl_conf(CLIENT_CONF % {"esp": esp, "psk": PSK})
    charon.load_all()
    charon.initiate("home")
    (sa,) = charon.list_sas()
    vip = sa.local_vips[0]
    # The route to the virtual IP is set on the netlink worker thread right after the
    # CHILD_SA is installed; wait for it so the first echo reply is not lost.
    deadline = time.monotonic() + 10
    while "nea-esp0" not in gw_ns.run("ip", "route", "get", vip, check=False).stdout:
        assert time.monotonic() < deadline, gw.log()
        time.sleep(0.05)
    return gw, charon, gw_ns, cl_ns, vip


def ping(ns: Netns, dst: str, src: str | None = None, count: int = 3, check: bool = True) -> bool:
    args = ["ping", "-c", str(count), "-i", "0.2", "-W", "2"]
    if src:
        args += ["-I", src]
    return ns.run(*args, dst, timeout=30, check=check).returncode == 0


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes256-sha256", "chacha20poly1305"])
def test_ping_both_ways_with_charon(netns, charon_factory, tmp_path: Path, esp: str) -> None:  # type: ignore[no-untyped-def]
    gw, charon, gw_ns, cl_ns, vip = setup(netns, charon_factory, tmp_path, esp)
    try:
        ping(cl_ns, GW_INNER)
        ping(gw_ns, vip, src=GW_INNER)
        st = gw.stats()
        assert st["backend"] == "userspace"
        assert st["packets_in"] >= 6 and st["packets_out"] >= 6, st
        assert st["drops"]["auth_failed"] == 0 and st["drops"]["replayed"] == 0, st
        (child,) = charon.list_sas()[0].children
        assert int(child.raw.get("packets-in", 0)) >= 6, child.raw
    finally:
        gw.stop()


def test_50mb_transfer_with_charon_rekey(netns, charon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw, charon, gw_ns, cl_ns, _vip = setup(netns, charon_factory, tmp_path, "aes128gcm16")
    try:
        nbytes = 50 * 1024 * 1024
        result: list[tuple[str, str, int, float]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                # Paced (8 MB/s, about 6 s) so both rekeys fall inside the transfer.
                result.append(
                    tcp_transfer(gw_ns, GW_INNER, cl_ns, nbytes, timeout=600, rate=8_000_000)
                )
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 60
        while gw.stats()["bytes_out"] < 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        old_spis = {c["spi_in"] for c in gw.stats()["child_sas"]}
        charon.swanctl("--rekey", "--child", "home")  # charon rekeys the CHILD_SA
        time.sleep(1.0)
        assert not result, "the transfer ended before the rekey"
        gw.request("rekey")  # and then we rekey it once more
        t.join(600)
        assert not errors, errors
        digest_s, digest_c, n, dt = result[0]
        assert n == nbytes and digest_s == digest_c
        st = gw.stats()
        new_spis = {c["spi_in"] for c in st["child_sas"]}
        assert new_spis and not (new_spis & old_spis), (old_spis, new_spis)
        assert st["drops"]["auth_failed"] == 0, st
        print(f"50 MB through charon kernel-libipsec <-> our ESP in {dt:.1f} s")
    finally:
        gw.stop()


def test_isolated_client_reaches_only_remediation(netns, charon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw, charon, _gw_ns, cl_ns, _vip = setup(
        netns, charon_factory, tmp_path, "aes128gcm16", isolate=[f"{REMEDIATION}/32"]
    )
    try:
        assert ping(cl_ns, REMEDIATION, count=2)
        assert not ping(cl_ns, GW_INNER, count=2, check=False)
        assert gw.stats()["drops"]["policy_mismatch"] >= 2
        spis = {c["spi_in"] for c in gw.stats()["child_sas"]}
        gw.request("allow")  # posture now allows: same IKE_SA and CHILD_SA, wider selectors
        assert ping(cl_ns, GW_INNER, count=2)
        assert {c["spi_in"] for c in gw.stats()["child_sas"]} == spis
        assert len(charon.list_sas()) == 1
    finally:
        gw.stop()


def test_replayed_and_tampered_charon_packets_dropped(
    netns, charon_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A copy of a real ESP packet from charon, sent again, is a replay; the same with one bit
    flipped (fresh sequence number) fails the ICV.  Both are counted, neither delivered."""
    from tests.interop.test_dataplane_userspace_pair import SNIFFER

    gw, _charon, gw_ns, cl_ns, _vip = setup(netns, charon_factory, tmp_path, "aes128gcm16")
    try:
        veth = next(
            line.split(":")[1].strip().split("@")[0]
            for line in gw_ns.run("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()
        )
        sniff = gw_ns.popen(PYTHON, "-c", SNIFFER, veth, stdout=subprocess.PIPE)
        time.sleep(0.5)
        ping(cl_ns, GW_INNER, count=1)
        assert sniff.stdout is not None
        esp = bytes.fromhex(sniff.stdout.readline().decode().strip())
        sniff.kill()
        before = gw.stats()
        tampered = bytearray(esp)
        tampered[4:8] = (int.from_bytes(esp[4:8], "big") + 100).to_bytes(4, "big")
        tampered[-20] ^= 0x01
        inject = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for h in sys.argv[1:]:\n"
            "    s.sendto(bytes.fromhex(h), ('192.0.2.1', 4500))\n"
        )
        cl_ns.run(PYTHON, "-c", inject, esp.hex(), bytes(tampered).hex())
        time.sleep(0.5)
        after = gw.stats()
        assert after["drops"]["replayed"] == before["drops"]["replayed"] + 1
        assert after["drops"]["auth_failed"] == before["drops"]["auth_failed"] + 1
        assert after["packets_in"] == before["packets_in"]
        assert ping(cl_ns, GW_INNER, count=1)
    finally:
        gw.stop()
