"""The quarantine move of docs/config.md ("Leaving quarantine without a new IKE_SA") with
Debian's charon as the road warrior: nea-gateway (``dataplane = "userspace"``, ``[pt_tls]`` on
10.99.255.1) in one namespace, charon (kernel-libipsec, EAP-TTLS with inner EAP-MD5, a virtual
IP from the pool) in another.

Debian's charon speaks no PB-TNC (no tnccs-20), so its connection has no posture assessment in
IKE_AUTH: its IKE_SA counts as *allow* and gets the allow child (10.1.0.0/16 plus the PT-TLS
listener 10.99.255.1/32).  Our PT-TLS client (nea-endpoint's, ``pt_tls_client_proc``) runs in
charon's namespace and reaches the listener through charon's tunnel, so its source address is
charon's virtual IP.  A non-compliant profile (IP forwarding on) earns *isolate*: the gateway -
the IKE_SA's responder - sends CREATE_CHILD_SA for the isolate child (10.99.255.0/24) and then
deletes the allow child; charon accepts it on the SAME IKE_SA.  CRETRY after remediation
(compliant profile) moves it back to allow the same way.  Each step is checked on charon's
side (VICI list-sas: same IKE SPIs, one CHILD_SA with the new verdict's selectors), on the
gateway's (``list-sas --json``: verdict, children, the tied PT-TLS session), on the data path
(ping through ESP) and in the evidence database (``nea-report sessions``: both assessments of
bob, from the virtual IP).

charon picks the child config for the responder's CREATE_CHILD_SA by its ``remote_ts``: it
must cover the new verdict's networks (here it names both verdicts' networks).  With only the
allow networks charon still accepts but narrows the isolate child to their intersection (the
listener's /32; second test).  The gateway's CREATE_CHILD_SA carries no KE (no PFS in its
default ESP proposals), so ``esp_proposals = aes128gcm16`` matches."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.nea_endpoint.gateway_proc import POLICY, PROFILES
from tests.harness.charon import Charon, IkeSa
from tests.harness.tools import require
from tests.interop.test_gateway_charon import GatewayDaemon
from tests.scenarios.scenario_rig import nea_report

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "hello"
LISTENER = "10.99.255.1"
ALLOW_TS = ["10.1.0.0/16", "10.99.255.1/32"]
ISOLATE_TS = ["10.99.255.0/24"]
ALLOW_HOST = "10.1.0.1"
"""Only the allow child reaches it."""
ISOLATE_HOST = "10.99.255.2"
"""Only the isolate child reaches it (the allow child has just the listener of that net)."""
CHARON_REMOTE_TS = "10.1.0.0/16,10.99.255.0/24"
"""charon's ``remote_ts``: both verdicts' networks, so it accepts either child unnarrowed."""


def _gateway_config(tmp: Path, ca: Any, gw: Any) -> str:
    return f"""
dataplane = "userspace"
[ike]
listen = "192.0.2.1"
[control]
socket = "{{sock}}"
[pools.rw]
addrs = "10.3.0.0/28"
[secrets.eap-bob]
id = "bob"
secret = "{PASSWORD}"
[secrets.private-gw]
file = "{gw.key_path}"
[authorities.ca]
cacert = "{ca.cert_path}"
[nea]
policy = "{POLICY}"
database = "sqlite:///{tmp / "evidence.db"}"
[pt_tls]
listen = "{LISTENER}"
client_auth = "sasl"
certs = ["{gw.chain_path}"]
move_grace = 1
[connections.rw]
pools = ["rw"]
[connections.rw.local]
auth = "pubkey"
certs = ["{gw.chain_path}"]
id = "gw.test"
[connections.rw.remote]
auth = "eap-ttls"
eap_inner = ["md5"]
[connections.rw.children.allow]
local_ts = {json.dumps(ALLOW_TS)}
verdict = ["allow"]
[connections.rw.children.isolate]
local_ts = {json.dumps(ISOLATE_TS)}
verdict = ["isolate"]
"""


CLIENT_CONF = f"""\
connections {{
  home {{
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {{
      auth = eap-ttls
      id = cl.test
      eap_id = bob
    }}
    remote {{
      auth = pubkey
      id = gw.test
    }}
    children {{
      home {{
        remote_ts = {{remote_ts}}
        esp_proposals = aes128gcm16
      }}
    }}
  }}
}}
secrets {{
  eap-bob {{
    id = bob
    secret = "{PASSWORD}"
  }}
}}
"""


class PtTlsClient:
    """``tests.interop.pt_tls_client_proc`` in a namespace; its JSON lines from a thread."""

    def __init__(self, ns: Any, args: list[str], log: Path) -> None:
        self._err = log.open("w")
        self.proc = ns.popen(
            sys.executable, "-m", "tests.interop.pt_tls_client_proc", *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = 20.0) -> dict[str, Any]:
        try:
            doc = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"PT-TLS client: nothing within {timeout} s") from None
        assert doc is not None, "PT-TLS client exited"
        return doc

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("close")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()


def _ping(ns: Any, dst: str) -> bool:
    r = subprocess.run(
        ns.cmd("ping", "-c", "2", "-i", "0.2", "-W", "2", dst), capture_output=True, text=True
    )
    return r.returncode == 0


def _spis(sa: IkeSa) -> tuple[str, str]:
    return str(sa.raw["initiator-spi"]), str(sa.raw["responder-spi"])


def _wait(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def _only_child(charon: Charon, remote_ts: list[str]) -> IkeSa | None:
    """charon's one IKE_SA once it has exactly one CHILD_SA, INSTALLED, with ``remote_ts``."""
    sas = charon.list_sas()
    if len(sas) != 1 or len(sas[0].children) != 1:
        return None
    (child,) = sas[0].children
    if child.state != "INSTALLED" or sorted(child.remote_ts) != sorted(remote_ts):
        return None
    if child.name != "home" or child.local_ts != (f"{sas[0].local_vips[0]}/32",):
        return None
    return sas[0]


