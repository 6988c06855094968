"""A minimal TLS 1.2 abbreviated handshake for EAP-FAST PAC resumption (RFC 4851 3.2.2).

OpenSSL resumes an EAP-FAST session with ``SSL_set_session_secret_cb``, which pyOpenSSL does
not expose, so this path is built here on ``cryptography``.  Full handshakes (provisioning,
and the server's fallback when it cannot use a PAC) stay on pyOpenSSL
(:mod:`ike.eap_tls.tls`); only the peer that offered a PAC and is answered with a full
handshake finishes that handshake here (RSA key transport, the server certificate checked
by :func:`ike.eap_tls.tls.verify_server_chain`), since its ClientHello was not OpenSSL's.

The exchange (RFC 5077 3.1 with the PAC-Opaque as ticket, master secret from the PAC-Key)::

    ClientHello (SessionTicket ext = PAC-Opaque TLV)  ->
                  <-  ServerHello, ChangeCipherSpec, Finished
    ChangeCipherSpec, Finished                          ->
    application data (EAP-FAST TLVs)                   <->

Our server echoes the client's session ID (RFC 5077 3.4), but OpenSSL-based EAP-FAST
servers (``SSL_set_session_secret_cb``: FreeRADIUS, hostapd) resume with a fresh session ID,
so the client tells an abbreviated handshake from a full one by the message after ServerHello,
as OpenSSL's own client does: ChangeCipherSpec means the PAC was accepted, a handshake
message (Certificate) means a full handshake.

Only TLS 1.2 with the AES-CBC + HMAC-SHA1 suites is spoken (MAC-then-encrypt, explicit IV,
RFC 5246 6.2.3.2); every suite of that family shares this record layer whatever its key
exchange, which an abbreviated handshake never runs.  ServerHello carries
renegotiation_info (RFC 5746) when the client signalled it, and nothing else: no
extended master secret (the master secret comes from the PAC), no encrypt-then-MAC.

:func:`parse_client_hello` lets the server look at the first flight before deciding between
this engine and OpenSSL.  :class:`ResumedServer` and :class:`ResumedClient` are sans-I/O:
``receive(bytes)``, ``data_to_send()``, application data in and out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ike.eap_fast.keys import pac_master_secret
from ike.eap_tls.errors import AlertDescription, TlsFailure
from ike.eap_tls.prf import tls12_prf

__all__ = [
    "CBC_SHA_SUITES",
    "EXT_SESSION_TICKET",
    "ClientHello",
    "ResumedClient",
    "ResumedServer",
    "parse_client_hello",
]

TLS12 = 0x0303
CT_CHANGE_CIPHER_SPEC = 20
CT_ALERT = 21
CT_HANDSHAKE = 22
CT_APPLICATION_DATA = 23
HT_CLIENT_HELLO = 1
HT_SERVER_HELLO = 2
HT_NEW_SESSION_TICKET = 4
HT_CERTIFICATE = 11
HT_CERTIFICATE_REQUEST = 13
HT_SERVER_HELLO_DONE = 14
HT_CLIENT_KEY_EXCHANGE = 16
HT_FINISHED = 20
EXT_SESSION_TICKET = 35
"""RFC 5077 SessionTicket, which carries the PAC-Opaque TLV (RFC 4851 3.2.2)."""
EXT_RENEGOTIATION_INFO = 0xFF01
SCSV_RENEGOTIATION = 0x00FF
EXT_SUPPORTED_VERSIONS = 43
EXT_SIGNATURE_ALGORITHMS = 13
_SIGNATURE_ALGORITHMS = (
    # What the server certificate chain may be signed with (RFC 5246 7.4.1.4.1; code points
    # of RFC 8446 4.2.3): RSA-PSS (rsae, pss), RSA PKCS#1 and ECDSA with SHA-256/384/512,
    # Ed25519, Ed448.  Without the extension a TLS 1.2 server must assume SHA-1, which
    # OpenSSL 3 refuses ("no suitable signature algorithm") when it answers our PAC with a
    # full handshake.
    *(0x0804, 0x0805, 0x0806, 0x0809, 0x080A, 0x080B),
    *(0x0401, 0x0501, 0x0601, 0x0403, 0x0503, 0x0603),
    *(0x0807, 0x0808),
)

CBC_SHA_SUITES: dict[int, tuple[str, int]] = {
    # IANA TLS cipher suite number -> (OpenSSL name, AES key length)
    0x002F: ("AES128-SHA", 16),
    0x0035: ("AES256-SHA", 32),
    0x0033: ("DHE-RSA-AES128-SHA", 16),
    0x0039: ("DHE-RSA-AES256-SHA", 32),
    0xC013: ("ECDHE-RSA-AES128-SHA", 16),
    0xC014: ("ECDHE-RSA-AES256-SHA", 32),
    0xC009: ("ECDHE-ECDSA-AES128-SHA", 16),
    0xC00A: ("ECDHE-ECDSA-AES256-SHA", 32),
}
_PREFERENCE = (0x002F, 0x0035, 0xC013, 0xC014, 0x0033, 0x0039, 0xC009, 0xC00A)
_MAC_LEN = 20
_BLOCK = 16
_MAX_RECORD = 16384 + 2048


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise TlsFailure(f"{self.what}: truncated", AlertDescription.decode_error)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def vector(self, length_bytes: int) -> bytes:
        n = int.from_bytes(self.take(length_bytes), "big")
        return self.take(n)

    def done(self) -> bool:
        return self.pos == len(self.data)


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What the server needs of a ClientHello (RFC 5246 7.4.1.2)."""

    raw: bytes
    """The whole handshake message (header included) for the Finished hash."""
    client_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    extensions: tuple[tuple[int, bytes], ...]

    def extension(self, ext_type: int) -> bytes | None:
        for kind, data in self.extensions:
            if kind == ext_type:
                return data
        return None

    @property
    def secure_renegotiation(self) -> bool:
        return (
            self.extension(EXT_RENEGOTIATION_INFO) is not None
            or SCSV_RENEGOTIATION in self.cipher_suites
        )

    def offers_tls12(self) -> bool:
        versions = self.extension(EXT_SUPPORTED_VERSIONS)
        if versions is None:
            return self.client_version >= TLS12
        body = versions[1:]
        return any(body[i : i + 2] == b"\x03\x03" for i in range(0, len(body) - 1, 2))


