"""NAT traversal (RFC 7296, 2.23; RFC 3948) through a real masquerading router.

charon (client, kernel-libipsec) sits in namespace ``cl`` on 198.51.100.0/24 behind a router
namespace ``nat`` that masquerades (nftables, source ports remapped to 30000-30999) onto
203.0.113.0/24 where our responder listens.  Checked: the IKE_SA is ESTABLISHED with charon
reporting ``nat-local`` (a real NAT, not kernel-libipsec's faked one), both sides float to 4500,
our side sees the router's address and mapped port and follows it, charon's NAT keepalives
cross the router (tshark there) and reach our adapter, and UDP-encapsulated ESP on 4500 is
demultiplexed from IKE (counted as ESP, none of it reaches the engine; the standalone runner
has no dataplane, so no traffic comes back).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.tools import require
from tests.harness.tshark import Capture, problems, read_fields
from tests.interop.test_charon_ikev2_psk import PSK, _gw_connection
from tests.interop.test_ikev2_tshark_fragments import ResponderWith, decryption_prefs

pytestmark = [pytest.mark.netns, pytest.mark.slow]

GW = "203.0.113.2"
ROUTER_OUT = "203.0.113.1"
CLIENT = "198.51.100.2"

CLIENT_CONF = f"""\
connections {{
  home {{
    remote_addrs = {GW}
    vips = 0.0.0.0
    proposals = aes128-sha256-x25519
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
        esp_proposals = aes128-sha256
      }}
      two {{
        remote_ts = 10.1.5.0/24
        esp_proposals = aes128-sha256
      }}
    }}
  }}
}}
secrets {{
  ike-home {{
    id-1 = cl.test
    id-2 = gw.test
    secret = "{PSK}"
  }}
}}
"""


def _topology(netns: Any) -> tuple[Any, Any, Any, str]:
    require("nft")
    cl, nat, gw = netns.namespace("cl"), netns.namespace("nat"), netns.namespace("gw")
    netns.veth(cl, nat, f"{CLIENT}/24", "198.51.100.1/24")
    nat_out, _ = netns.veth(nat, gw, f"{ROUTER_OUT}/24", f"{GW}/24")
    cl.run("ip", "route", "add", "default", "via", "198.51.100.1")
    nat.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    ruleset = (
        "table ip nat {\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{nat_out}" meta l4proto udp masquerade to :30000-30999\n'
        f'    oifname "{nat_out}" masquerade\n'
        "  }\n"
        "}\n"
    )
    nat.run("nft", "-f", "-", input=ruleset)
    return cl, nat, gw, nat_out


def test_charon_behind_masquerade(netns: Any, charon_factory: Any, tmp_path: Path) -> None:
    require("tshark")
    cl, nat, gw, nat_out = _topology(netns)
    our_spi = -1
    pcap = tmp_path / "nat.pcapng"
    key_log = tmp_path / "ours" / "keys.jsonl"
    with Capture(nat, nat_out, pcap, capture_filter="udp", settle=2):
        responder = ResponderWith(
            gw, tmp_path / "ours", [_gw_connection()], listen=GW, debug_key_log=str(key_log)
        )
        try:
            charon = charon_factory(cl, "cl", charon_options="  keep_alive = 1s")
            charon.write_swanctl_conf(CLIENT_CONF)
            charon.load_all()
            charon.initiate("home")
            (sa,) = charon.list_sas()
            assert sa.state == "ESTABLISHED", charon.list_sas_text()
            assert sa.raw.get("nat-local") == "yes", sa.raw  # charon found itself NATed
            assert sa.raw.get("nat-remote") != "yes", sa.raw  # and us not
            assert sa.raw.get("local-port") == "4500" and sa.raw.get("remote-port") == "4500"
            assert sa.local_host == CLIENT and sa.remote_host == GW
            child = sa.child("home")
            assert child.state == "INSTALLED" and child.encap, child.raw
            est = responder.wait_event("IkeSaEstablished")
            assert est["nat"] is True
            host, port = est["remote"]
            assert host == ROUTER_OUT and 30000 <= port <= 30999, est  # the mapping, not 500
            inst = responder.wait_event("ChildSaInstalled")
            our_spi = int(inst["spi_in"], 16)
            assert inst["udp_encap"] is True
            assert child.raw["spi-out"] == inst["spi_in"]
            # keepalives (charon sends them when idle for keep_alive)
            time.sleep(3.5)
            stats = responder.stats()
            assert stats["keepalives_received"] >= 2, stats
            # UDP-encapsulated ESP through the tunnel route kernel-libipsec installed
            vip = sa.local_vips[0]
            cl.run("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", vip, "10.1.0.1", check=False)
            stats = responder.stats()
            assert stats["esp_received"] >= 3 and stats["esp_without_dataplane"] >= 3, stats
            # none of it went to the IKE engine as a (broken) IKE message
            assert stats["undecodable"] == 0 and stats["unknown_spi"] == 0, stats
            # a second CHILD_SA (CREATE_CHILD_SA) still goes through the NAT mapping
            charon.initiate("two")
            (sa,) = charon.list_sas()
            assert sa.child("two").remote_ts == ("10.1.5.0/24",)
            assert [c.state for c in sa.children] == ["INSTALLED", "INSTALLED"], sa.children
            charon.terminate(ike="home")
            charon.wait_for(lambda sas: not sas)
            responder.wait_event("IkeSaClosed")
        except BaseException:
            print(responder.log()[-6000:])
            raise
        finally:
            responder.stop()
    # seen on the router's outside: IKE moved from 500 to 4500, keepalives, ESP-in-UDP
    rows = read_fields(
        pcap, ["ip.src", "udp.srcport", "udp.dstport", "udp.length", "_ws.col.Protocol"]
    )
    from_client = [r for r in rows if r[0] == ROUTER_OUT]
    assert any(r[2] == "500" for r in from_client) and any(r[2] == "4500" for r in from_client)
    assert all(30000 <= int(r[1]) <= 30999 for r in from_client), from_client
    keepalives = [r for r in from_client if r[2] == "4500" and r[3] == "9"]
    assert len(keepalives) >= 2, rows
    assert any(r[4] == "ESP" for r in from_client), rows
    # the ESP went to our inbound SPI of the CHILD_SA on 4500
    esp = read_fields(pcap, ["udp.dstport", "esp.spi"], display_filter="esp")
    assert esp and all(r[0] == "4500" and int(r[1], 16) == our_spi for r in esp), esp
    assert problems(pcap) == []
    # decrypted with our keys: IKE_AUTH (over 4500, from the mapped port) and CREATE_CHILD_SA
    prefs = decryption_prefs(key_log)
    assert problems(pcap, prefs=prefs) == []
    rows = read_fields(
        pcap,
        ["isakmp.exchangetype", "isakmp.flag_i", "isakmp.typepayload", "isakmp.id.data.fqdn"],
        display_filter="isakmp.exchangetype == 35 || isakmp.exchangetype == 36",
        prefs=prefs,
    )
    auth_req = next(r for r in rows if r[0] == "35" and r[1] == "1")
    types = {int(t) for t in auth_req[2].split(",")}
    assert {35, 36, 39, 33, 44, 45} <= types, auth_req  # IDi IDr AUTH SA TSi TSr
    assert auth_req[3] == "cl.test,gw.test"
    create = [r for r in rows if r[0] == "36"]
    assert len(create) == 2 and all(
        {33, 40, 44, 45} <= {int(t) for t in r[2].split(",")} for r in create
    ), create  # SA Ni/Nr TSi TSr
