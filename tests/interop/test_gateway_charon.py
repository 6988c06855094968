"""Debian's charon (client, own namespace) against ``nea-gateway run`` (our daemon, in the
gateway namespace, configured by TOML): PSK, EAP-TLS with ECDSA and RSA client certificates,
and EAP-TTLS with inner EAP-MD5.  The IKE_SA must be ESTABLISHED with a virtual IP from our
pool, ``nea-gateway list-sas --json`` must show it with charon's SPIs, ``nea-gateway
terminate`` must delete it (charon sees the Delete), and SIGTERM must send Deletes before the
daemon exits.

Debian's charon has no tnccs-20, so the posture part (PT-EAP inside TTLS) is tested with the
project's own EAP peer and TNCC in tests/gateway/daemon/test_daemon_composition.py.
"""

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

from tests.harness.charon import Charon
from tests.harness.netns import Netns

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PSK = "gateway-interop-secret-0123456789"

CLIENT_CONF = """\
connections {
  home {
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {
      auth = %(auth)s
      id = cl.test
%(local_extra)s
    }
    remote {
      auth = %(rauth)s
      id = gw.test
    }
    children {
      home {
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
%(secrets)s
}
"""

GW_BASE = """
dataplane = "none"
[ike]
listen = "192.0.2.1"
[control]
socket = "{sock}"
[log]
default = 1
ike = 2
[pools.rw]
addrs = "10.3.0.0/28"
dns = "10.1.0.53"
[connections.rw]
pools = ["rw"]
[connections.rw.children.net]
local_ts = ["10.1.0.0/16"]
[nea]
database = false
"""


