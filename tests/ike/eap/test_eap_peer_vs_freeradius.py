"""Our EAP peer and simple methods against FreeRADIUS, an independent EAP server.

A tiny RADIUS client in this file (RFC 2865 / RFC 3579, loopback only) carries the EAP
packets.  FreeRADIUS offers EAP-MD5 first (its ``default_eap_type``), so the MS-CHAPv2 and
GTC runs also exercise our Nak.  For MS-CHAPv2 the MS-MPPE keys of the Access-Accept
(RFC 2548 2.4.2, decrypted with the shared secret) must equal our MSK's first 32 bytes:
FreeRADIUS sends MasterReceiveKey as MS-MPPE-Recv-Key and MasterSendKey as MS-MPPE-Send-Key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ike.eap.methods import GtcPeerMethod, Md5PeerMethod, MsChapV2PeerMethod
from ike.eap.packet import EapRequest, EapType
from ike.eap.peer import EapPeer
from tests.harness.freeradius import FreeRadius
from tests.harness.tools import require

# Real Debian peers (the marker groups every test that needs them; see pyproject).
pytestmark = pytest.mark.netns

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE = 1, 2, 3, 11
USER_NAME, STATE, VENDOR_SPECIFIC, NAS_IDENTIFIER = 1, 24, 26, 32
EAP_MESSAGE, MESSAGE_AUTHENTICATOR = 79, 80
MICROSOFT, MS_MPPE_SEND_KEY, MS_MPPE_RECV_KEY = 311, 16, 17


def _attr(kind: int, value: bytes) -> bytes:
    return bytes((kind, 2 + len(value))) + value


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off < len(data):
        kind, length = data[off], data[off + 1]
        assert length >= 2 and off + length <= len(data), "bad RADIUS attribute"
        out.append((kind, data[off + 2 : off + length]))
        off += length
    return out


def _decrypt_mppe(value: bytes, secret: bytes, request_auth: bytes) -> bytes:
    salt, cipher = value[:2], value[2:]
    plain, prev = b"", request_auth + salt
    for i in range(0, len(cipher), 16):
        block = hashlib.md5(secret + prev).digest()
        chunk = cipher[i : i + 16]
        plain += bytes(a ^ b for a, b in zip(chunk, block, strict=True))
        prev = chunk
    return plain[1 : 1 + plain[0]]


class RadiusEapClient:
    def __init__(self, port: int, secret: str) -> None:
        self.addr = ("127.0.0.1", port)
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self.state: bytes | None = None
        self.ident = secrets.randbelow(256)

    def exchange(self, user: bytes, eap: bytes) -> tuple[int, list[tuple[int, bytes]], bytes]:
        self.ident = (self.ident + 1) % 256
        auth = secrets.token_bytes(16)
        body = _attr(USER_NAME, user) + _attr(NAS_IDENTIFIER, b"nea-test")
        for off in range(0, len(eap), 253):
            body += _attr(EAP_MESSAGE, eap[off : off + 253])
        if self.state is not None:
            body += _attr(STATE, self.state)
        body += _attr(MESSAGE_AUTHENTICATOR, bytes(16))
        header = bytes((ACCESS_REQUEST, self.ident)) + (20 + len(body)).to_bytes(2, "big")
        packet = header + auth + body
        mac = hmac.new(self.secret, packet, "md5").digest()
        packet = packet[:-16] + mac
        self.sock.sendto(packet, self.addr)
        reply, _ = self.sock.recvfrom(4096)
        code, length = reply[0], int.from_bytes(reply[2:4], "big")
        assert reply[1] == self.ident and length == len(reply)
        expected = hashlib.md5(reply[:4] + auth + reply[20:] + self.secret).digest()
        assert hmac.compare_digest(expected, reply[4:20]), "bad Response Authenticator"
        attrs = _attrs(reply[20:])
        self.state = next((v for k, v in attrs if k == STATE), None)
        return code, attrs, auth


def _run(radius: Any, identity: bytes, methods: list[tuple[int, Callable[[], Any]]]) -> Any:
    peer = EapPeer(identity, methods)
    client = RadiusEapClient(radius.port, radius.secret)
    # The NAS asks for the identity itself (RFC 3579 2.1).
    eap = peer.receive(EapRequest(0, EapType.IDENTITY).to_bytes())
    for _ in range(20):
        assert eap is not None, f"peer stopped answering: {peer.failure_reason}"
        code, attrs, req_auth = client.exchange(identity, eap)
        eap_in = b"".join(v for k, v in attrs if k == EAP_MESSAGE)
        if code == ACCESS_CHALLENGE:
            eap = peer.receive(eap_in)
            continue
        if eap_in:
            peer.receive(eap_in)
        return peer, code, attrs, req_auth, client.secret
    raise AssertionError("no final RADIUS answer")


def _mppe(attrs: list[tuple[int, bytes]], secret: bytes, req_auth: bytes) -> dict[int, bytes]:
    keys = {}
    for kind, value in attrs:
        if kind == VENDOR_SPECIFIC and int.from_bytes(value[:4], "big") == MICROSOFT:
            for vtype, vvalue in _attrs(value[4:]):
                if vtype in (MS_MPPE_SEND_KEY, MS_MPPE_RECV_KEY):
                    keys[vtype] = _decrypt_mppe(vvalue, secret, req_auth)
    return keys


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
    peer, code, _, _, _ = _run(
        radius, b"alice", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("s3cret-Pass"))]
    )
    assert code == ACCESS_ACCEPT and peer.succeeded


def test_md5_wrong_password_against_freeradius(radius: Any) -> None:
    peer, code, _, _, _ = _run(
        radius, b"alice", [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("nope"))]
    )
    assert code == ACCESS_REJECT and peer.failed


def test_mschapv2_against_freeradius_with_nak_and_keys(radius: Any) -> None:
    peer, code, attrs, req_auth, secret = _run(
        radius,
        b"alice",
        [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "s3cret-Pass"))],
    )
    assert code == ACCESS_ACCEPT, radius.log_tail()
    assert peer.succeeded and peer.completed_methods == (EapType.MSCHAPV2,)
    assert any(e.__class__.__name__ == "MethodNaked" for e in peer.events)
    keys = _mppe(attrs, secret, req_auth)
    assert peer.msk is not None
    assert keys[MS_MPPE_RECV_KEY][:16] + keys[MS_MPPE_SEND_KEY][:16] == peer.msk[:32]


def test_mschapv2_wrong_password_against_freeradius(radius: Any) -> None:
    peer, code, _, _, _ = _run(
        radius, b"alice", [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"alice", "nope"))]
    )
    assert code == ACCESS_REJECT and peer.failed
    # FreeRADIUS (mschapv2 send_error = no) answers with EAP-Failure, no MS-CHAPv2 Failure.
    assert peer.failure_reason == "EAP-Failure received in EAP-MSCHAPv2"


def test_gtc_against_freeradius(radius: Any) -> None:
    peer, code, _, _, _ = _run(
        radius, b"alice", [(EapType.GTC, lambda: GtcPeerMethod("s3cret-Pass"))]
    )
    assert code == ACCESS_ACCEPT, radius.log_tail()
    assert peer.succeeded
