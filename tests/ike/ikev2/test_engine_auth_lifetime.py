"""RFC 4478 AUTH_LIFETIME: the responder asks an established peer to re-authenticate (an
INFORMATIONAL with the notify); the peer's engine reports it as ReauthRequested."""

from __future__ import annotations

from typing import Any

import pytest

from ike.config import AuthClass
from ike.eap.methods.credentials import StaticPasswords
from ike.eap.methods.md5 import Md5PeerMethod, Md5ServerMethod
from ike.eap.packet import EapType
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from ike.errors import LocalProtocolError
from ike.sa import IkeSaClosed, IkeSaEstablished, ReauthRequested
from tests.ike.ikev2.ike_pair import cl_peer, gw_peer, make_pair


def test_auth_lifetime_reaches_the_peer() -> None:
    pair = make_pair()
    client_spi = pair.initiate()
    pair.pump()
    (srv,) = pair.events("server", IkeSaEstablished)
    pair.server.request_reauth(srv.ike_sa, pair.now, lifetime=30)
    pair.pump()
    assert pair.events("client", ReauthRequested) == [ReauthRequested(client_spi, 30)]
    # The exchange completed (answered), both IKE_SAs stay up until the peer acts.
    assert not pair.events("client", IkeSaClosed) and not pair.events("server", IkeSaClosed)
    assert pair.server._sas[srv.ike_sa].outstanding is None


def test_auth_lifetime_needs_an_established_sa_and_a_sane_value() -> None:
    pair = make_pair()
    pair.initiate()
    pair.pump()
    (srv,) = pair.events("server", IkeSaEstablished)
    with pytest.raises(LocalProtocolError):
        pair.server.request_reauth(srv.ike_sa, pair.now, lifetime=-1)
    with pytest.raises(LocalProtocolError):
        pair.server.request_reauth(b"\x00" * 8, pair.now)


def test_auth_lifetime_in_the_last_ike_auth_response() -> None:
    """RFC 4478, 3: a responder with ``reauth_time`` (charon's name) puts AUTH_LIFETIME in its
    last IKE_AUTH response; the initiator reports it once its IKE_SA is up."""
    pair = make_pair(server_peers=(gw_peer(reauth_time=3600),))
    client_spi = pair.initiate()
    pair.pump()
    assert pair.events("client", IkeSaEstablished)
    assert pair.events("client", ReauthRequested) == [ReauthRequested(client_spi, 3600)]


def test_auth_lifetime_after_eap(cert_factory: Any) -> None:
    """The same after an EAP IKE_AUTH, where the last response carries the MSK-based AUTH."""
    root = cert_factory.ca("root")
    gw = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
    users = StaticPasswords({"bob": "hello"})
    server = gw_peer(
        local_auth=AuthClass.PUBKEY,
        remote_auth=AuthClass.EAP,
        psk=None,
        certificate=gw.cert,
        private_key=gw.key,
        reauth_time=600,
        eap_server=lambda identity: EapServer(
            [(EapType.MD5_CHALLENGE, lambda i: Md5ServerMethod(i, users))]
        ),
    )
    client = cl_peer(
        local_auth=AuthClass.EAP,
        remote_auth=AuthClass.PUBKEY,
        psk=None,
        trust_anchors=(root.cert,),
        eap_peer=lambda: EapPeer(b"bob", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("hello"))]),
    )
    pair = make_pair(client_peers=(client,), server_peers=(server,))
    client_spi = pair.initiate()
    pair.pump()
    assert pair.events("client", IkeSaEstablished)
    assert pair.events("client", ReauthRequested) == [ReauthRequested(client_spi, 600)]


def test_no_auth_lifetime_without_reauth_time() -> None:
    pair = make_pair()
    pair.initiate()
    pair.pump()
    assert pair.events("client", IkeSaEstablished)
    assert pair.events("client", ReauthRequested) == []