class GatewayDaemon:
    """``python -m gateway.daemon run -c FILE`` in ``ns``; CLI calls through its socket."""

    def __init__(self, ns: Netns, workdir: Path, config: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sock = workdir / "ctl.sock"
        self.config = workdir / "gateway.toml"
        self.config.write_text(config.replace("{sock}", str(self.sock)))
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

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.daemon", *args, "-s", str(self.sock)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args}: {proc.stdout}{proc.stderr}")
        return proc

    def list_sas(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.cli("list-sas", "--json").stdout)
        return result

    def sigterm(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def _setup(netns: Any) -> tuple[Netns, Netns]:
    gw, cl = netns.namespace("gw"), netns.namespace("cl")
    netns.veth(gw, cl, "192.0.2.1/24", "192.0.2.2/24")
    return gw, cl


def _check_established(charon: Charon, daemon: GatewayDaemon, eap_id: str | None) -> dict[str, Any]:
    (csa,) = charon.list_sas()
    assert csa.state == "ESTABLISHED", charon.list_sas_text()
    child = csa.child("home")
    assert child.state == "INSTALLED", charon.list_sas_text()
    assert csa.local_vips and csa.local_vips[0].startswith("10.3.0.")
    (sa,) = daemon.list_sas()
    assert sa["state"] == "ESTABLISHED" and sa["name"] == "rw"
    assert sa["remote_vips"] == list(csa.local_vips)
    assert sa["remote_id"] == "cl.test" and sa["remote_host"] == "192.0.2.2"
    assert sa["remote_eap_id"] == eap_id
    (ours,) = sa["children"]
    assert ours["local_ts"] == ["10.1.0.0/16"]
    assert ours["spi_in"] == child.raw["spi-out"] and ours["spi_out"] == child.raw["spi-in"]
    table = daemon.cli("list-sas").stdout
    assert "rw: #1" in table and "ESTABLISHED" in table and csa.local_vips[0] in table
    return sa


def _charon(
    charon_factory: Any,
    cl: Netns,
    auth: str,
    rauth: str,
    local_extra: str = "",
    secrets: str = "",
) -> Charon:
    charon: Charon = charon_factory(cl, "cl")
    charon.write_swanctl_conf(
        CLIENT_CONF % {"auth": auth, "rauth": rauth, "local_extra": local_extra, "secrets": secrets}
    )
    return charon


def test_psk_and_terminate(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    gw, cl = _setup(netns)
    config = GW_BASE + (
        '[connections.rw.local]\nauth = "psk"\nid = "gw.test"\n'
        '[connections.rw.remote]\nauth = "psk"\nid = "cl.test"\n'
        f'[secrets.ike-rw]\nid = "cl.test"\nsecret = "{PSK}"\n'
    )
    daemon = GatewayDaemon(gw, tmp_path / "gw", config)
    try:
        charon = _charon(
            charon_factory,
            cl,
            "psk",
            "psk",
            secrets=f'  ike-home {{\n    id = gw.test\n    secret = "{PSK}"\n  }}',
        )
        charon.load_all()
        charon.initiate("home")
        _check_established(charon, daemon, None)
        stats = json.loads(daemon.cli("stats", "--json").stdout)
        assert stats["ike_sas"] == 1 and stats["child_sas"] == 1
        out = daemon.cli("terminate", "--ike", "rw").stdout
        assert "terminate completed successfully: rw #1" in out
        charon.wait_for(lambda sas: not sas)
        charon.wait_for_log("received DELETE for IKE_SA home")
        assert daemon.list_sas() == []
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_eap_tls_and_sigterm(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path, key_type: str
) -> None:
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    cl_cert = cert_factory.issue(
        root, "cl.test", san_dns=("cl.test",), eku=("clientAuth",), key_type=key_type
    )
    gw, cl = _setup(netns)
    config = GW_BASE + (
        f'[connections.rw.local]\nauth = "pubkey"\ncerts = ["{gw_cert.chain_path}"]\n'
        'id = "gw.test"\n'
        '[connections.rw.remote]\nauth = "eap-tls"\n'
        f'[secrets.private-gw]\nfile = "{gw_cert.key_path}"\n'
        f'[authorities.root]\ncacert = "{root.cert_path}"\n'
    )
    daemon = GatewayDaemon(gw, tmp_path / "gw", config)
    try:
        charon = _charon(
            charon_factory, cl, "eap-tls", "pubkey", f"      certs = {cl_cert.name}.pem"
        )
        charon.add_ca(root)
        charon.add_cert(cl_cert)
        charon.load_all()
        charon.initiate("home")
        _check_established(charon, daemon, "cl.test")  # charon's EAP identity = its IKE id
        assert "EAP method EAP_TLS succeeded, MSK established" in charon.log()
        assert daemon.sigterm() == 0
        charon.wait_for(lambda sas: not sas)
        charon.wait_for_log("received DELETE for IKE_SA home")
        assert "shutting down: deleting 1 IKE_SA(s)" in daemon.log()
        assert not daemon.sock.exists()
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_eap_ttls_md5(netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path) -> None:
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    gw, cl = _setup(netns)
    config = GW_BASE + (
        f'[connections.rw.local]\nauth = "pubkey"\ncerts = ["{gw_cert.chain_path}"]\n'
        'id = "gw.test"\n'
        '[connections.rw.remote]\nauth = "eap-ttls"\neap_inner = ["md5"]\n'
        f'[secrets.private-gw]\nfile = "{gw_cert.key_path}"\n'
        '[secrets.eap-bob]\nid = "bob"\nsecret = "hello"\n'
        f'[authorities.root]\ncacert = "{root.cert_path}"\n'
    )
    daemon = GatewayDaemon(gw, tmp_path / "gw", config)
    try:
        charon = _charon(
            charon_factory,
            cl,
            "eap-ttls",
            "pubkey",
            "      eap_id = bob",
            '  eap-bob {\n    id = bob\n    secret = "hello"\n  }',
        )
        charon.add_ca(root)
        charon.load_all()
        charon.initiate("home")
        _check_established(charon, daemon, "bob")
        assert "EAP method EAP_TTLS succeeded, MSK established" in charon.log()
        out = daemon.cli("terminate", "--ike", "1").stdout
        assert "completed successfully" in out
        charon.wait_for(lambda sas: not sas)
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_eap_ttls_wrong_password_refused(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    gw, cl = _setup(netns)
    config = GW_BASE + (
        f'[connections.rw.local]\nauth = "pubkey"\ncerts = ["{gw_cert.chain_path}"]\n'
        'id = "gw.test"\n'
        '[connections.rw.remote]\nauth = "eap-ttls"\neap_inner = ["md5"]\n'
        f'[secrets.private-gw]\nfile = "{gw_cert.key_path}"\n'
        '[secrets.eap-bob]\nid = "bob"\nsecret = "hello"\n'
        f'[authorities.root]\ncacert = "{root.cert_path}"\n'
    )
    daemon = GatewayDaemon(gw, tmp_path / "gw", config)
    try:
        charon = _charon(
            charon_factory,
            cl,
            "eap-ttls",
            "pubkey",
            "      eap_id = bob",
            '  eap-bob {\n    id = bob\n    secret = "wrong"\n  }',
        )
        charon.add_ca(root)
        charon.load_all()
        proc = charon.initiate("home", check=False)
        assert proc.returncode != 0
        assert daemon.list_sas() == []
        stats = json.loads(daemon.cli("stats", "--json").stdout)
        assert stats["totals"]["established"] == 0
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_userspace_dataplane_ping(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    """``dataplane = "userspace"``: charon's ping to a host behind the gateway goes through our
    ESP (kernel-libipsec on charon's side, our TUN device on the gateway's)."""
    gw, cl = _setup(netns)
    gw.run("ip", "addr", "add", "10.1.0.1/32", "dev", "lo")
    config = (
        GW_BASE
        + (
            '[connections.rw.local]\nauth = "psk"\nid = "gw.test"\n'
            '[connections.rw.remote]\nauth = "psk"\nid = "cl.test"\n'
            f'[secrets.ike-rw]\nid = "cl.test"\nsecret = "{PSK}"\n'
        )
    ).replace('dataplane = "none"', 'dataplane = "userspace"')
    daemon = GatewayDaemon(gw, tmp_path / "gw", config)
    try:
        charon = _charon(
            charon_factory,
            cl,
            "psk",
            "psk",
            secrets=f'  ike-home {{\n    id = gw.test\n    secret = "{PSK}"\n  }}',
        )
        charon.load_all()
        charon.initiate("home")
        _check_established(charon, daemon, None)
        ping = cl.run("ping", "-c", "2", "-W", "3", "10.1.0.1", check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        stats = json.loads(daemon.cli("stats", "--json").stdout)
        assert stats["dataplane"] == "userspace"
        assert stats["packets"]["esp_received"] >= 2 and stats["packets"]["esp_dropped"] == 0
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()


def test_gateway_rekeys_child_sa(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    """``rekey_time`` on our child: the gateway rekeys the CHILD_SA and charon follows."""
    gw, cl = _setup(netns)
    config = GW_BASE.replace(
        'local_ts = ["10.1.0.0/16"]', 'local_ts = ["10.1.0.0/16"]\nrekey_time = "3s"'
    ) + (
        '[connections.rw.local]\nauth = "psk"\nid = "gw.test"\n'
        '[connections.rw.remote]\nauth = "psk"\nid = "cl.test"\n'
        f'[secrets.ike-rw]\nid = "cl.test"\nsecret = "{PSK}"\n'
    )
    daemon = GatewayDaemon(gw, tmp_path / "gw", config)
    try:
        charon = _charon(
            charon_factory,
            cl,
            "psk",
            "psk",
            secrets=f'  ike-home {{\n    id = gw.test\n    secret = "{PSK}"\n  }}',
        )
        charon.load_all()
        charon.initiate("home")
        (sa,) = daemon.list_sas()
        first = sa["children"][0]["spi_in"]
        charon.wait_for_log("parsed CREATE_CHILD_SA request", timeout=15)
        deadline = time.monotonic() + 10
        while True:
            (sa,) = daemon.list_sas()
            spis = [c["spi_in"] for c in sa["children"]]
            if spis and first not in spis:
                break
            assert time.monotonic() < deadline, sa
            time.sleep(0.2)

        def agreed(sas: Any) -> bool:
            ours = {c["spi_in"] for s in daemon.list_sas() for c in s["children"]}
            theirs = {c.raw["spi-out"] for c in sas[0].children if c.state == "INSTALLED"}
            return bool(ours & theirs)

        charon.wait_for(agreed)  # a rekeyed CHILD_SA in use on both sides
        assert "CHILD_SA" in charon.wait_for_log("closing CHILD_SA home{1}")
    except BaseException:
        print(daemon.log()[-8000:])
        raise
    finally:
        daemon.stop()
