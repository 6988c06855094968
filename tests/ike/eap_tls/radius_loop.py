"""An in-process RADIUS server for eapol_test interop: ``radius.RadiusServer`` on a loopback
UDP socket served by a thread (test-only I/O; the engines stay sans-I/O)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ike.eap.packet import EapRequest, EapType
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from radius.server import RadiusClient, RadiusServer

SECRET = "interop-secret"


class LoopbackRadius:
    """Our RADIUS engine with an :class:`EapServer` of ``methods`` per conversation; every
    EAP server it made is kept in :attr:`servers` so tests can look at the outcome."""

    def __init__(self, methods: list[tuple[int, Callable[[bytes], Any]]]) -> None:
        self.servers: list[EapServer] = []

        def new_server(context: Any) -> EapServer:
            server = EapServer(methods)
            self.servers.append(server)
            return server

        self.engine = RadiusServer(
            [RadiusClient.from_prefix("127.0.0.1/32", SECRET, "loopback")], new_server
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                answer = self.engine.receive_datagram(data, addr, time.monotonic())
            except BaseException as exc:  # surface engine crashes to the test
                self.errors.append(exc)
                continue
            if answer is not None:
                self.sock.sendto(answer, addr)

    @property
    def finished(self) -> list[EapServer]:
        """The EAP servers whose conversation ended (success or failure), oldest first."""
        return [s for s in self.servers if s.succeeded or s.failed]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self) -> LoopbackRadius:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- a minimal RADIUS/EAP client (RFC 2865, RFC 3579) to drive our peers against FreeRADIUS --

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE = 1, 2, 3, 11
_USER_NAME, _STATE, _VSA, _NAS_ID, _EAP_MESSAGE, _MSG_AUTH = 1, 24, 26, 32, 79, 80
_MICROSOFT, _MPPE_SEND, _MPPE_RECV = 311, 16, 17


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
    import hashlib

    salt, cipher = value[:2], value[2:]
    plain, prev = b"", request_auth + salt
    for i in range(0, len(cipher), 16):
        block = hashlib.md5(secret + prev).digest()
        chunk = cipher[i : i + 16]
        plain += bytes(a ^ b for a, b in zip(chunk, block, strict=True))
        prev = chunk
    return plain[1 : 1 + plain[0]]


class RadiusEapClient:
    """Carries EAP packets of one conversation to a RADIUS server on loopback."""

    def __init__(self, port: int, secret: str) -> None:
        import secrets as _secrets

        self.addr = ("127.0.0.1", port)
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self.state: bytes | None = None
        self.ident = _secrets.randbelow(256)
        self.last_auth = b""

    def exchange(self, user: bytes, eap: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        import hashlib
        import hmac
        import secrets as _secrets

        self.ident = (self.ident + 1) % 256
        auth = _secrets.token_bytes(16)
        body = _attr(_USER_NAME, user) + _attr(_NAS_ID, b"nea-test")
        for off in range(0, len(eap), 253):
            body += _attr(_EAP_MESSAGE, eap[off : off + 253])
        if self.state is not None:
            body += _attr(_STATE, self.state)
        body += _attr(_MSG_AUTH, bytes(16))
        header = bytes((ACCESS_REQUEST, self.ident)) + (20 + len(body)).to_bytes(2, "big")
        packet = header + auth + body
        packet = packet[:-16] + hmac.new(self.secret, packet, "md5").digest()
        self.sock.sendto(packet, self.addr)
        reply, _ = self.sock.recvfrom(65535)
        assert reply[1] == self.ident and int.from_bytes(reply[2:4], "big") == len(reply)
        expected = hashlib.md5(reply[:4] + auth + reply[20:] + self.secret).digest()
        assert hmac.compare_digest(expected, reply[4:20]), "bad Response Authenticator"
        attrs = _attrs(reply[20:])
        self.state = next((v for k, v in attrs if k == _STATE), None)
        self.last_auth = auth
        return reply[0], attrs

    def authenticate(
        self, peer: EapPeer, identity: bytes, rounds: int = 60
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """Run ``peer`` from the NAS's own Identity request (RFC 3579 2.1) to the final
        Access-Accept or Access-Reject; returns that answer's code and attributes."""
        eap = peer.receive(EapRequest(0, EapType.IDENTITY).to_bytes())
        for _ in range(rounds):
            assert eap is not None, f"peer stopped answering: {peer.failure_reason}"
            code, attrs = self.exchange(identity, eap)
            eap_in = b"".join(v for k, v in attrs if k == _EAP_MESSAGE)
            if code == ACCESS_CHALLENGE:
                eap = peer.receive(eap_in)
                continue
            if eap_in:
                peer.receive(eap_in)
            return code, attrs
        raise AssertionError("no final RADIUS answer")

    def mppe_keys(self, attrs: list[tuple[int, bytes]]) -> tuple[bytes, bytes] | None:
        """(MS-MPPE-Recv-Key, MS-MPPE-Send-Key) of an Access-Accept, decrypted."""
        keys: dict[int, bytes] = {}
        for kind, value in attrs:
            if kind == _VSA and int.from_bytes(value[:4], "big") == _MICROSOFT:
                for vtype, vvalue in _attrs(value[4:]):
                    if vtype in (_MPPE_SEND, _MPPE_RECV):
                        keys[vtype] = _decrypt_mppe(vvalue, self.secret, self.last_auth)
        if len(keys) != 2:
            return None
        return keys[_MPPE_RECV], keys[_MPPE_SEND]

    def close(self) -> None:
        self.sock.close()
