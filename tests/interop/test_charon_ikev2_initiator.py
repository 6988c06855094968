"""Our engine as the initiator: Debian's charon is the responder (PSK and certificates, a
virtual IP from charon's pool, traffic selectors narrowed by charon)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_charon_ikev2_psk import PSK, Responder, _setup

pytestmark = [pytest.mark.netns, pytest.mark.slow]

GW_CONF = """\
connections {
  rw {
    pools = rw_pool
    proposals = %(proposals)s
    local {
      auth = %(auth)s
      id = gw.test
%(local_extra)s
    }
    remote {
      auth = %(auth)s
      id = cl.test
    }
    children {
      net {
        local_ts = 10.1.0.0/16
        esp_proposals = %(esp)s
      }
    }
  }
}
pools {
  rw_pool {
    addrs = 10.3.7.0/28
  }
}
secrets {
  ike-rw {
    id-1 = cl.test
    id-2 = gw.test
    secret = "%(psk)s"
  }
}
"""


def _wait_established(ours: Responder, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evs = ours.events()
        if any(e["event"] in ("ChildSaInstalled", "ChildSaFailed", "IkeSaClosed") for e in evs):
            return evs
        time.sleep(0.05)
    raise AssertionError(f"no result in {timeout}s:\n{ours.log()[-4000:]}")


@pytest.mark.parametrize("auth", ["psk", "pubkey"])
def test_we_initiate_to_charon(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path, auth: str
) -> None:
    gw, cl = _setup(netns)
    # the protected network exists behind charon (its libipsec route needs a source in it)
    subprocess.run(["ip", "-n", gw.name, "addr", "add", "10.1.0.1/16", "dev", "lo"], check=True)
    charon = charon_factory(gw, "gw")
    conn: dict[str, Any] = {
        "name": "home",
        "local_id": "cl.test",
        "remote_id": "gw.test",
        "psk": PSK,
        "vips": ["0.0.0.0"],
        "proposals": ["aes256gcm16-prfsha384-ecp384"],
        "children": [
            {"name": "home", "remote_ts": ["10.1.0.0/16"], "esp_proposals": ["aes256gcm16"]}
        ],
    }
    local_extra = ""
    if auth == "pubkey":
        root = cert_factory.ca("root")
        gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
        cl_cert = cert_factory.issue(root, "cl.test", san_dns=("cl.test",))
        charon.add_ca(root)
        charon.add_cert(gw_cert)
        local_extra = f"      certs = {gw_cert.name}.pem"
        root_path = tmp_path / "root.pem"
        root_path.write_bytes(root.cert_pem)
        conn.update(
            local_auth="pubkey",
            remote_auth="pubkey",
            psk=None,
            cert=str(cl_cert.cert_path),
            key=str(cl_cert.key_path),
            cacerts=[str(root_path)],
        )
    charon.write_swanctl_conf(
        GW_CONF
        % {
            "proposals": "aes256gcm16-prfsha384-ecp384",
            "esp": "aes256gcm16",
            "auth": auth,
            "local_extra": local_extra,
            "psk": PSK,
        }
    )
    charon.load_all()
    ours = Responder(
        cl,
        tmp_path / "ours",
        [conn],
        listen="192.0.2.2",
        initiate=[{"connection": "home", "remote": "192.0.2.1"}],
    )
    try:
        evs = _wait_established(ours)
        inst = [e for e in evs if e["event"] == "ChildSaInstalled"]
        assert inst, evs
        (sa,) = charon.wait_for(lambda sas: sas and sas[0].children)
        assert sa.state == "ESTABLISHED" and sa.remote_id == "cl.test"
        assert sa.remote_vips and sa.remote_vips[0].startswith("10.3.7.")
        child = sa.child("net")
        assert child.state == "INSTALLED"
        assert child.local_ts == ("10.1.0.0/16",)
        assert child.remote_ts == (f"{sa.remote_vips[0]}/32",)
        assert child.raw["spi-in"] == inst[0]["spi_out"]
        est = next(e for e in evs if e["event"] == "IkeSaEstablished")
        assert est["vips"] == list(sa.remote_vips)
        assert est["encr"] == "ENCR_AES_GCM_16_256" and est["dh"] == "ECP_384"
    except BaseException:
        print(ours.log()[-6000:])
        raise
    finally:
        ours.stop()


GW_EAP_CONF = """\
connections {
  rw {
    pools = rw_pool
    local {
      auth = pubkey
      id = gw.test
      certs = %(cert)s
    }
    remote {
      auth = eap-%(method)s
      eap_id = %%any
    }
    children {
      net {
        local_ts = 10.1.0.0/16
      }
    }
  }
}
pools {
  rw_pool {
    addrs = 10.3.7.0/28
  }
}
secrets {
  eap-bob {
    id = bob
    secret = "hello"
  }
}
"""


@pytest.mark.parametrize("method", ["md5", "mschapv2"])
def test_we_initiate_with_eap_to_charon(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path, method: str
) -> None:
    gw, cl = _setup(netns)
    subprocess.run(["ip", "-n", gw.name, "addr", "add", "10.1.0.1/16", "dev", "lo"], check=True)
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
    charon = charon_factory(gw, "gw")
    charon.add_ca(root)
    charon.add_cert(gw_cert)
    charon.write_swanctl_conf(GW_EAP_CONF % {"cert": f"{gw_cert.name}.pem", "method": method})
    charon.load_all()
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.cert_pem)
    conn = {
        "name": "home",
        "local_id": "cl.test",
        "remote_id": "gw.test",
        "local_auth": "eap",
        "remote_auth": "pubkey",
        "cacerts": [str(root_path)],
        "eap_peer": {"method": method, "identity": "bob", "password": "hello"},
        "vips": ["0.0.0.0"],
        "children": [{"name": "home", "remote_ts": ["10.1.0.0/16"]}],
    }
    ours = Responder(
        cl,
        tmp_path / "ours",
        [conn],
        listen="192.0.2.2",
        initiate=[{"connection": "home", "remote": "192.0.2.1"}],
    )
    try:
        evs = _wait_established(ours)
        assert [e for e in evs if e["event"] == "ChildSaInstalled"], evs
        (sa,) = charon.wait_for(lambda sas: sas and sas[0].children)
        assert sa.state == "ESTABLISHED" and sa.remote_eap_id == "bob"
        assert sa.child("net").state == "INSTALLED"
        assert f"EAP method EAP_{method.upper()} succeeded" in charon.log()
    except BaseException:
        print(ours.log()[-6000:])
        raise
    finally:
        ours.stop()