def _check_gateway(
    daemon: GatewayDaemon,
    spis: tuple[str, str],
    vip: str,
    verdict: str | None,
    child_name: str,
    ts: list[str],
) -> dict[str, Any]:
    """The gateway's one IKE_SA: charon's SPIs, ``verdict``, one child with ``ts``."""
    (sa,) = daemon.list_sas()
    assert (sa["spi_i"], sa["spi_r"]) == spis, sa
    assert sa["state"] == "ESTABLISHED" and sa["remote_vips"] == [vip], sa
    assert sa["verdict"] == verdict, sa
    (child,) = sa["children"]
    assert child["name"] == child_name and child["local_ts"] == ts, sa
    assert child["remote_ts"] == [f"{vip}/32"], sa
    return sa


class Rig:
    """Gateway and charon up, charon's IKE_SA established with the allow child."""

    def __init__(self, netns: Any, charon_factory: Any, cert_factory: Any, tmp: Path) -> None:
        require("ping")
        if not os.path.exists("/dev/net/tun"):
            pytest.skip("needs /dev/net/tun for the userspace dataplanes")
        self.tmp = tmp
        self.gw_ns, self.cl_ns = netns.namespace("qmgw"), netns.namespace("qmcl")
        netns.veth(self.gw_ns, self.cl_ns, "192.0.2.1/24", "192.0.2.2/24")
        self.gw_ns.run("ip", "addr", "add", f"{ALLOW_HOST}/16", "dev", "lo")
        self.gw_ns.run("ip", "addr", "add", f"{LISTENER}/24", "dev", "lo")  # + ISOLATE_HOST
        self.ca = cert_factory.ca("ca")
        gw = cert_factory.issue(self.ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
        self.daemon = GatewayDaemon(self.gw_ns, tmp / "gw", _gateway_config(tmp, self.ca, gw))
        self.client: PtTlsClient | None = None
        self.charon: Charon = charon_factory(self.cl_ns, "cl")
        self.profile = tmp / "me.toml"

    def establish(self, remote_ts: str) -> tuple[tuple[str, str], str]:
        """charon's IKE_SA with the allow child; (its IKE SPIs, its virtual IP)."""
        self.charon.add_ca(self.ca)
        self.charon.write_swanctl_conf(CLIENT_CONF.replace("{remote_ts}", remote_ts))
        self.charon.load_all()
        self.charon.initiate("home")
        first = _wait("allow child at charon", lambda: _only_child(self.charon, ALLOW_TS))
        spis = _spis(first)
        (vip,) = first.local_vips
        # no posture in IKE_AUTH (charon has no PT-EAP): the allow child, no verdict yet
        sa = _check_gateway(self.daemon, spis, vip, None, "allow", ALLOW_TS)
        assert sa["remote_eap_id"] == "bob" and sa["pt_tls"] is None, sa
        _wait(
            "gateway route to the virtual IP",
            lambda: "nea-esp0" in self.gw_ns.run("ip", "route", "get", vip, check=False).stdout,
        )
        assert _ping(self.cl_ns, ALLOW_HOST) and not _ping(self.cl_ns, ISOLATE_HOST)
        return spis, vip

    def pt_tls(self, profile: str) -> PtTlsClient:
        """Our PT-TLS client in charon's namespace (routed through charon's tunnel)."""
        shutil.copy(PROFILES / f"{profile}.toml", self.profile)
        self.client = PtTlsClient(
            self.cl_ns,
            ["--host", LISTENER, "--ca", str(self.ca.cert_path), "--server-name", "gw.test",
             "--user", "bob", "--password", PASSWORD, "--profile", str(self.profile)],
            self.tmp / "pt_tls_client.log",
        )  # fmt: skip
        return self.client

    def dump(self) -> None:
        """The logs (pytest shows teardown output for failed tests only)."""
        print(self.charon.list_sas_text())
        print(self.daemon.log()[-8000:])
        log = self.tmp / "pt_tls_client.log"
        if log.exists():
            print(log.read_text()[-3000:])

    def close(self) -> None:
        if self.client is not None:
            self.client.stop()
        self.daemon.stop()


@pytest.fixture
def rig(netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(netns, charon_factory, cert_factory, tmp_path)
    try:
        yield r
    finally:
        r.close()
        r.dump()


def test_charon_accepts_gateway_initiated_quarantine_move(rig: Rig, tmp_path: Path) -> None:
    charon, cl_ns, daemon = rig.charon, rig.cl_ns, rig.daemon
    spis, vip = rig.establish(CHARON_REMOTE_TS)

    # PT-TLS from charon's virtual IP through its tunnel: IP forwarding on -> isolate
    client = rig.pt_tls("forwarding")
    assert client.next() == {"result": "QUARANTINED"}
    moved = _wait("isolate child at charon", lambda: _only_child(charon, ISOLATE_TS))
    assert _spis(moved) == spis and moved.local_vips == (vip,)
    sa = _check_gateway(daemon, spis, vip, "isolate", "isolate", ISOLATE_TS)
    assert sa["pt_tls"] is not None, sa
    assert _ping(cl_ns, ISOLATE_HOST) and not _ping(cl_ns, ALLOW_HOST)

    # remediated: CRETRY on the same PT-TLS session (the listener is in both verdicts)
    shutil.copy(PROFILES / "compliant.toml", rig.profile)
    client.send("retry")
    assert client.next() == {"result": "ALLOWED"}
    back = _wait("allow child at charon again", lambda: _only_child(charon, ALLOW_TS))
    assert _spis(back) == spis and back.local_vips == (vip,)
    _check_gateway(daemon, spis, vip, "allow", "allow", ALLOW_TS)
    assert _ping(cl_ns, ALLOW_HOST) and not _ping(cl_ns, ISOLATE_HOST)
    client.stop()

    # charon was the responder of both CREATE_CHILD_SAs and of both Deletes, and
    # initiated none itself
    log = charon.log()
    assert log.count("parsed CREATE_CHILD_SA request") == 2, charon.log_tail(100)
    assert "generating CREATE_CHILD_SA request" not in log, charon.log_tail(100)
    assert log.count("received DELETE for ESP CHILD_SA") == 2, charon.log_tail(100)
    gw_log = daemon.log()
    assert "IKE_SA rw[1] moved to isolate" in gw_log
    assert "IKE_SA rw[1] moved to allow" in gw_log

    # both PT-TLS assessments recorded for bob, from the virtual IP
    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    rows = sorted(nea_report(db, "sessions")["sections"]["sessions"], key=lambda s: s["session"])
    assert [(r["identity"], r["state"], r["retry"], r["address"]) for r in rows] == [
        ("bob", "isolate", False, vip),
        ("bob", "allow", True, vip),
    ], rows


def test_charon_narrows_the_move_to_its_remote_ts(rig: Rig) -> None:
    """charon's ``remote_ts`` names the allow networks only (10.1.0.0/16 and the listener):
    it still accepts the gateway's CREATE_CHILD_SA for the isolate child but narrows its
    selectors (RFC 7296 2.9) to what it allows, 10.99.255.1/32 - the gateway installs the
    narrowed child, and the rest of the remediation network stays out of reach."""
    charon, cl_ns, daemon = rig.charon, rig.cl_ns, rig.daemon
    spis, vip = rig.establish("10.1.0.0/16,10.99.255.1/32")
    client = rig.pt_tls("forwarding")
    assert client.next() == {"result": "QUARANTINED"}
    narrowed = [f"{LISTENER}/32"]
    moved = _wait("narrowed isolate child at charon", lambda: _only_child(charon, narrowed))
    assert _spis(moved) == spis
    _check_gateway(daemon, spis, vip, "isolate", "isolate", narrowed)
    assert not _ping(cl_ns, ISOLATE_HOST) and not _ping(cl_ns, ALLOW_HOST)
    assert _ping(cl_ns, LISTENER)
