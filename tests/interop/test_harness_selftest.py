"""The CI machine really has its peers: charon-to-charon IKEv2 with EAP-TLS, a virtual IP from
the responder's pool, and a ping through strongSwan's userspace ESP (kernel-libipsec), seen on
the wire by tshark as IKEv2 and UDP-encapsulated ESP only.

If this fails, every other interop test's result is suspect: fix the machine or the harness
first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.certs import CertFactory
from tests.harness.charon import DEFAULT_PLUGINS, Charon, render_conf
from tests.harness.freeradius import FreeRadius
from tests.harness.netns import NetnsFactory
from tests.harness.tools import require
from tests.harness.tshark import Capture, problems, read_fields

pytestmark = [pytest.mark.netns, pytest.mark.slow]

GW_CONF = """\
connections {
  rw {
    local_addrs = 192.0.2.1
    pools = vpool
    proposals = aes128-sha256-x25519
    local {
      auth = pubkey
      certs = gw.test.pem
      id = gw.test
    }
    remote {
      auth = eap-tls
      id = %any
      eap_id = %any
    }
    children {
      net {
        local_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16-x25519
      }
    }
  }
}
pools {
  vpool {
    addrs = 10.3.0.0/28
  }
}
"""

CL_CONF = """\
connections {
  home {
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
    local {
      auth = eap-tls
      certs = cl.test.pem
      id = cl.test
    }
    remote {
      auth = pubkey
      id = gw.test
    }
    children {
      home {
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16-x25519
      }
    }
  }
}
"""


def test_charon_eap_tls_vip_and_ping(
    netns: NetnsFactory,
    charon_factory: Callable[..., Charon],
    cert_factory: CertFactory,
    tmp_path: Path,
) -> None:
    require("ping")
    require("tshark")
    ns_gw, ns_cl = netns.namespace("gw"), netns.namespace("cl")
    if_gw, _ = netns.veth(ns_gw, ns_cl, "192.0.2.1/24", "192.0.2.2/24")
    ns_gw.run("ip", "addr", "add", "10.1.0.1/32", "dev", "lo")  # the protected network

    ca = cert_factory.ca("ca")
    gw_cert = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    cl_cert = cert_factory.issue(ca, "cl.test", san_dns=("cl.test",), eku=("clientAuth",))

    gw = charon_factory(ns_gw, "gw")
    cl = charon_factory(ns_cl, "cl")
    for charon, cert, conf in ((gw, gw_cert, GW_CONF), (cl, cl_cert, CL_CONF)):
        charon.add_ca(ca)
        charon.add_cert(cert)
        charon.write_swanctl_conf(conf)
        charon.load_all()

    # Before: no route to the protected network, so the ping must not work without the tunnel.
    assert ns_cl.run("ping", "-c1", "-W1", "10.1.0.1", check=False).returncode != 0

    capture = Capture(ns_gw, if_gw, tmp_path / "wire.pcapng")
    with capture:
        cl.initiate("home")
        _check_sas(cl, gw)
        ping = ns_cl.run("ping", "-c2", "-i0.2", "-W2", "10.1.0.1", check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr + cl.log_tail()
        assert " 0% packet loss" in ping.stdout, ping.stdout

    # The packets went through the CHILD_SA, not around it.
    (after,) = cl.list_sas()
    counters = after.child("home").raw
    assert int(counters.get("packets-out", "0")) >= 1, counters
    assert int(counters.get("packets-in", "0")) >= 1, counters

    # On the wire: IKEv2 (IKE_SA_INIT, IKE_AUTH), then only UDP-encapsulated ESP; no ICMP in
    # the clear, and nothing tshark calls malformed.
    exchanges = {
        row[0]
        for row in read_fields(capture.path, ["isakmp.exchangetype"], display_filter="isakmp")
    }
    assert {"34", "35"} <= exchanges, exchanges  # RFC 7296 3.1: IKE_SA_INIT, IKE_AUTH
    esp = read_fields(capture.path, ["esp.spi"], display_filter="esp && udp.port == 4500")
    assert len(esp) >= 4, esp  # two echo requests out, two replies back
    assert read_fields(capture.path, ["frame.number"], display_filter="icmp") == []
    assert problems(capture.path) == []

    cl.terminate(ike="home")
    gw.wait_for(lambda sas: not sas, timeout=5)
    assert cl.list_sas() == []


def _check_sas(cl: Charon, gw: Charon) -> None:
    (cl_sa,) = cl.list_sas()
    assert cl_sa.state == "ESTABLISHED", cl.list_sas_text()
    assert cl_sa.version == "2"
    assert cl_sa.initiator
    assert cl_sa.remote_id == "gw.test"
    assert len(cl_sa.local_vips) == 1
    vip = cl_sa.local_vips[0]
    assert vip.startswith("10.3.0."), vip
    child = cl_sa.child("home")
    assert child.state == "INSTALLED"
    assert child.remote_ts == ("10.1.0.0/16",)
    assert child.local_ts == (f"{vip}/32",)

    (gw_sa,) = gw.list_sas()
    assert gw_sa.state == "ESTABLISHED", gw.list_sas_text()
    assert not gw_sa.initiator
    assert gw_sa.remote_vips == (vip,)
    assert gw_sa.remote_id == "cl.test"
    # charon reports remote-eap-id only when it differs from the IKE identity.
    assert gw_sa.remote_eap_id in (None, "cl.test")
    assert gw_sa.child("net").state == "INSTALLED"


def test_charon_as_radius_nas_with_freeradius(
    netns: NetnsFactory,
    charon_factory: Callable[..., Charon],
    freeradius_factory: Callable[..., FreeRadius],
    cert_factory: CertFactory,
) -> None:
    """charon's eap-radius plugin passes EAP-MSCHAPv2 through to FreeRADIUS (both real)."""
    ns_gw, ns_cl = netns.namespace("gw"), netns.namespace("cl")
    netns.veth(ns_gw, ns_cl, "192.0.2.1/24", "192.0.2.2/24")
    ns_gw.run("ip", "addr", "add", "10.1.0.1/32", "dev", "lo")
    radius = freeradius_factory(netns=ns_gw, users={"carol": "s3cret-Pw"})

    ca = cert_factory.ca("ca")
    gw_cert = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    radius_conf = render_conf(
        {
            "plugins": {
                "eap-radius": {
                    "servers": {
                        "fr": {
                            "address": "127.0.0.1",
                            "auth_port": radius.port,
                            "secret": radius.secret,
                        }
                    }
                }
            }
        }
    )
    gw = charon_factory(
        ns_gw, "gw", plugins=(*DEFAULT_PLUGINS, "eap-radius"), charon_options=radius_conf
    )
    cl = charon_factory(ns_cl, "cl")
    gw.add_ca(ca)
    gw.add_cert(gw_cert)
    gw.write_swanctl_conf(
        {
            "connections": {
                "rw": {
                    "local_addrs": "192.0.2.1",
                    "pools": "vpool",
                    "local": {"auth": "pubkey", "certs": "gw.test.pem", "id": "gw.test"},
                    "remote": {"auth": "eap-radius", "id": "%any", "eap_id": "%any"},
                    "children": {"net": {"local_ts": "10.1.0.0/16"}},
                }
            },
            "pools": {"vpool": {"addrs": "10.3.0.0/28"}},
        }
    )
    cl.add_ca(ca)
    cl.write_swanctl_conf(
        {
            "connections": {
                "home": {
                    "remote_addrs": "192.0.2.1",
                    "vips": "0.0.0.0",
                    "local": {"auth": "eap-mschapv2", "id": "carol", "eap_id": "carol"},
                    "remote": {"auth": "pubkey", "id": "gw.test"},
                    "children": {"home": {"remote_ts": "10.1.0.0/16"}},
                }
            },
            "secrets": {"eap-carol": {"id": "carol", "secret": "s3cret-Pw"}},
        }
    )
    gw.load_all()
    cl.load_all()

    cl.initiate("home")
    (gw_sa,) = gw.list_sas()
    assert gw_sa.state == "ESTABLISHED"
    assert "carol" in (gw_sa.remote_eap_id, gw_sa.remote_id)
    assert "Sent Access-Accept" in radius.log()
    ping = ns_cl.run("ping", "-c1", "-W2", "10.1.0.1", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    # A wrong password is refused by FreeRADIUS, and charon says so.
    cl.terminate(ike="home")
    cl.write_swanctl_conf(cl.swanctl_conf.read_text().replace("s3cret-Pw", "wrong"))
    cl.load_all()
    assert cl.initiate("home", check=False, timeout=10).returncode != 0
    assert "Sent Access-Reject" in radius.log()
