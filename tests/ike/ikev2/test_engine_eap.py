"""IKE_AUTH with EAP (RFC 7296, 2.16) using the project's EAP server and peer
(``ike.eap.server.EapServer`` / ``ike.eap.peer.EapPeer``): the responder proves itself with
a certificate, the initiator with EAP, and both finish with AUTH computed from the MSK (or
SK_pi/SK_pr for methods without one)."""

from __future__ import annotations

from typing import Any

import pytest

from ike.config import AuthClass, Identity
from ike.constants import NotifyType
from ike.eap.methods.credentials import StaticPasswords
from ike.eap.methods.md5 import Md5PeerMethod, Md5ServerMethod
from ike.eap.methods.mschapv2 import MsChapV2PeerMethod, MsChapV2ServerMethod
from ike.eap.packet import EapType
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from ike.sa import ChildSaInstalled, IkeSaClosed, IkeSaEstablished
from tests.ike.ikev2.ike_pair import cl_peer, gw_peer, make_pair

USERS = StaticPasswords({"bob": "hello"})


def _server_factory(method: str) -> Any:
    def make(identity: Identity) -> EapServer:
        if method == "md5":
            return EapServer([(EapType.MD5_CHALLENGE, lambda i: Md5ServerMethod(i, USERS))])
        return EapServer([(EapType.MSCHAPV2, lambda i: MsChapV2ServerMethod(i, USERS))])

    return make


def _peer_factory(method: str, password: str) -> Any:
    def make() -> EapPeer:
        if method == "md5":
            return EapPeer(b"bob", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod(password))])
        return EapPeer(b"bob", [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"bob", password))])

    return make


def _pair(cert_factory: Any, method: str, password: str = "hello") -> Any:
    root = cert_factory.ca("root")
    gw = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
    server = gw_peer(
        local_auth=AuthClass.PUBKEY,
        remote_auth=AuthClass.EAP,
        psk=None,
        certificate=gw.cert,
        private_key=gw.key,
        eap_server=_server_factory(method),
    )
    client = cl_peer(
        local_auth=AuthClass.EAP,
        remote_auth=AuthClass.PUBKEY,
        psk=None,
        trust_anchors=(root.cert,),
        eap_peer=_peer_factory(method, password),
        remote_id=Identity.parse("gw.test"),
    )
    return make_pair((client,), (server,))


@pytest.mark.parametrize("method", ["md5", "mschapv2"])
def test_eap_establishes(cert_factory: Any, method: str) -> None:
    pair = _pair(cert_factory, method)
    pair.initiate()
    pair.pump()
    (est,) = pair.events("server", IkeSaEstablished)
    assert est.eap_identity == b"bob"
    assert len(pair.events("client", IkeSaEstablished)) == 1
    (sc,) = pair.events("server", ChildSaInstalled)
    (cc,) = pair.events("client", ChildSaInstalled)
    assert sc.encr_key_in == cc.encr_key_out


@pytest.mark.parametrize("method", ["md5", "mschapv2"])
def test_eap_wrong_password_fails(cert_factory: Any, method: str) -> None:
    pair = _pair(cert_factory, method, password="wrong")
    pair.initiate()
    pair.pump()
    assert not pair.events("server", IkeSaEstablished)
    assert not pair.events("client", IkeSaEstablished)
    assert pair.events("server", IkeSaClosed)[0].error == NotifyType.AUTHENTICATION_FAILED
    assert pair.events("client", IkeSaClosed)


def test_untrusted_responder_certificate_is_reported(cert_factory: Any) -> None:
    pair = _pair(cert_factory, "md5")
    other = cert_factory.ca("other")
    client = pair.client.config.peers[0]
    from dataclasses import replace

    from ike.config import EngineConfig
    from ike.sa import IkeEngine

    pair.client = IkeEngine(EngineConfig(peers=(replace(client, trust_anchors=(other.cert,)),)))
    pair.initiate()
    pair.pump()
    (closed,) = pair.events("client", IkeSaClosed)
    assert closed.error == NotifyType.AUTHENTICATION_FAILED and "no path" in closed.reason
    # RFC 7296, 2.21.2: the initiator tells the responder in an INFORMATIONAL
    assert pair.events("server", IkeSaClosed)[0].error == NotifyType.AUTHENTICATION_FAILED


def test_authorize_sees_the_finished_eap_conversation(cert_factory: Any) -> None:
    from dataclasses import replace

    from ike.config import AuthContext, Authorization, EngineConfig
    from ike.sa import IkeEngine

    seen: list[AuthContext] = []

    def authorize(ctx: AuthContext) -> Authorization:
        seen.append(ctx)
        return Authorization(())

    pair = _pair(cert_factory, "mschapv2")
    server = replace(pair.server.config.peers[0], authorize=authorize)
    pair.server = IkeEngine(EngineConfig(peers=(server,)))
    pair.initiate()
    pair.pump()
    (ctx,) = seen
    assert ctx.eap_identity == b"bob" and ctx.eap_server is not None
    assert ctx.eap_server.succeeded and ctx.eap_server.msk is not None
    assert len(pair.events("server", IkeSaEstablished)) == 1
    from ike.constants import NotifyType as NT
    from ike.sa import ChildSaFailed

    # an empty grant allows no CHILD_SA
    assert pair.events("client", ChildSaFailed)[0].error == NT.TS_UNACCEPTABLE
