"""Our EAP peer and simple methods against FreeRADIUS, an independent EAP server.

A tiny RADIUS client (``tests.ike.eap_tls.radius_loop.RadiusEapClient``, RFC 2865 /
RFC 3579, loopback only) carries the EAP packets.  FreeRADIUS offers EAP-MD5 first (its
``default_eap_type``), so the MS-CHAPv2 and GTC runs also exercise our Nak.  For MS-CHAPv2
the MS-MPPE keys of the Access-Accept (RFC 2548 2.4.2, decrypted with the shared secret) must
equal our MSK's first 32 bytes:
FreeRADIUS sends MasterReceiveKey as MS-MPPE-Recv-Key and MasterSendKey as MS-MPPE-Send-Key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ike.eap.methods import GtcPeerMethod, Md5PeerMethod, MsChapV2PeerMethod
from ike.eap.packet import EapType
from ike.eap.peer import EapPeer
from tests.harness.freeradius import FreeRadius
from tests.harness.tools import require
from tests.ike.eap_tls.radius_loop import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    RadiusEapClient,
)

# Real Debian peers (the marker groups every test that needs them; see pyproject).
pytestmark = pytest.mark.netns

MS_MPPE_SEND_KEY, MS_MPPE_RECV_KEY = 16, 17


def _run(radius: Any, identity: bytes, methods: list[tuple[int, Callable[[], Any]]]) -> Any:
    peer = EapPeer(identity, methods)
    client = RadiusEapClient(radius.port, radius.secret)
    try:
        code, attrs = client.authenticate(peer, identity, rounds=20)
    finally:
        client.close()
    return peer, code, attrs, client


def _mppe(client: RadiusEapClient, attrs: list[tuple[int, bytes]]) -> dict[int, bytes]:
    keys = client.mppe_keys(attrs)
    assert keys is not None, "no MS-MPPE keys in the Access-Accept"
    return {MS_MPPE_RECV_KEY: keys[0], MS_MPPE_SEND_KEY: keys[1]}


@pytest.fixture(scope="module")
def radius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    """One FreeRADIUS for the module (a start costs most of a second)."""
    require("freeradius")
    server = FreeRadius(
        tmp_path_factory.mktemp("freeradius"),
        users={"alice": "s3cret-Pass"},
        default_eap_type="md5",
    )
    with server:
        yield server


def test_md5_against_freeradius(radius: Any) -> None:
    peer, code, _, _ = _run(
        radius, b"alice", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("s3cret-Pass"))]
    )
    assert code == ACCESS_ACCEPT and peer.succeeded


def test_md5_wrong_password_against_freeradius(radius: Any) -> None:
    peer, code, _, _ = _run(
        radius, b"alice", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("nope"))]
    )
    assert code == ACCESS_REJECT and peer.failed


def test_mschapv2_against_freeradius_with_nak_and_keys(radius: Any) -> None:
    peer, code, attrs, client = _run(
        radius,
        b"alice",
        [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "s3cret-Pass"))],
    )
    assert code == ACCESS_ACCEPT, radius.log_tail()
    assert peer.succeeded and peer.completed_methods == (EapType.MSCHAPV2,)
    assert any(e.__class__.__name__ == "MethodNaked" for e in peer.events)
    keys = _mppe(client, attrs)
    assert peer.msk is not None
    assert keys[MS_MPPE_RECV_KEY][:16] + keys[MS_MPPE_SEND_KEY][:16] == peer.msk[:32]


def test_mschapv2_wrong_password_against_freeradius(radius: Any) -> None:
    peer, code, _, _ = _run(
        radius, b"alice", [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "nope"))]
    )
    assert code == ACCESS_REJECT and peer.failed
    # FreeRADIUS (mschapv2 send_error = no) answers with EAP-Failure, no MS-CHAPv2 Failure.
    assert peer.failure_reason == "EAP-Failure received in EAP-MSCHAPv2"


def test_gtc_against_freeradius(radius: Any) -> None:
    peer, code, _, _ = _run(radius, b"alice", [(EapType.GTC, lambda: GtcPeerMethod("s3cret-Pass"))])
    assert code == ACCESS_ACCEPT, radius.log_tail()
    assert peer.succeeded
