"""Our EAP server and simple methods against wpa_supplicant's peer (``eapol_test``).

A minimal RADIUS responder in this file (RFC 2865 / RFC 3579, loopback only, one thread)
hands each EAP-Message to an :class:`EapServer` keyed by the State attribute.  On success it
sends MS-MPPE-Recv-Key = MSK[0:32] and MS-MPPE-Send-Key = MSK[32:64] (RFC 2548, the usual
EAP mapping), which eapol_test compares with the key material its own peer derived: for
EAP-MS-CHAPv2 that is MasterReceiveKey || MasterSendKey, our MSK's first 32 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ike.eap.methods import (
    StaticPasswords,
    gtc_server_factory,
    md5_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap.packet import EapType
from ike.eap.server import EapServer
from tests.harness.eapol_test import run_eapol_test
from tests.harness.tools import require

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE = 1, 2, 3, 11
STATE, VENDOR_SPECIFIC, EAP_MESSAGE, MESSAGE_AUTHENTICATOR = 24, 26, 79, 80
MICROSOFT, MS_MPPE_SEND_KEY, MS_MPPE_RECV_KEY = 311, 16, 17
# Real Debian peers (the marker groups every test that needs them; see pyproject).
pytestmark = pytest.mark.netns

USERS = StaticPasswords({"alice": "s3cret-Pass"})


def _attr(kind: int, value: bytes) -> bytes:
    return bytes((kind, 2 + len(value))) + value


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off < len(data):
        kind, length = data[off], data[off + 1]
        assert length >= 2 and off + length <= len(data)
        out.append((kind, data[off + 2 : off + length]))
        off += length
    return out


def _encrypt_mppe(key: bytes, secret: bytes, request_auth: bytes) -> bytes:
    salt = bytes((0x80 | secrets.randbelow(128), secrets.randbelow(256)))
    plain = bytes((len(key),)) + key
    plain += bytes(-len(plain) % 16)
    out, prev = b"", request_auth + salt
    for i in range(0, len(plain), 16):
        block = hashlib.md5(secret + prev).digest()
        chunk = bytes(a ^ b for a, b in zip(plain[i : i + 16], block, strict=True))
        out += chunk
        prev = chunk
    return salt + out


def _ms_attr(vtype: int, value: bytes) -> bytes:
    sub = bytes((vtype, 2 + len(value))) + value
    return _attr(VENDOR_SPECIFIC, MICROSOFT.to_bytes(4, "big") + sub)


class EapRadiusResponder:
    """Just enough RADIUS to carry EAP between eapol_test and our EapServer."""

    def __init__(self, methods: list[tuple[int, Any]]) -> None:
        self.methods = methods
        self.secret = secrets.token_hex(8)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.sessions: dict[bytes, EapServer] = {}
        self.finished: list[EapServer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> EapRadiusResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                reply = self._handle(data)
            except Exception as exc:  # recorded, the test asserts there were none
                self.errors.append(repr(exc))
                continue
            if reply is not None:
                self.sock.sendto(reply, addr)

    def _handle(self, data: bytes) -> bytes | None:
        secret = self.secret.encode()
        if data[0] != ACCESS_REQUEST:
            return None
        ident, req_auth = data[1], data[4:20]
        attrs = _attrs(data[20:])
        eap_in = b"".join(v for k, v in attrs if k == EAP_MESSAGE)
        state = next((v for k, v in attrs if k == STATE), None)
        if state is None:
            server = EapServer(self.methods)
            state = secrets.token_bytes(16)
            self.sessions[state] = server
        else:
            server = self.sessions[state]
        out = server.receive(eap_in)
        if out is None:
            self.errors.append(f"EAP server dropped a packet: {server.events[-1]}")
            return None
        body = b""
        for off in range(0, len(out), 253):
            body += _attr(EAP_MESSAGE, out[off : off + 253])
        if server.succeeded:
            code = ACCESS_ACCEPT
            if server.msk is not None:
                body += _ms_attr(MS_MPPE_RECV_KEY, _encrypt_mppe(server.msk[:32], secret, req_auth))
                body += _ms_attr(MS_MPPE_SEND_KEY, _encrypt_mppe(server.msk[32:], secret, req_auth))
            self.finished.append(server)
        elif server.failed:
            code = ACCESS_REJECT
            self.finished.append(server)
        else:
            code = ACCESS_CHALLENGE
            body += _attr(STATE, state)
        body += _attr(MESSAGE_AUTHENTICATOR, bytes(16))
        header = bytes((code, ident)) + (20 + len(body)).to_bytes(2, "big")
        mac = hmac.new(secret, header + req_auth + body, "md5").digest()
        body = body[:-16] + mac
        resp_auth = hashlib.md5(header + req_auth + body + secret).digest()
        return header + resp_auth + body


@pytest.fixture
def eapol(tmp_path: Path) -> Iterator[Any]:
    require("eapol_test")

    def run(
        methods: list[tuple[int, Any]], block: str, *, keys: bool = False
    ) -> tuple[Any, EapRadiusResponder]:
        # -n: the method derives no keys, so eapol_test must not expect MPPE keys.
        extra = () if keys else ("-n",)
        with EapRadiusResponder(methods) as responder:
            result = run_eapol_test(
                block,
                port=responder.port,
                secret=responder.secret,
                workdir=tmp_path,
                timeout=10,
                extra_args=extra,
            )
        assert not responder.errors, responder.errors
        return result, responder

    yield run


MD5 = (EapType.MD5_CHALLENGE, md5_server_factory(USERS))
MSCHAPV2 = (EapType.MSCHAPV2, mschapv2_server_factory(USERS))
GTC = (EapType.GTC, gtc_server_factory(password_check(USERS)))


def test_md5_server_with_wpa_supplicant(eapol: Any) -> None:
    result, responder = eapol([MD5], 'eap=MD5\nidentity="alice"\npassword="s3cret-Pass"')
    assert result.success, result.output[-3000:]
    assert responder.finished[-1].succeeded


def test_md5_server_wrong_password_with_wpa_supplicant(eapol: Any) -> None:
    result, responder = eapol([MD5], 'eap=MD5\nidentity="alice"\npassword="nope"')
    assert not result.success
    server = responder.finished[-1]
    assert server.failed
    assert server.failure_reason == "EAP-MD5 response does not match the password of b'alice'"


def test_mschapv2_server_with_wpa_supplicant_keys_match(eapol: Any) -> None:
    # The server offers MD5 first; wpa_supplicant (eap=MSCHAPV2 only) Naks it.
    result, responder = eapol(
        [MD5, MSCHAPV2], 'eap=MSCHAPV2\nidentity="alice"\npassword="s3cret-Pass"', keys=True
    )
    assert result.success, result.output[-3000:]
    assert result.mppe_ok, result.output[-3000:]
    server = responder.finished[-1]
    assert server.completed_methods == (EapType.MSCHAPV2,)


@pytest.mark.parametrize("send_error", [False, True])
def test_mschapv2_server_wrong_password_with_wpa_supplicant(eapol: Any, send_error: bool) -> None:
    method = (EapType.MSCHAPV2, mschapv2_server_factory(USERS, send_error=send_error))
    result, responder = eapol([method], 'eap=MSCHAPV2\nidentity="alice"\npassword="nope"')
    assert not result.success
    # With send_error wpa_supplicant parses our Failure Request (and logs its E= code).
    assert ("E=691" in result.output) is send_error
    server = responder.finished[-1]
    assert server.failed and server.failure_reason == "MS-CHAPv2 NT-Response wrong for b'alice'"


def test_gtc_server_with_wpa_supplicant(eapol: Any) -> None:
    result, responder = eapol([GTC], 'eap=GTC\nidentity="alice"\npassword="s3cret-Pass"')
    assert result.success, result.output[-3000:]
    assert responder.finished[-1].succeeded
