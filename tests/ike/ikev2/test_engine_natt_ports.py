"""NAT-T on configured ports (EngineConfig.natt_port, PeerConfig.remote_natt_port): an
initiator talking to a gateway on 10500/14500 moves to 14500 once a NAT is detected."""

from __future__ import annotations

import pytest

from ike.config import EngineConfig
from ike.errors import LocalProtocolError
from ike.sa import NAT_KEEPALIVE, ChildSaInstalled, IkeEngine, IkeSaEstablished
from tests.ike.ikev2.ike_pair import Pair, cl_peer, gw_peer

GW_IKE = ("192.0.2.1", 10500)
GW_NATT = ("192.0.2.1", 14500)
PRIVATE = "10.0.0.2"
PUBLIC = "198.51.100.7"


def _pair(client_natt: int = 14600, gateway_natt: int = 14500) -> Pair:
    client = IkeEngine(
        EngineConfig(peers=(cl_peer(remote_natt_port=gateway_natt),), natt_port=client_natt)
    )
    server = IkeEngine(EngineConfig(peers=(gw_peer(),), natt_port=gateway_natt))
    return Pair(client, server)


def test_initiator_behind_a_nat_moves_to_the_configured_ports() -> None:
    pair = _pair()
    pair.nat = {(PRIVATE, 10600): (PUBLIC, 40001), (PRIVATE, 14600): (PUBLIC, 40002)}
    spi = pair.client.initiate("home", 0.0, local=(PRIVATE, 10600), remote=GW_IKE)
    pair.pump()
    sent = [d for name, d in pair.wire if name == "c>s"]
    assert sent[0].local == (PRIVATE, 10600) and sent[0].remote == GW_IKE  # IKE_SA_INIT
    assert all(d.local == (PRIVATE, 14600) and d.remote == GW_NATT for d in sent[1:])
    answers = [d for name, d in pair.wire if name == "s>c"]
    assert answers[0].local == GW_IKE and all(d.local == GW_NATT for d in answers[1:])
    (cest,) = pair.events("client", IkeSaEstablished)
    (sest,) = pair.events("server", IkeSaEstablished)
    assert cest.nat_detected and sest.nat_detected
    assert (cest.local, cest.remote) == ((PRIVATE, 14600), GW_NATT)
    assert (sest.local, sest.remote) == (GW_NATT, (PUBLIC, 40002))
    (cchild,) = pair.events("client", ChildSaInstalled)
    (schild,) = pair.events("server", ChildSaInstalled)
    assert cchild.udp_encap and schild.udp_encap
    pair.advance(20.0)
    (keepalive,) = pair.client.datagrams_to_send(pair.now)
    assert keepalive.data == NAT_KEEPALIVE and keepalive.remote == GW_NATT
    assert pair.client.ike_sa_state(spi) is not None


def test_without_a_nat_the_configured_ike_ports_stay() -> None:
    pair = _pair()
    pair.client.initiate("home", 0.0, local=("192.0.2.2", 10600), remote=GW_IKE)
    pair.pump()
    assert all(d.remote == GW_IKE for name, d in pair.wire if name == "c>s")
    (schild,) = pair.events("server", ChildSaInstalled)
    assert not schild.udp_encap


def test_ike_started_on_the_natt_port_encapsulates_esp() -> None:
    # an initiator that speaks RFC 3948 from the start (one socket for IKE and ESP)
    pair = _pair(client_natt=14600)
    pair.client.initiate("home", 0.0, local=("192.0.2.2", 14600), remote=GW_NATT)
    pair.pump()
    (cest,) = pair.events("client", IkeSaEstablished)
    assert not cest.nat_detected and cest.remote == GW_NATT
    (cchild,) = pair.events("client", ChildSaInstalled)
    (schild,) = pair.events("server", ChildSaInstalled)
    assert cchild.udp_encap and schild.udp_encap


def test_remote_natt_port_is_checked() -> None:
    with pytest.raises(LocalProtocolError, match="remote_natt_port"):
        cl_peer(remote_natt_port=0)