def _records(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    reader = _Reader(data, "TLS record")
    while not reader.done():
        kind = reader.u8()
        reader.u16()
        body = reader.vector(2)
        if len(body) > _MAX_RECORD:
            raise TlsFailure("TLS record too long", AlertDescription.record_overflow)
        out.append((kind, body))
    return out


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello in the first flight ``data`` (possibly split over records); None when
    the bytes are not a complete, well-formed ClientHello (OpenSSL then judges them)."""
    try:
        records = _records(data)
        if not records or any(kind != CT_HANDSHAKE for kind, _ in records):
            return None
        handshake = b"".join(body for _, body in records)
        reader = _Reader(handshake, "ClientHello")
        if reader.u8() != HT_CLIENT_HELLO:
            return None
        body = reader.take(reader.u24())
        if not reader.done():
            return None
        raw = handshake
        r = _Reader(body, "ClientHello")
        version = r.u16()
        random = r.take(32)
        session_id = r.vector(1)
        if len(session_id) > 32:
            return None
        suites_raw = r.vector(2)
        if len(suites_raw) % 2:
            return None
        suites = tuple(
            struct.unpack("!H", suites_raw[i : i + 2])[0] for i in range(0, len(suites_raw), 2)
        )
        r.vector(1)  # compression methods
        extensions: list[tuple[int, bytes]] = []
        if not r.done():
            ext_reader = _Reader(r.vector(2), "ClientHello extensions")
            while not ext_reader.done():
                kind = ext_reader.u16()
                extensions.append((kind, ext_reader.vector(2)))
        if not r.done():
            return None
        return ClientHello(raw, version, random, session_id, suites, tuple(extensions))
    except TlsFailure:
        return None


def _record(kind: int, body: bytes) -> bytes:
    return struct.pack("!BHH", kind, TLS12, len(body)) + body


def _handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


class _CbcState:
    """One direction of the AES-CBC + HMAC-SHA1 record layer (RFC 5246 6.2.3.2)."""

    def __init__(self, mac_key: bytes, key: bytes) -> None:
        self.mac_key = mac_key
        self.key = key
        self.seq = 0

    def _mac(self, kind: int, plaintext: bytes) -> bytes:
        header = struct.pack("!QBHH", self.seq, kind, TLS12, len(plaintext))
        return hmac.new(self.mac_key, header + plaintext, hashlib.sha1).digest()

    def seal(self, kind: int, plaintext: bytes) -> bytes:
        data = plaintext + self._mac(kind, plaintext)
        pad = _BLOCK - (len(data) + 1) % _BLOCK
        data += bytes([pad]) * (pad + 1)
        iv = os.urandom(_BLOCK)
        enc = Cipher(algorithms.AES(self.key), modes.CBC(iv)).encryptor()
        self.seq += 1
        return _record(kind, iv + enc.update(data) + enc.finalize())

    def open(self, kind: int, fragment: bytes) -> bytes:
        if len(fragment) < 2 * _BLOCK or len(fragment) % _BLOCK:
            raise TlsFailure("bad record MAC (record length)", AlertDescription.bad_record_mac)
        dec = Cipher(algorithms.AES(self.key), modes.CBC(fragment[:_BLOCK])).decryptor()
        data = dec.update(fragment[_BLOCK:]) + dec.finalize()
        pad = data[-1]
        good = pad + 1 + _MAC_LEN <= len(data)
        if good:
            good = hmac.compare_digest(data[-(pad + 1) :], bytes([pad]) * (pad + 1))
        cut = len(data) - (pad + 1) if good else len(data)
        plaintext, mac = data[: cut - _MAC_LEN], data[cut - _MAC_LEN : cut]
        expected = self._mac(kind, plaintext)
        self.seq += 1
        if not (hmac.compare_digest(expected, mac) and good):
            # One alert for padding and MAC errors (RFC 5246 6.2.3.2).
            raise TlsFailure("bad record MAC", AlertDescription.bad_record_mac)
        return plaintext


class _Resumed:
    """State shared by both roles: keys, record layer, application data."""

    is_server: bool = True

    def __init__(self) -> None:
        self._out = bytearray()
        self._app_in = bytearray()
        self._read: _CbcState | None = None
        self._write: _CbcState | None = None
        self._transcript = bytearray()
        self._master: bytes | None = None
        self._client_random = b""
        self._server_random = b""
        self._suite = 0
        self._client_state = _CbcState(b"", b"")
        self._server_state = _CbcState(b"", b"")
        self._complete = False
        self._closed = False
        self.failure_reason: str | None = None
        self.failure_alert: AlertDescription | None = None

    # -- results (the names of ike.eap_tls.tls.TlsSession) ------------------------------
    @property
    def handshake_complete(self) -> bool:
        return self._complete

    @property
    def session_reused(self) -> bool:
        return True

    @property
    def version_name(self) -> str:
        return "TLSv1.2"

    def cipher_name(self) -> str:
        return CBC_SHA_SUITES[self._suite][0]

    def client_random(self) -> bytes:
        return self._client_random

    def server_random(self) -> bytes:
        return self._server_random

    def master_key(self) -> bytes:
        if self._master is None:
            raise TlsFailure("no master secret yet")
        return self._master

    # -- plumbing --------------------------------------------------------------------------
    def _fail(self, reason: str, alert: AlertDescription | None) -> TlsFailure:
        if self.failure_reason is None:
            self.failure_reason = reason
            self.failure_alert = alert
        if alert is not None and not self._closed:
            body = bytes([2, int(alert)])
            self._out += (
                self._write.seal(CT_ALERT, body) if self._write else _record(CT_ALERT, body)
            )
        self._closed = True
        return TlsFailure(self.failure_reason, self.failure_alert)

    def _derive(self, pac_key: bytes) -> None:
        self._derive_from_master(
            pac_master_secret(pac_key, self._server_random, self._client_random)
        )

    def _derive_from_master(self, master: bytes) -> None:
        self._master = master
        key_len = CBC_SHA_SUITES[self._suite][1]
        block = tls12_prf(
            self._master,
            b"key expansion",
            self._server_random + self._client_random,
            2 * (_MAC_LEN + key_len),
        )
        c_mac, s_mac = block[:20], block[20:40]
        c_key, s_key = block[40 : 40 + key_len], block[40 + key_len : 40 + 2 * key_len]
        self._client_state = _CbcState(c_mac, c_key)
        self._server_state = _CbcState(s_mac, s_key)

    def _finished(self, label: bytes) -> bytes:
        assert self._master is not None
        digest = hashlib.sha256(bytes(self._transcript)).digest()
        return tls12_prf(self._master, label, digest, 12)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def read_application_data(self) -> bytes:
        out = bytes(self._app_in)
        self._app_in.clear()
        return out

    def write_application_data(self, data: bytes) -> None:
        if not self._complete or self._write is None:
            raise TlsFailure("application data before the handshake completed")
        for i in range(0, len(data), 16384):
            self._out += self._write.seal(CT_APPLICATION_DATA, data[i : i + 16384])

    def _decrypt_records(self, data: bytes) -> list[tuple[int, bytes]]:
        try:
            records = _records(data)
        except TlsFailure as exc:
            raise self._fail(exc.reason, AlertDescription.decode_error) from None
        out = []
        for kind, body in records:
            if kind == CT_CHANGE_CIPHER_SPEC:
                if body != b"\x01" or self._read is not None:
                    raise self._fail(
                        "unexpected ChangeCipherSpec", AlertDescription.unexpected_message
                    )
                self._read = self._client_state if self.is_server else self._server_state
                continue
            out.append((kind, self._open_record(kind, body)))
        return out

    def _open_record(self, kind: int, body: bytes) -> bytes:
        """The plaintext of one record (after ChangeCipherSpec); an alert ends the session."""
        if self._read is not None:
            try:
                body = self._read.open(kind, body)
            except TlsFailure as exc:
                raise self._fail(exc.reason, exc.alert) from None
        if kind == CT_ALERT:
            if len(body) != 2:
                raise self._fail("malformed alert", AlertDescription.decode_error)
            self._closed = True
            name = _alert_name(body[1])
            raise self._fail(f"peer sent TLS alert {name}", None)
        return body

    def _app_records(self, records: list[tuple[int, bytes]]) -> None:
        for kind, body in records:
            if kind != CT_APPLICATION_DATA:
                raise self._fail(
                    f"TLS record type {kind} after the handshake",
                    AlertDescription.unexpected_message,
                )
            self._app_in += body


def _alert_name(code: int) -> str:
    try:
        return AlertDescription(code).name
    except ValueError:
        return str(code)


class ResumedServer(_Resumed):
    """Server side: built from the parsed ClientHello and the PAC-Key opened from its ticket."""

    is_server = True

    def __init__(self, hello: ClientHello, pac_key: bytes) -> None:
        super().__init__()
        suite = next((s for s in _PREFERENCE if s in hello.cipher_suites), None)
        if suite is None:
            raise TlsFailure(
                "no AES-CBC-SHA cipher suite offered", AlertDescription.handshake_failure
            )
        if not hello.offers_tls12():
            raise TlsFailure("client does not offer TLS 1.2", AlertDescription.protocol_version)
        self._suite = suite
        self._client_random = hello.random
        self._server_random = os.urandom(32)
        self._derive(pac_key)
        extensions = b""
        if hello.secure_renegotiation:
            extensions = struct.pack("!HHB", EXT_RENEGOTIATION_INFO, 1, 0)
        body = (
            struct.pack("!H", TLS12)
            + self._server_random
            + bytes([len(hello.session_id)])
            + hello.session_id
            + struct.pack("!HB", suite, 0)
            + (struct.pack("!H", len(extensions)) + extensions if extensions else b"")
        )
        server_hello = _handshake(HT_SERVER_HELLO, body)
        self._transcript += hello.raw + server_hello
        finished = _handshake(HT_FINISHED, self._finished(b"server finished"))
        self._transcript += finished
        self._write = self._server_state
        self._out += (
            _record(CT_HANDSHAKE, server_hello)
            + _record(CT_CHANGE_CIPHER_SPEC, b"\x01")
            + self._write.seal(CT_HANDSHAKE, finished)
        )

    def receive(self, data: bytes) -> None:
        if self._closed:
            raise TlsFailure(self.failure_reason or "TLS connection closed")
        records = self._decrypt_records(data)
        if not self._complete:
            if self._read is None or not records or records[0][0] != CT_HANDSHAKE:
                raise self._fail(
                    "expected ChangeCipherSpec and Finished from the client",
                    AlertDescription.unexpected_message,
                )
            _, message = records.pop(0)
            expected = _handshake(HT_FINISHED, self._finished(b"client finished"))
            if not hmac.compare_digest(message, expected):
                raise self._fail(
                    "client Finished does not verify (PAC-Key mismatch?)",
                    AlertDescription.decrypt_error,
                )
            self._complete = True
        self._app_records(records)


class ResumedClient(_Resumed):
    """Peer side: sends a ClientHello carrying ``ticket`` (the PAC-Opaque TLV).

    A server that cannot open the PAC answers with a full handshake instead (RFC 4851
    3.2.2): Certificate rather than ChangeCipherSpec after ServerHello (a ServerHello that
    echoes our session ID promises resumption).  With ``verify_chain`` (the certificate
    checks of a full handshake, raising :class:`TlsFailure`) the client then goes on with
    it: the offered suites use RSA key transport, so the flight is Certificate,
    ServerHelloDone from the server and ClientKeyExchange, ChangeCipherSpec, Finished from us
    (an empty Certificate when one is requested), then the server's optional
    NewSessionTicket, ChangeCipherSpec and Finished.  Afterwards :attr:`session_reused` is
    False and the tunnel keys come from that master secret, as after any full handshake.
    Without ``verify_chain`` a full handshake is refused.
    """

    is_server = False

    def __init__(
        self,
        ticket: bytes,
        pac_key: bytes,
        verify_chain: Callable[[list[x509.Certificate]], None] | None = None,
    ) -> None:
        super().__init__()
        self._pac_key = pac_key
        self._verify_chain = verify_chain
        self._client_random = os.urandom(32)
        self._session_id = os.urandom(32)
        suites = b"".join(struct.pack("!H", s) for s in _PREFERENCE[:2])
        suites += struct.pack("!H", SCSV_RENEGOTIATION)
        sigalgs = b"".join(struct.pack("!H", s) for s in _SIGNATURE_ALGORITHMS)
        extensions = (
            struct.pack("!HHH", EXT_SIGNATURE_ALGORITHMS, 2 + len(sigalgs), len(sigalgs))
            + sigalgs
            + struct.pack("!HH", EXT_SESSION_TICKET, len(ticket))
            + ticket
        )
        body = (
            struct.pack("!H", TLS12)
            + self._client_random
            + bytes([32])
            + self._session_id
            + struct.pack("!H", len(suites))
            + suites
            + b"\x01\x00"
            + struct.pack("!H", len(extensions))
            + extensions
        )
        hello = _handshake(HT_CLIENT_HELLO, body)
        self._transcript += hello
        self._out += _record(CT_HANDSHAKE, hello)
        self._state = "server_hello"
        self._full = False
        self._echoed = False
        self._handshake_in = bytearray()
        self._server_key: rsa.RSAPublicKey | None = None
        self._certificate_requested = False

    @property
    def session_reused(self) -> bool:
        return not self._full

    def receive(self, data: bytes) -> None:
        if self._closed:
            raise TlsFailure(self.failure_reason or "TLS connection closed")
        try:
            records = _records(data)
        except TlsFailure as exc:
            raise self._fail(exc.reason, AlertDescription.decode_error) from None
        for kind, body in records:
            if kind == CT_CHANGE_CIPHER_SPEC:
                if self._state == "resumed_or_full" and not self._handshake_in:
                    # A fresh session ID, then ChangeCipherSpec: the PAC was accepted.
                    self._derive(self._pac_key)
                    self._state = "change_cipher_spec"
                if body != b"\x01" or self._state != "change_cipher_spec" or self._handshake_in:
                    raise self._fail(
                        "unexpected ChangeCipherSpec", AlertDescription.unexpected_message
                    )
                self._read = self._server_state
                self._state = "finished"
                continue
            body = self._open_record(kind, body)
            if kind == CT_HANDSHAKE and not self._complete:
                self._handshake_in += body
                self._handshake_messages()
            elif kind == CT_APPLICATION_DATA and self._complete:
                self._app_in += body
            else:
                raise self._fail(
                    f"TLS record type {kind} "
                    + ("after the handshake" if self._complete else "during the handshake"),
                    AlertDescription.unexpected_message,
                )

    def _handshake_messages(self) -> None:
        buf = self._handshake_in
        while len(buf) >= 4:
            length = int.from_bytes(buf[1:4])
            if len(buf) < 4 + length:
                return
            kind, message = buf[0], bytes(buf[: 4 + length])
            del buf[: 4 + length]
            self._handshake_message(kind, message)

    def _handshake_message(self, kind: int, message: bytes) -> None:
        body = message[4:]
        state = self._state
        if state == "server_hello" and kind == HT_SERVER_HELLO:
            self._server_hello(body)
            self._transcript += message
            if self._echoed:
                self._derive(self._pac_key)
                self._state = "change_cipher_spec"
            else:
                self._state = "resumed_or_full"
        elif state == "resumed_or_full":
            # A fresh session ID, then a handshake message: a full handshake.
            if self._verify_chain is None:
                raise self._fail(
                    "server started a full handshake instead of resuming with the PAC "
                    "(server-authenticated provisioning is off)",
                    AlertDescription.handshake_failure,
                )
            self._full = True
            self._state = "certificate"
            self._handshake_message(kind, message)
        elif state == "certificate" and kind == HT_CERTIFICATE:
            self._certificate(body)
            self._transcript += message
            self._state = "server_hello_done"
        elif state == "server_hello_done" and kind == HT_CERTIFICATE_REQUEST:
            self._certificate_requested = True
            self._transcript += message
        elif state == "server_hello_done" and kind == HT_SERVER_HELLO_DONE:
            if body:
                raise self._fail("ServerHelloDone with a body", AlertDescription.decode_error)
            self._transcript += message
            self._key_exchange()
            self._state = "change_cipher_spec"
        elif state == "change_cipher_spec" and self._full and kind == HT_NEW_SESSION_TICKET:
            self._transcript += message  # a session ticket we have no use for (PACs resume)
        elif state == "finished" and kind == HT_FINISHED:
            expected = _handshake(HT_FINISHED, self._finished(b"server finished"))
            if not hmac.compare_digest(message, expected):
                raise self._fail("server Finished does not verify", AlertDescription.decrypt_error)
            self._transcript += message
            if not self._full:
                finished = _handshake(HT_FINISHED, self._finished(b"client finished"))
                self._write = self._client_state
                self._out += _record(CT_CHANGE_CIPHER_SPEC, b"\x01") + self._write.seal(
                    CT_HANDSHAKE, finished
                )
            self._complete = True
        elif state == "change_cipher_spec" and not self._full:
            raise self._fail(
                "server did not resume with the PAC (no ChangeCipherSpec / Finished)",
                AlertDescription.unexpected_message,
            )
        else:
            raise self._fail(
                f"unexpected handshake message {kind} (waiting for {state.replace('_', ' ')})",
                AlertDescription.unexpected_message,
            )

    def _server_hello(self, hello: bytes) -> None:
        try:
            h = _Reader(hello, "ServerHello")
            if h.u16() != TLS12:
                raise self._fail("server did not choose TLS 1.2", AlertDescription.protocol_version)
            self._server_random = h.take(32)
            session_id = h.vector(1)
            suite = h.u16()
            h.u8()
        except TlsFailure as exc:
            if exc.reason == self.failure_reason:
                raise
            raise self._fail(exc.reason, AlertDescription.decode_error) from None
        if suite not in CBC_SHA_SUITES or suite not in _PREFERENCE[:2]:
            raise self._fail(
                "server chose a suite we did not offer", AlertDescription.illegal_parameter
            )
        self._suite = suite
        self._echoed = session_id == self._session_id

    def _certificate(self, body: bytes) -> None:
        try:
            r = _Reader(body, "Certificate")
            entries = _Reader(r.take(r.u24()), "certificate list")
            if not r.done():
                raise TlsFailure("extra data after the certificate list")
            chain = []
            while not entries.done():
                chain.append(x509.load_der_x509_certificate(entries.take(entries.u24())))
        except (TlsFailure, ValueError) as exc:
            reason = f"malformed Certificate: {exc}"
            raise self._fail(reason, AlertDescription.decode_error) from None
        assert self._verify_chain is not None
        try:
            self._verify_chain(chain)
        except TlsFailure as exc:
            raise self._fail(exc.reason, exc.alert or AlertDescription.bad_certificate) from None
        except Exception as exc:  # a certificate the checks could not even process
            reason = f"server certificate could not be checked: {exc}"
            raise self._fail(reason, AlertDescription.bad_certificate) from None
        key = chain[0].public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise self._fail(
                "the suites offered with a PAC use RSA key transport; the server certificate "
                "has no RSA key",
                AlertDescription.handshake_failure,
            )
        self._server_key = key

    def _key_exchange(self) -> None:
        """ClientKeyExchange (RSA, RFC 5246 7.4.7.1), ChangeCipherSpec, Finished."""
        assert self._server_key is not None
        flight = b""
        if self._certificate_requested:  # we have no certificate for this path: an empty one
            empty = _handshake(HT_CERTIFICATE, b"\x00\x00\x00")
            self._transcript += empty
            flight += _record(CT_HANDSHAKE, empty)
        premaster = struct.pack("!H", TLS12) + os.urandom(46)
        try:
            encrypted = self._server_key.encrypt(premaster, padding.PKCS1v15())
        except ValueError:  # a key too small to carry 48 bytes
            reason = "the server's RSA key is too small for key transport"
            raise self._fail(reason, AlertDescription.handshake_failure) from None
        exchange = _handshake(HT_CLIENT_KEY_EXCHANGE, struct.pack("!H", len(encrypted)) + encrypted)
        self._transcript += exchange
        master = tls12_prf(
            premaster, b"master secret", self._client_random + self._server_random, 48
        )
        self._derive_from_master(master)
        finished = _handshake(HT_FINISHED, self._finished(b"client finished"))
        self._transcript += finished
        self._write = self._client_state
        self._out += (
            flight
            + _record(CT_HANDSHAKE, exchange)
            + _record(CT_CHANGE_CIPHER_SPEC, b"\x01")
            + self._write.seal(CT_HANDSHAKE, finished)
        )
