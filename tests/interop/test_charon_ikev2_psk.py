"""Debian's charon (client, own namespace, kernel-libipsec) against our IKEv2 responder.

Our responder runs as ``python -m gateway.ike_udp`` (Twisted reactor in a subprocess) in a
second namespace; the fixtures come from ``tests/harness`` (netns, charon_factory,
cert_factory).  ``swanctl --list-sas`` (read through VICI) must show the IKE_SA ESTABLISHED
and the CHILD_SA INSTALLED, and our engine must have reported the same SPIs.
"""

from __future__ import annotations

import json
import os
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
PSK = "our-shared-secret-0123456789"

CLIENT_CONF = """\
connections {
  home {
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = %(proposals)s
    local {
      auth = %(auth)s
      id = %(cl_id)s
%(local_extra)s
    }
    remote {
      auth = %(rauth)s
      id = gw.test
    }
    children {
      home {
        remote_ts = 10.1.0.0/16
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


class Responder:
    """Our IKE adapter (``python -m gateway.ike_udp``) as a subprocess in ``ns``."""

    def __init__(
        self,
        ns: Netns,
        workdir: Path,
        connections: list[dict[str, Any]],
        listen: str = "192.0.2.1",
        initiate: list[dict[str, str]] | None = None,
        fragment_size: int | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.events_path = workdir / "events.jsonl"
        self.log_path = workdir / "responder.log"
        self.config = workdir / "ike.json"
        self.config.write_text(
            json.dumps(
                {
                    "listen": listen,
                    "events": str(self.events_path),
                    "connections": connections,
                    "initiate": initiate or [],
                    "fragment_size": fragment_size,
                }
            )
        )
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self._log = self.log_path.open("ab")
        self.proc = ns.popen(
            sys.executable,
            "-m",
            "gateway.ike_udp",
            "--debug",
            "--config",
            str(self.config),
            cwd=str(REPO),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while "IKE listening" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"responder did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def _setup(netns: Any) -> tuple[Netns, Netns]:
    gw, cl = netns.namespace("gw"), netns.namespace("cl")
    netns.veth(gw, cl, "192.0.2.1/24", "192.0.2.2/24")
    return gw, cl


def _check(charon: Charon, responder: Responder, vip_net: str) -> None:
    sas = charon.list_sas()
    assert len(sas) == 1, charon.list_sas_text()
    sa = sas[0]
    assert sa.state == "ESTABLISHED", charon.list_sas_text()
    assert sa.remote_id == "gw.test"
    child = sa.child("home")
    assert child.state == "INSTALLED", charon.list_sas_text()
    assert child.remote_ts == ("10.1.0.0/16",)
    assert sa.local_vips and sa.local_vips[0].startswith(vip_net)
    assert child.local_ts == (f"{sa.local_vips[0]}/32",)
    text = charon.list_sas_text()
    print(text)
    assert "ESTABLISHED" in text and "INSTALLED" in text
    evs = responder.events()
    est = [e for e in evs if e["event"] == "IkeSaEstablished"]
    inst = [e for e in evs if e["event"] == "ChildSaInstalled"]
    assert len(est) == 1 and len(inst) == 1, evs
    assert est[0]["vips"] == list(sa.local_vips)
    # our inbound SPI is charon's outbound one and vice versa
    assert child.raw["spi-out"] == inst[0]["spi_in"] and child.raw["spi-in"] == inst[0]["spi_out"]


def _gw_connection(**kw: Any) -> dict[str, Any]:
    conn: dict[str, Any] = {
        "name": "gw",
        "local_id": "gw.test",
        "remote_id": "cl.test",
        "psk": PSK,
        "pool": "10.3.0.0/28",
        "dns": ["10.1.0.53"],
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    conn.update(kw)
    return conn


@pytest.mark.parametrize(
    ("proposals", "esp"),
    [
        ("aes128-sha256-x25519", "aes128gcm16"),
        ("aes256gcm16-prfsha384-ecp384", "aes256-sha512"),
        ("chacha20poly1305-prfsha256-modp2048", "aes128-sha256"),
    ],
)
def test_charon_connects_with_psk(
    netns: Any, charon_factory: Any, tmp_path: Path, proposals: str, esp: str
) -> None:
    gw, cl = _setup(netns)
    responder = Responder(gw, tmp_path / "ours", [_gw_connection()])
    try:
        charon = charon_factory(cl, "cl")
        charon.write_swanctl_conf(
            CLIENT_CONF
            % {
                "proposals": proposals,
                "esp": esp,
                "auth": "psk",
                "rauth": "psk",
                "cl_id": "cl.test",
                "local_extra": "",
                "psk": PSK,
            }
        )
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        # INFORMATIONAL delete from charon: our side reports the SA closed
        charon.terminate(ike="home")
        deadline = time.monotonic() + 5
        while not any(e["event"] == "IkeSaClosed" for e in responder.events()):
            assert time.monotonic() < deadline, responder.log()[-3000:]
            time.sleep(0.05)
    except BaseException:
        print(responder.log()[-6000:])
        raise
    finally:
        responder.stop()


def test_charon_wrong_psk_is_refused(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    gw, cl = _setup(netns)
    responder = Responder(gw, tmp_path / "ours", [_gw_connection()])
    try:
        charon = charon_factory(cl, "cl")
        charon.write_swanctl_conf(
            CLIENT_CONF
            % {
                "proposals": "aes128-sha256-x25519",
                "esp": "aes128gcm16",
                "auth": "psk",
                "rauth": "psk",
                "cl_id": "cl.test",
                "local_extra": "",
                "psk": "wrong-secret-x",
            }
        )
        charon.load_all()
        proc = charon.initiate("home", check=False, timeout=10)
        assert proc.returncode != 0
        assert "AUTHENTICATION_FAILED" in charon.log()
        assert not [s for s in charon.list_sas() if s.state == "ESTABLISHED"]
    finally:
        responder.stop()
