"""EAP-FAST (EAP type 43, RFC 4851; PAC provisioning RFC 5422), server and peer.

Phase 1 is TLS: a full handshake on pyOpenSSL (:mod:`ike.eap_tls.tls`), or, when the
ClientHello's SessionTicket extension carries a PAC-Opaque that opens, the abbreviated
handshake of :mod:`ike.eap_fast.tls12` with the master secret from the PAC-Key.  A PAC that
does not open (foreign, tampered, expired, retired key) means a full handshake and a new PAC,
never a failure.

Phase 2 exchanges TLVs (:mod:`ike.eap_fast.tlv`).  The server runs inner methods one after
the other in EAP-Payload TLVs: an Identity Request (skipped when the PAC-Opaque names the
user), the authentication method (MS-CHAPv2, GTC, ... in configured order, NAK honoured),
then the posture methods (PT-EAP) handed in by the composition root.  After each method a
Crypto-Binding TLV (with Intermediate-Result, and Result after the last) folds the method's
ISK into the S-IMCK chain (:mod:`ike.eap_fast.keys`); MSK/EMSK come from the last S-IMCK.

Provisioning (RFC 5422): anonymous (ADH cipher suite, MS-CHAPv2 with both challenges from the
TLS key expansion; ends in EAP-Failure after the PAC is acknowledged, as 3.2.3 requires) and
server-authenticated (certificate suite, any inner method; the peer asks with Request-Action +
PAC-Type; ends in EAP-Success with keys).  The server also pushes a new PAC when the peer's
PAC did not open or is within ``pac_refresh`` seconds of expiry.

Inner GTC inside EAP-FAST uses the ``CHALLENGE=`` / ``RESPONSE=<identity>\\0<password>``
framing of Cisco's implementation (as hostapd and wpa_supplicant do); the tunnel adds and
removes it around a plain GTC method.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from ike.eap.method import (
    Decision,
    EapPeerMethod,
    EapServerMethod,
    IdentifierAware,
    PeerMethodFactory,
    ServerMethodFactory,
    Step,
)
from ike.eap.methods.credentials import PasswordLookup
from ike.eap.methods.mschapv2 import MsChapV2PeerMethod, MsChapV2ServerMethod
from ike.eap.packet import (
    EapError,
    EapRequest,
    EapResponse,
    EapType,
    encode_nak,
    parse,
    parse_nak,
)
from ike.eap_fast.keys import (
    KeyChain,
    ProvisioningKeys,
    compound_mac,
    key_block_length,
    session_key_material,
)
from ike.eap_fast.pac import Pac, PacKeyring, PacStore
from ike.eap_fast.tls12 import (
    EXT_SESSION_TICKET,
    ResumedClient,
    ResumedServer,
    parse_client_hello,
)
from ike.eap_fast.tlv import (
    FAST_VERSION,
    CryptoBinding,
    CryptoBindingSubtype,
    ErrorCode,
    PacAttr,
    PacAttrType,
    PacType,
    RequestAction,
    ResultStatus,
    Tlv,
    TlvError,
    TlvType,
    encode_pac_attrs,
    encode_tlvs,
    parse_pac_attrs,
    parse_tlvs,
)
from ike.eap_tls.errors import FramingError, TlsFailure
from ike.eap_tls.framing import Framing, Reply
from ike.eap_tls.keys import EAP_TYPE_FAST
from ike.eap_tls.tls import (
    TlsPeerConfig,
    TlsServerConfig,
    TlsSession,
    TlsVersion,
    verify_server_chain,
)

__all__ = [
    "EapFastPeer",
    "EapFastServer",
    "FastPeerConfig",
    "FastServerConfig",
    "Provisioning",
    "fast_server_factory",
]

log = logging.getLogger(__name__)

WallClock = Callable[[], float]

_ANON_SUITES = "ADH-AES128-SHA"
_AUTH_SUITES = (
    "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    "DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA"
)
# RFC 7919 ffdhe2048, for the anonymous (ADH) provisioning suite.
_FFDHE2048_PEM = b"""-----BEGIN X9.42 DH PARAMETERS-----
MIICDAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAgKCAQB//////////9b8KixRXaVN
V+4rEBOennjsXOLB5xabStTwmyCKMhn95knO5xJNn3y+l/GxsYY67HtA2QFXYjC9
ae+Paur+srCSGfqPr4M3aEKxsqqe9o152quJrz+r5JrMJ4Y4cHNFu/FTRO159/Q5
DvisUJtW85qYVmUnpB08vV4FWMFZkn2w6IRUpdlkcf3ctW1bsGv6NA6noVHvHKb6
Vyt287G5XYyFg9PkdwU2uE8BfnDm+/F2YBoCZpQaF7DIuX9OdMLB/8cniRl3eUDB
4f8djaY31rmd2v5eF2EQAuLHeMG+i0HZY3mlE2DZd/1ENaEcMJQuS///////////
-----END X9.42 DH PARAMETERS-----
"""


class Provisioning(enum.Flag):
    """PAC provisioning modes (RFC 5422 3.2): as wpa_supplicant's ``fast_provisioning``
    bits, 1 = anonymous, 2 = server-authenticated."""

    NONE = 0
    ANONYMOUS = 1
    AUTHENTICATED = 2
    BOTH = 3


def _cipher_list(modes: Provisioning) -> bytes:
    parts = []
    if Provisioning.ANONYMOUS in modes:
        parts.append(_ANON_SUITES)
    parts.append(_AUTH_SUITES)
    return (":".join(parts) + ":@SECLEVEL=0").encode()


def _fast_context(ctx: SSL.Context, modes: Provisioning, *, server: bool) -> None:
    """Adapt an ``ike.eap_tls`` context to EAP-FAST: TLS 1.2, the CBC-SHA suites EAP-FAST
    peers offer, ADH (security level 0, DH parameters) for anonymous provisioning."""
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(_cipher_list(modes))
    ctx.set_options(SSL.OP_NO_TICKET)
    if server and Provisioning.ANONYMOUS in modes:
        bio = _lib.BIO_new_mem_buf(_FFDHE2048_PEM, len(_FFDHE2048_PEM))
        dh = _lib.PEM_read_bio_DHparams(bio, _ffi.NULL, _ffi.NULL, _ffi.NULL)
        _lib.BIO_free(bio)
        if dh == _ffi.NULL:  # pragma: no cover - constant parameters
            raise RuntimeError("could not load the ADH parameters")
        _lib.SSL_CTX_set_tmp_dh(ctx._context, dh)
        _lib.DH_free(dh)


class _Channel(Protocol):
    failure_reason: str | None

    @property
    def handshake_complete(self) -> bool: ...

    @property
    def session_reused(self) -> bool: ...

    def receive(self, data: bytes) -> None: ...

    def data_to_send(self) -> bytes: ...

    def read_application_data(self) -> bytes: ...

    def write_application_data(self, data: bytes) -> None: ...

    def cipher_name(self) -> str | None: ...

    def client_random(self) -> bytes: ...

    def server_random(self) -> bytes: ...

    def master_key(self) -> bytes: ...


def _tunnel_keys(channel: _Channel, anonymous: bool) -> tuple[bytes, ProvisioningKeys | None]:
    """(session_key_seed, provisioning keys for ADH) from the TLS master secret."""
    cipher = channel.cipher_name() or ""
    material = session_key_material(
        channel.master_key(),
        channel.server_random(),
        channel.client_random(),
        key_block_length(cipher),
        72 if anonymous else 40,
    )
    if anonymous:
        keys = ProvisioningKeys.from_material(material)
        return keys.session_key_seed, keys
    return material, None


def _isk(method: EapServerMethod | EapPeerMethod) -> bytes | None:
    """ISK of a finished inner method (RFC 4851 5.2): EAP-FAST's MS-CHAPv2 ISK is the
    server's Send key then Recv key; other methods give their MSK's first 32 bytes."""
    inner = method.inner if isinstance(method, _GtcServer | _GtcPeer) else method
    if isinstance(inner, MsChapV2ServerMethod | MsChapV2PeerMethod):
        keys = inner.master_keys
        return keys.fast_isk if keys is not None else None
    msk = inner.msk()
    return msk[:32] if msk is not None else None


class _GtcServer:
    """GTC inside EAP-FAST: ``CHALLENGE=`` prompt, ``RESPONSE=<identity>\\0<password>``."""

    def __init__(self, inner: EapServerMethod, identity: bytes) -> None:
        self.inner = inner
        self._identity = identity
        self._reason: str | None = None

    @property
    def eap_type(self) -> int:
        return EapType.GTC

    def start(self) -> bytes:
        return b"CHALLENGE=" + self.inner.start()

    def receive(self, type_data: bytes) -> Step:
        if type_data.startswith(b"RESPONSE="):
            name, sep, answer = type_data[9:].partition(b"\x00")
            if not sep or name != self._identity:
                self._reason = "EAP-GTC RESPONSE= names another user"
                return Step(None, Decision.FAILURE)
            type_data = answer
        return self.inner.receive(type_data)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._reason or self.inner.failure_reason


class _GtcPeer:
    def __init__(self, inner: EapPeerMethod, identity: bytes) -> None:
        self.inner = inner
        self._identity = identity

    @property
    def eap_type(self) -> int:
        return EapType.GTC

    def receive(self, type_data: bytes) -> Step:
        prompt = type_data[10:] if type_data.startswith(b"CHALLENGE=") else type_data
        step = self.inner.receive(prompt)
        if step.reply is None:
            return step
        return Step(b"RESPONSE=" + self._identity + b"\x00" + step.reply, step.decision)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self.inner.failure_reason


class Phase(enum.Enum):
    """One table for both roles (every change goes through ``_set_phase``)."""

    IDLE = "idle"
    HELLO = "hello"
    HANDSHAKE = "handshake"
    WAIT_ACK = "wait-ack"
    INNER = "inner"
    CRYPTO_BINDING = "crypto-binding"
    PAC_SENT = "pac-sent"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.HELLO, Phase.FAILED}),
    Phase.HELLO: frozenset({Phase.HANDSHAKE, Phase.FAILED}),
    Phase.HANDSHAKE: frozenset({Phase.WAIT_ACK, Phase.INNER, Phase.FAILED}),
    Phase.WAIT_ACK: frozenset({Phase.INNER, Phase.FAILED}),
    Phase.INNER: frozenset({Phase.CRYPTO_BINDING, Phase.INNER, Phase.DONE, Phase.FAILED}),
    Phase.CRYPTO_BINDING: frozenset(
        {Phase.INNER, Phase.PAC_SENT, Phase.DONE, Phase.FAILED, Phase.CRYPTO_BINDING}
    ),
    Phase.PAC_SENT: frozenset({Phase.DONE, Phase.FAILED}),
    Phase.DONE: frozenset({Phase.FAILED, Phase.INNER, Phase.PAC_SENT}),
    Phase.FAILED: frozenset(),
}


class _Base:
    role = "server"

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.phase = Phase.IDLE
        self._failure_reason: str | None = None
        self._pending: Decision | None = None
        self._last_flags = 0
        self._channel: _Channel | None = None
        self._keys: tuple[bytes, bytes] | None = None
        self.version: int | None = None
        self.resumed = False
        self.anonymous = False

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_FAST

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason

    def msk(self) -> bytes | None:
        return self._keys[0] if self._keys is not None else None

    def _binding_mac(self, cmk: bytes, data: bytes) -> bytes:
        """The Compound MAC this side sends (one place, so that tests can tamper with it)."""
        return compound_mac(cmk, data)

    def emsk(self) -> bytes | None:
        return self._keys[1] if self._keys is not None else None

    @property
    def session_id(self) -> bytes | None:
        """EAP Session-Id once keys exist: Type || client_random || server_random (RFC 5247;
        what hostapd and wpa_supplicant derive for EAP-FAST)."""
        if self._keys is None or self._channel is None:
            return None
        return (
            bytes([EAP_TYPE_FAST]) + self._channel.client_random() + self._channel.server_random()
        )

    @property
    def channel(self) -> _Channel:
        if self._channel is None:
            raise TlsFailure("TLS not started")
        return self._channel

    def _set_phase(self, new: Phase) -> None:
        if new is self.phase:
            return
        if new not in TRANSITIONS[self.phase]:
            raise FramingError(f"EAP-FAST: illegal phase change {self.phase.value} -> {new.value}")
        log.debug("EAP-FAST %s: %s -> %s", self.role, self.phase.value, new.value)
        self.phase = new

    def _fail(self, reason: str, reply: bytes | None = None) -> Step:
        if self._failure_reason is None:
            self._failure_reason = reason
        log.warning("EAP-FAST %s failed: %s", self.role, self._failure_reason)
        if self.phase is not Phase.FAILED:
            self._set_phase(Phase.FAILED)
        self._keys = None
        return Step(reply, Decision.FAILURE)

    def _frame(self, out: bytes, decision: Decision = Decision.CONTINUE) -> Step:
        first = self.framing.send(out)
        if self.framing.sending and decision is not Decision.CONTINUE:
            self._pending = decision
            return Step(first, Decision.CONTINUE)
        return Step(first, decision)

    def _send_tlvs(self, tlvs: list[Tlv], decision: Decision = Decision.CONTINUE) -> Step:
        self.channel.write_application_data(encode_tlvs(tlvs))
        return self._frame(self.channel.data_to_send(), decision)

    def _tls_failure(self, exc: TlsFailure) -> Step:
        out = self._channel.data_to_send() if self._channel is not None else b""
        reply = None
        if out:
            try:
                reply = self.framing.send(out)
            except FramingError:
                reply = None
        reason = (self._channel.failure_reason if self._channel else None) or exc.reason
        return self._fail(f"EAP-FAST TLS: {reason}", reply)

    def _framing(self, type_data: bytes) -> Step | bytes:
        """Reassembled TLS bytes of a message, or the Step framing answers by itself."""
        if self.phase in (Phase.FAILED,):
            return self._fail("EAP-FAST: message after the method ended")
        try:
            incoming = self.framing.receive(type_data)
        except FramingError as exc:
            return self._fail(f"EAP-FAST framing error: {exc}")
        if isinstance(incoming, Reply):
            decision = Decision.CONTINUE
            if not self.framing.sending and self._pending is not None:
                decision, self._pending = self._pending, None
            return Step(incoming.type_data, decision)
        self._last_flags = incoming.flags
        return incoming.data

    def _decrypt(self, data: bytes) -> list[Tlv] | Step:
        try:
            if data:
                self.channel.receive(data)
            app = self.channel.read_application_data()
        except TlsFailure as exc:
            return self._tls_failure(exc)
        try:
            return parse_tlvs(app)
        except TlvError as exc:
            return self._fail(f"EAP-FAST: malformed phase 2 TLVs: {exc}")


def _find(tlvs: list[Tlv], kind: TlvType) -> Tlv | None:
    found = [t for t in tlvs if t.tlv_type == kind]
    if len(found) > 1 and kind is not TlvType.EAP_PAYLOAD:
        raise TlvError(f"TLV {kind.name} repeated")
    return found[0] if found else None


_KNOWN = frozenset(t.value for t in TlvType)
_HANDLED = frozenset(
    {
        TlvType.RESULT,
        TlvType.NAK,
        TlvType.ERROR,
        TlvType.EAP_PAYLOAD,
        TlvType.INTERMEDIATE_RESULT,
        TlvType.PAC,
        TlvType.CRYPTO_BINDING,
        TlvType.REQUEST_ACTION,
    }
)


def _unsupported_mandatory(tlvs: list[Tlv]) -> Tlv | None:
    for tlv in tlvs:
        if tlv.mandatory and tlv.tlv_type not in _HANDLED:
            return tlv
    return None


def _refusal(tlvs: list[Tlv]) -> str | None:
    """A NAK TLV (4.2.3) or Error TLV (4.2.4) from the other side, as a log phrase."""
    nak = _find(tlvs, TlvType.NAK)
    if nak is not None:
        if len(nak.value) < 6:
            raise TlvError("NAK TLV shorter than 6 bytes")
        vendor, kind = struct.unpack_from("!IH", nak.value)
        return f"refused TLV {kind} (vendor {vendor}) with a NAK TLV"
    error = _find(tlvs, TlvType.ERROR)
    if error is not None:
        if len(error.value) != 4:
            raise TlvError("Error TLV is not 4 bytes")
        code = struct.unpack("!I", error.value)[0]
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = str(code)
        return f"sent Error TLV {name}"
    return None


def _pac_type_requested(tlvs: list[Tlv]) -> bool:
    """Request-Action (Process-TLV) + PAC TLV holding PAC-Type Tunnel (RFC 5422 3.4)."""
    action = _find(tlvs, TlvType.REQUEST_ACTION)
    pac = _find(tlvs, TlvType.PAC)
    if action is None or pac is None or action.u16() != RequestAction.PROCESS_TLV:
        return False
    attrs = parse_pac_attrs(pac.value)
    return any(
        a.attr_type == PacAttrType.PAC_TYPE and a.value == struct.pack("!H", PacType.TUNNEL)
        for a in attrs
    )


# ------------------------------------------------------------------------------------------
# Server
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FastServerConfig:
    """EAP-FAST authenticator settings.

    ``tls``: certificate and sizes (its OpenSSL context is adapted to EAP-FAST: TLS 1.2, the
    CBC-SHA suites, ADH when anonymous provisioning is on).  ``a_id`` (Authority-ID, sent in
    the Start and bound into every PAC-Opaque) and ``a_id_info`` (readable name).
    ``eap_methods``: inner authentication methods in order; ``posture``: methods chained
    after authentication (PT-EAP).  ``password_lookup`` serves the MS-CHAPv2 of anonymous
    provisioning (whose challenges come from TLS).  ``keyring`` seals PAC-Opaques; a PAC is
    valid ``keyring.pac_lifetime`` seconds and refreshed when fewer than
    :attr:`refresh_window` seconds remain.  ``clock``: wall clock in Unix seconds.
    """

    tls: TlsServerConfig
    a_id: bytes
    eap_methods: tuple[tuple[int, ServerMethodFactory], ...]
    a_id_info: bytes = b"nea-gateway EAP-FAST"
    posture: tuple[tuple[int, ServerMethodFactory], ...] = ()
    provisioning: Provisioning = Provisioning.BOTH
    password_lookup: PasswordLookup | None = None
    keyring: PacKeyring = field(default_factory=PacKeyring)
    pac_refresh: int | None = None
    """Seconds before expiry from which a resumed PAC is replaced (default: a tenth of
    the PAC lifetime, at most seven days)."""
    clock: WallClock = time.time

    @property
    def refresh_window(self) -> int:
        if self.pac_refresh is not None:
            return self.pac_refresh
        return min(7 * 86400, self.keyring.pac_lifetime // 10)

    def __post_init__(self) -> None:
        if not 1 <= len(self.a_id) <= 0xFFFF:
            raise ValueError("EAP-FAST A-ID must be 1..65535 bytes")
        if not self.eap_methods:
            raise ValueError("EAP-FAST needs at least one inner method")
        if self.tls.min_version > TlsVersion.TLS1_2:
            raise ValueError("EAP-FAST runs over TLS 1.2 (RFC 4851): min_version must allow it")
        if Provisioning.ANONYMOUS in self.provisioning and self.password_lookup is None:
            raise ValueError("anonymous provisioning needs password_lookup (MS-CHAPv2)")
        _fast_context(self.tls.context(), self.provisioning, server=True)
        if Provisioning.AUTHENTICATED in self.provisioning:
            key = serialization.load_pem_private_key(self.tls.key_pem, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                # wpa_supplicant's provisioning suites (DHE-RSA / RSA with AES-CBC) need RSA.
                log.warning(
                    "EAP-FAST: authenticated provisioning with a non-RSA certificate: "
                    "wpa_supplicant and Cisco peers offer RSA suites only"
                )


class EapFastServer(_Base):
    """EAP-FAST authenticator: ``EapFastServer(config, identity)``; an EapServerMethod."""

    def __init__(self, config: FastServerConfig, identity: bytes) -> None:
        super().__init__(
            Framing(
                version=FAST_VERSION,
                fragment_size=config.tls.fragment_size,
                max_message=config.tls.max_message,
            )
        )
        self.config = config
        self.identity = identity
        self.inner_identity: bytes | None = None
        self._chain: KeyChain | None = None
        self._prov: ProvisioningKeys | None = None
        self._inner_id = secrets.randbelow(256)
        self._method: EapServerMethod | None = None
        self._method_type = 0
        self._auth_done = False
        self._queue: list[tuple[int, ServerMethodFactory]] = []
        self._tried: set[int] = set()
        self._seq = 0
        self._final = False
        self._nonce = b""
        self._send_new_pac = False
        self._pac_expires: int | None = None
        self.pac_issued = False
        self.completed_methods: list[int] = []
        self._ran: list[EapServerMethod] = []

    @property
    def inner_methods(self) -> tuple[EapServerMethod, ...]:
        """Every inner method instance started, in order (the composition root reads a
        posture method's verdict here)."""
        return tuple(self._ran)

    def start(self) -> bytes:
        self._set_phase(Phase.HELLO)
        a_id = PacAttr(PacAttrType.A_ID, self.config.a_id).to_bytes()
        return self.framing.start(a_id)

    def receive(self, type_data: bytes) -> Step:
        if self.phase is Phase.IDLE:
            return self._fail("EAP-FAST: response before start()")
        if self.phase is Phase.DONE:
            return self._fail("EAP-FAST: message after the method ended")
        if self.version is None and type_data:
            peer_version = type_data[0] & 0x07
            if peer_version != FAST_VERSION:
                # RFC 4851 3.1: the peer answers with the version it uses, at most ours.
                return self._fail(f"EAP-FAST: peer chose version {peer_version}, we speak 1")
            self.version = FAST_VERSION
        got = self._framing(type_data)
        if isinstance(got, Step):
            return got
        if self.phase is Phase.HELLO:
            return self._hello(got)
        if self.phase is Phase.HANDSHAKE:
            return self._handshake(got)
        if self.phase is Phase.WAIT_ACK:
            if got:
                return self._fail("EAP-FAST: data instead of the acknowledgement of Finished")
            self._set_phase(Phase.INNER)
            return self._start_phase2()
        tlvs = self._decrypt(got)
        if isinstance(tlvs, Step):
            return tlvs
        try:
            return self._phase2(tlvs)
        except TlvError as exc:
            return self._fail_tlv(f"EAP-FAST: malformed TLV: {exc}", exc.code)
        except EapError as exc:
            return self._fail_tlv(f"EAP-FAST: malformed inner EAP packet: {exc}")

    # phase 1 -------------------------------------------------------------------------------
    def _hello(self, data: bytes) -> Step:
        if not data:
            return self._fail("EAP-FAST: empty response instead of a ClientHello")
        self._set_phase(Phase.HANDSHAKE)
        hello = parse_client_hello(data)
        ticket = hello.extension(EXT_SESSION_TICKET) if hello is not None else None
        if hello is not None and ticket:
            opened = None
            if len(ticket) >= 4 and struct.unpack_from("!H", ticket)[0] == PacAttrType.PAC_OPAQUE:
                # Trust the PAC-Opaque TLV length (Cisco peers may zero-pad the extension).
                length = struct.unpack_from("!H", ticket, 2)[0]
                if 4 + length <= len(ticket):
                    now = self.config.clock()
                    opened = self.config.keyring.open(ticket[4 : 4 + length], self.config.a_id, now)
            if opened is not None:
                try:
                    self._channel = ResumedServer(hello, opened.pac_key)
                except TlsFailure as exc:
                    log.info("EAP-FAST: PAC opened but no resumption possible: %s", exc.reason)
                else:
                    self.resumed = True
                    self.inner_identity = opened.identity or None
                    self._pac_expires = opened.expires
                    if opened.remaining(self.config.clock()) < self.config.refresh_window:
                        self._send_new_pac = True
                    log.info(
                        "EAP-FAST: PAC-Opaque accepted (key %08x), abbreviated handshake",
                        opened.key_id,
                    )
                    return self._frame(self.channel.data_to_send())
            else:
                log.info("EAP-FAST: PAC-Opaque not usable, full TLS handshake and a new PAC")
                self._send_new_pac = True
        self._channel = TlsSession(
            self.config.tls, identity=self.identity.decode("utf-8", "replace")
        )
        return self._handshake(data)

    def _handshake(self, data: bytes) -> Step:
        if not data:
            return self._fail("EAP-FAST: empty response during the TLS handshake")
        try:
            self.channel.receive(data)
        except TlsFailure as exc:
            return self._tls_failure(exc)
        out = self.channel.data_to_send()
        if not self.channel.handshake_complete:
            if not out:
                return self._fail("EAP-FAST: TLS produced nothing to send")
            return self._frame(out)
        cipher = self.channel.cipher_name() or ""
        self.anonymous = cipher.startswith("ADH-")
        if self.anonymous and Provisioning.ANONYMOUS not in self.config.provisioning:
            return self._fail("EAP-FAST: anonymous provisioning is disabled")
        try:
            seed, self._prov = _tunnel_keys(self.channel, self.anonymous)
        except (ValueError, TlsFailure) as exc:
            return self._fail(f"EAP-FAST: key derivation failed: {exc}")
        self._chain = KeyChain(seed)
        log.info(
            "EAP-FAST phase 1 complete: %s%s%s",
            cipher,
            " (abbreviated handshake with PAC)" if self.resumed else "",
            " (anonymous provisioning)" if self.anonymous else "",
        )
        if out:
            # Full handshake: our Finished goes out alone; phase 2 starts after the ACK.
            self._set_phase(Phase.WAIT_ACK)
            return self._frame(out)
        self._set_phase(Phase.INNER)
        return self._start_phase2()

    # phase 2 -------------------------------------------------------------------------------
    def _eap_request(self, eap_type: int, data: bytes) -> Tlv:
        self._inner_id = (self._inner_id + 1) % 256
        if isinstance(self._method, IdentifierAware):
            self._method.set_identifier(self._inner_id)
        return Tlv.eap_payload(EapRequest(self._inner_id, eap_type, data).to_bytes())

    def _start_phase2(self) -> Step:
        if self.inner_identity is not None:
            first = self._begin_auth(None)
            if isinstance(first, Step):
                return first
            return self._send_tlvs([first])
        self._method = None
        self._method_type = EapType.IDENTITY
        return self._send_tlvs([self._eap_request(EapType.IDENTITY, b"")])

    def _make(self, eap_type: int, factory: ServerMethodFactory | None) -> EapServerMethod:
        assert self.inner_identity is not None
        if factory is None:
            assert self._prov is not None and self.config.password_lookup is not None
            return MsChapV2ServerMethod(
                self.inner_identity,
                self.config.password_lookup,
                challenge=self._prov.server_challenge,
                peer_challenge=self._prov.client_challenge,
            )
        method = factory(self.inner_identity)
        if eap_type == EapType.GTC:
            return _GtcServer(method, self.inner_identity)
        return method

    def _begin_auth(self, allowed: list[int] | None) -> Tlv | Step:
        """The first Request of the next authentication method (``allowed``: from a NAK)."""
        if self.anonymous:
            candidates: list[tuple[int, ServerMethodFactory | None]] = [(EapType.MSCHAPV2, None)]
        else:
            candidates = list(self.config.eap_methods)
        for eap_type, factory in candidates:
            if eap_type in self._tried or (allowed is not None and eap_type not in allowed):
                continue
            self._tried.add(eap_type)
            return self._start_method(eap_type, factory)
        return self._fail_result("EAP-FAST: no inner method acceptable to the peer")

    def _start_method(self, eap_type: int, factory: ServerMethodFactory | None) -> Tlv:
        self._method = self._make(eap_type, factory)
        self._ran.append(self._method)
        self._method_type = eap_type
        log.debug("EAP-FAST inner method %d for %r", eap_type, self.inner_identity)
        return self._eap_request(eap_type, self._method.start())

    def _fail_result(self, reason: str, extra: list[Tlv] | None = None) -> Step:
        """Fail with a Result TLV (failure) the peer can read before EAP-Failure."""
        self._failure_reason = self._failure_reason or reason
        try:
            self.channel.write_application_data(
                encode_tlvs([*(extra or []), Tlv.result(ResultStatus.FAILURE)])
            )
            reply = self.framing.send(self.channel.data_to_send())
        except (TlsFailure, FramingError):
            reply = None
        return self._fail(reason, reply)

    def _fail_tlv(self, reason: str, code: ErrorCode = TlvError.code) -> Step:
        return self._fail_result(reason, [Tlv.error(code)])

    def _phase2(self, tlvs: list[Tlv]) -> Step:
        unknown = _unsupported_mandatory(tlvs)
        if unknown is not None:
            return self._fail_result(
                f"EAP-FAST: unsupported mandatory TLV {unknown.tlv_type}",
                [Tlv.nak(0, unknown.tlv_type)],
            )
        result = _find(tlvs, TlvType.RESULT)
        if result is not None and result.status() is ResultStatus.FAILURE:
            return self._fail("EAP-FAST: peer reported failure in the Result TLV")
        refused = _refusal(tlvs)
        if refused is not None:
            return self._fail_result(f"EAP-FAST: peer {refused}")
        if self.phase is Phase.PAC_SENT:
            return self._pac_ack(tlvs)
        if self.phase is Phase.CRYPTO_BINDING:
            step = self._binding_response(tlvs)
            if step is not None:
                return step
        payload = _find(tlvs, TlvType.EAP_PAYLOAD)
        if payload is None:
            return self._fail_tlv("EAP-FAST: expected an EAP-Payload TLV")
        return self._inner_response(payload.value)

    def _inner_response(self, packet: bytes) -> Step:
        pkt = parse(packet)
        if not isinstance(pkt, EapResponse) or pkt.identifier != self._inner_id:
            return self._fail_tlv("EAP-FAST: inner packet is not the Response to our Request")
        if self._method_type == EapType.IDENTITY:
            if pkt.eap_type != EapType.IDENTITY:
                return self._fail_tlv("EAP-FAST: expected an inner Identity Response")
            self.inner_identity = pkt.type_data
            first = self._begin_auth(None)
            return first if isinstance(first, Step) else self._send_tlvs([first])
        if pkt.eap_type == EapType.NAK and not self._auth_done:
            first = self._begin_auth(list(parse_nak(pkt.type_data)))
            return first if isinstance(first, Step) else self._send_tlvs([first])
        if pkt.eap_type != self._method_type or self._method is None:
            return self._fail_result(
                f"EAP-FAST: inner Response of type {pkt.eap_type}, expected {self._method_type}"
            )
        step = self._method.receive(pkt.type_data)
        if step.decision is Decision.CONTINUE:
            if step.reply is None:
                return self._fail_result("EAP-FAST: inner method stalled")
            return self._send_tlvs([self._eap_request(self._method_type, step.reply)])
        if step.decision is Decision.FAILURE:
            return self._fail_result(
                f"EAP-FAST inner method {self._method_type} failed: {self._method.failure_reason}"
            )
        return self._method_succeeded()

    def _method_succeeded(self) -> Step:
        assert self._method is not None and self._chain is not None
        self.completed_methods.append(self._method_type)
        self._chain.advance(_isk(self._method))
        self._seq += 1
        if not self._auth_done:
            self._auth_done = True
            self._queue = list(self.config.posture)
        next_request: Tlv | None = None
        if self._queue:
            eap_type, factory = self._queue.pop(0)
            next_request = self._start_method(eap_type, factory)
        else:
            self._method = None
        self._final = not (self.anonymous or self._send_new_pac or next_request is not None)
        tlvs: list[Tlv] = []
        if not self._final or self._seq > 1:
            tlvs.append(Tlv.intermediate_result(ResultStatus.SUCCESS))
        if self._final:
            tlvs.append(Tlv.result(ResultStatus.SUCCESS))
        nonce = bytearray(os.urandom(32))
        nonce[31] &= 0xFE
        self._nonce = bytes(nonce)
        binding = CryptoBinding(
            FAST_VERSION,
            self.version or FAST_VERSION,
            CryptoBindingSubtype.REQUEST,
            self._nonce,
            b"\x00" * 20,
        )
        assert self._chain.cmk is not None
        mac = self._binding_mac(self._chain.cmk, binding.mac_input())
        tlvs.append(binding.with_mac(mac).to_tlv())
        if next_request is not None:
            tlvs.append(next_request)
        self._set_phase(Phase.CRYPTO_BINDING)
        return self._send_tlvs(tlvs)

    def _binding_response(self, tlvs: list[Tlv]) -> Step | None:
        """Check the peer's Crypto-Binding; None when an inner method continues."""
        tlv = _find(tlvs, TlvType.CRYPTO_BINDING)
        if tlv is None:
            return self._fail_result("EAP-FAST: no Crypto-Binding TLV in the response")
        result = _find(tlvs, TlvType.RESULT)
        iresult = _find(tlvs, TlvType.INTERMEDIATE_RESULT)
        if self._final and (result is None or result.status() is not ResultStatus.SUCCESS):
            return self._fail_result("EAP-FAST: Crypto-Binding without a success Result TLV")
        if not self._final and (iresult is None or iresult.status() is not ResultStatus.SUCCESS):
            return self._fail_result(
                "EAP-FAST: Crypto-Binding without a success Intermediate-Result TLV"
            )
        binding = CryptoBinding.parse(tlv.value)
        if (
            binding.version != FAST_VERSION
            or binding.received_version != (self.version or FAST_VERSION)
            or binding.subtype != CryptoBindingSubtype.RESPONSE
        ):
            return self._fail_result("EAP-FAST: Crypto-Binding version or subtype wrong")
        expected_nonce = self._nonce[:31] + bytes([self._nonce[31] | 1])
        if not hmac.compare_digest(binding.nonce, expected_nonce):
            return self._fail_result("EAP-FAST: Crypto-Binding nonce does not answer ours")
        assert self._chain is not None and self._chain.cmk is not None
        mac = compound_mac(self._chain.cmk, binding.mac_input())
        if not hmac.compare_digest(mac, binding.compound_mac):
            return self._fail_result(
                "EAP-FAST: Compound MAC mismatch (tunnel not bound to the inner method)",
                [Tlv.error(ErrorCode.TUNNEL_COMPROMISE)],
            )
        requested = _pac_type_requested(tlvs)
        if (
            requested
            and not self.anonymous
            and (Provisioning.AUTHENTICATED not in self.config.provisioning)
        ):
            return self._fail_result("EAP-FAST: authenticated provisioning is disabled")
        if self._method is not None:
            # The next method's first Request went with the binding; its answer follows.
            self._set_phase(Phase.INNER)
            if _find(tlvs, TlvType.EAP_PAYLOAD) is None:
                return self._fail_tlv("EAP-FAST: no answer to the next inner method")
            return None
        if self.anonymous or requested or self._send_new_pac:
            return self._send_pac()
        return self._succeed()

    def _send_pac(self) -> Step:
        identity = self.inner_identity or b""
        now = self.config.clock()
        expires = int(now) + self.config.keyring.pac_lifetime
        pac_key = os.urandom(32)
        opaque = self.config.keyring.seal(pac_key, identity, expires, self.config.a_id)
        info = [
            PacAttr(PacAttrType.PAC_LIFETIME, struct.pack("!I", expires & 0xFFFFFFFF)),
            PacAttr(PacAttrType.A_ID, self.config.a_id),
            PacAttr(PacAttrType.I_ID, identity),
            PacAttr(PacAttrType.A_ID_INFO, self.config.a_id_info),
            PacAttr(PacAttrType.PAC_TYPE, struct.pack("!H", PacType.TUNNEL)),
        ]
        pac = Tlv.pac(
            [
                PacAttr(PacAttrType.PAC_KEY, pac_key),
                PacAttr(PacAttrType.PAC_OPAQUE, opaque),
                PacAttr(PacAttrType.PAC_INFO, encode_pac_attrs(info)),
            ]
        )
        self._set_phase(Phase.PAC_SENT)
        log.info("EAP-FAST: sending a Tunnel PAC to %r (expires %d)", identity, expires)
        return self._send_tlvs([Tlv.result(ResultStatus.SUCCESS), pac])

    def _pac_ack(self, tlvs: list[Tlv]) -> Step:
        pac = _find(tlvs, TlvType.PAC)
        acked = pac is not None and any(
            a.attr_type == PacAttrType.PAC_ACKNOWLEDGEMENT
            and a.value == struct.pack("!H", ResultStatus.SUCCESS)
            for a in parse_pac_attrs(pac.value)
        )
        if not acked:
            return self._fail_result("EAP-FAST: the peer did not acknowledge the PAC")
        self.pac_issued = True
        if self.anonymous:
            return self._fail(
                "EAP-FAST anonymous provisioning complete: PAC delivered, ending with "
                "EAP-Failure (RFC 5422 3.2.3); the peer authenticates again with its PAC"
            )
        return self._succeed()

    def _succeed(self) -> Step:
        assert self._chain is not None
        self._keys = self._chain.session_keys()
        self._set_phase(Phase.DONE)
        log.info("EAP-FAST: %r authenticated", self.inner_identity)
        return Step(None, Decision.SUCCESS)


def fast_server_factory(config: FastServerConfig) -> ServerMethodFactory:
    def factory(identity: bytes) -> EapFastServer:
        return EapFastServer(config, identity)

    return factory


# ------------------------------------------------------------------------------------------
# Peer
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FastPeerConfig:
    """EAP-FAST peer settings.

    ``tls`` serves full handshakes (provisioning; its context is adapted like the
    server's).  ``identity`` answers the inner Identity Request; ``eap_methods`` are the
    inner methods accepted.  ``pac_store`` keeps PACs by A-ID; ``provisioning`` the modes
    allowed when no PAC is known (``password`` serves MS-CHAPv2 of anonymous provisioning).
    """

    tls: TlsPeerConfig
    identity: bytes
    eap_methods: tuple[tuple[int, PeerMethodFactory], ...]
    pac_store: PacStore = field(default_factory=PacStore)
    provisioning: Provisioning = Provisioning.AUTHENTICATED
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.tls.min_version > TlsVersion.TLS1_2:
            raise ValueError("EAP-FAST runs over TLS 1.2 (RFC 4851): min_version must allow it")
        _fast_context(
            self.tls.context(), self.provisioning or Provisioning.AUTHENTICATED, server=False
        )


class EapFastPeer(_Base):
    """EAP-FAST peer: ``EapFastPeer(config)``; an EapPeerMethod."""

    role = "peer"
    may_continue = True
    """The server may send a refreshed PAC after the binding that gave us keys."""

    def __init__(self, config: FastPeerConfig) -> None:
        super().__init__(
            Framing(
                version=FAST_VERSION,
                fragment_size=config.tls.fragment_size,
                max_message=config.tls.max_message,
            )
        )
        self.config = config
        self.a_id = b""
        self._pac: Pac | None = None
        self._chain: KeyChain | None = None
        self._prov: ProvisioningKeys | None = None
        self._method: EapPeerMethod | None = None
        self._method_type = 0
        self._provisioning = False
        self.pac_received: Pac | None = None

    def receive(self, type_data: bytes) -> Step:
        got = self._framing(type_data)
        if isinstance(got, Step):
            return got
        if self.phase is Phase.IDLE:
            return self._start(got)
        if self.phase is Phase.HANDSHAKE:
            return self._handshake(got)
        tlvs = self._decrypt(got)
        if isinstance(tlvs, Step):
            return tlvs
        if not tlvs:
            return Step(self.framing.ack(), Decision.CONTINUE)
        try:
            return self._phase2(tlvs)
        except (TlvError, EapError) as exc:
            return self._refuse(f"EAP-FAST: malformed phase 2 data: {exc}")

    def _start(self, data: bytes) -> Step:
        if not self._last_flags & 0x20:
            return self._fail("EAP-FAST: first request without the S flag")
        server_version = self._last_flags & 0x07
        if server_version < 1:
            return self._fail(f"EAP-FAST: server offers version {server_version}")
        self.version = FAST_VERSION
        a_id = data
        if len(data) >= 4 and struct.unpack_from("!H", data)[0] == PacAttrType.A_ID:
            length = struct.unpack_from("!H", data, 2)[0]
            if 4 + length != len(data):
                return self._fail("EAP-FAST: Authority-ID TLV length mismatch")
            a_id = data[4:]
        self.a_id = a_id
        self._set_phase(Phase.HELLO)
        self._set_phase(Phase.HANDSHAKE)
        pac = self.config.pac_store.get(a_id)
        if pac is not None:
            self._pac = pac
            tls = self.config.tls
            # The server may refuse the PAC and run a full handshake: that is server-
            # authenticated provisioning, so it may go on only when that is allowed.
            fallback = (
                (lambda chain: verify_server_chain(tls, chain))
                if Provisioning.AUTHENTICATED in self.config.provisioning
                else None
            )
            self._channel = ResumedClient(pac.ticket(), pac.pac_key, fallback)
            self.resumed = True
        else:
            if not self.config.provisioning:
                return self._fail("EAP-FAST: no PAC for this A-ID and provisioning disabled")
            self._provisioning = True
            session = TlsSession(self.config.tls)
            self._channel = session
            try:
                return self._frame(session.initiate())
            except TlsFailure as exc:
                return self._tls_failure(exc)
        return self._frame(self.channel.data_to_send())

    def _handshake(self, data: bytes) -> Step:
        try:
            self.channel.receive(data)
        except TlsFailure as exc:
            if self.resumed:
                # Our PAC was refused: forget it so that the next attempt provisions.
                self.config.pac_store.discard(self.a_id)
            return self._tls_failure(exc)
        out = self.channel.data_to_send()
        if not self.channel.handshake_complete:
            return self._frame(out) if out else Step(self.framing.ack(), Decision.CONTINUE)
        if self.resumed and not self.channel.session_reused:
            log.info("EAP-FAST: the server refused our PAC; full handshake, a new PAC follows")
            self.resumed = False
            self._provisioning = True
        cipher = self.channel.cipher_name() or ""
        self.anonymous = cipher.startswith("ADH-")
        try:
            seed, self._prov = _tunnel_keys(self.channel, self.anonymous)
        except (ValueError, TlsFailure) as exc:
            return self._fail(f"EAP-FAST: key derivation failed: {exc}")
        self._chain = KeyChain(seed)
        self._set_phase(Phase.INNER)
        app = self.channel.read_application_data()
        if app:
            return self._phase2(parse_tlvs(app))
        return self._frame(out) if out else Step(self.framing.ack(), Decision.CONTINUE)

    def _refuse(self, reason: str, extra: list[Tlv] | None = None) -> Step:
        try:
            self.channel.write_application_data(
                encode_tlvs([Tlv.result(ResultStatus.FAILURE), *(extra or [])])
            )
            reply = self.framing.send(self.channel.data_to_send())
        except (TlsFailure, FramingError):
            reply = self.framing.ack()
        return self._fail(reason, reply)

    def _phase2(self, tlvs: list[Tlv]) -> Step:
        unknown = _unsupported_mandatory(tlvs)
        if unknown is not None:
            return self._refuse(
                f"EAP-FAST: unsupported mandatory TLV {unknown.tlv_type}",
                [Tlv.nak(0, unknown.tlv_type)],
            )
        result = _find(tlvs, TlvType.RESULT)
        iresult = _find(tlvs, TlvType.INTERMEDIATE_RESULT)
        if result is not None and result.status() is ResultStatus.FAILURE:
            return self._refuse("EAP-FAST: server reported failure in the Result TLV")
        refused = _refusal(tlvs)
        if refused is not None:
            return self._refuse(f"EAP-FAST: server {refused}")
        if iresult is not None and iresult.status() is ResultStatus.FAILURE:
            return self._refuse("EAP-FAST: server reported an inner method failure")
        out: list[Tlv] = []
        decision = Decision.CONTINUE
        binding_tlv = _find(tlvs, TlvType.CRYPTO_BINDING)
        if binding_tlv is not None:
            answer = self._binding(binding_tlv, final=result is not None)
            if isinstance(answer, Step):
                return answer
            out.append(answer)
            if not self.anonymous and self._chain is not None:
                self._keys = self._chain.session_keys()
                if result is not None:
                    decision = Decision.SUCCESS
        if iresult is not None:
            out.append(Tlv.intermediate_result(ResultStatus.SUCCESS))
        for payload in (t for t in tlvs if t.tlv_type == TlvType.EAP_PAYLOAD):
            answer_tlv = self._inner_request(payload.value)
            if isinstance(answer_tlv, Step):
                return answer_tlv
            out.append(answer_tlv)
        pac_tlv = _find(tlvs, TlvType.PAC)
        if pac_tlv is not None:
            if result is None or result.status() is not ResultStatus.SUCCESS:
                return self._refuse("EAP-FAST: PAC TLV without a success Result TLV")
            pac = Pac.from_attrs(parse_pac_attrs(pac_tlv.value))
            if pac.a_id != self.a_id:
                return self._refuse("EAP-FAST: PAC for another Authority-ID")
            self.config.pac_store.put(pac)
            self.pac_received = pac
            out.append(
                Tlv.pac(
                    [
                        PacAttr(
                            PacAttrType.PAC_ACKNOWLEDGEMENT, struct.pack("!H", ResultStatus.SUCCESS)
                        )
                    ]
                )
            )
            if self.anonymous:
                self._failure_reason = (
                    "EAP-FAST anonymous provisioning complete (PAC stored; expect EAP-Failure)"
                )
                decision = Decision.FAILURE
            elif self._keys is not None:
                decision = Decision.SUCCESS
        elif (
            self._provisioning
            and not self.anonymous
            and self.pac_received is None
            and ((result is not None) or (iresult is not None))
            and binding_tlv is not None
        ):
            out.append(Tlv.request_action(RequestAction.PROCESS_TLV))
            out.append(
                Tlv(
                    TlvType.PAC,
                    PacAttr(PacAttrType.PAC_TYPE, struct.pack("!H", PacType.TUNNEL)).to_bytes(),
                )
            )
        if result is not None:
            out.insert(0, Tlv.result(ResultStatus.SUCCESS))
        if decision is Decision.SUCCESS:
            self._set_phase(Phase.DONE)
        if decision is Decision.FAILURE:
            self.channel.write_application_data(encode_tlvs(out))
            reply = self.framing.send(self.channel.data_to_send())
            self._set_phase(Phase.FAILED)
            return Step(reply, Decision.FAILURE)
        if not out:
            return Step(self.framing.ack(), Decision.CONTINUE)
        return self._send_tlvs(out, decision)

    def _binding(self, tlv: Tlv, *, final: bool) -> Tlv | Step:
        binding = CryptoBinding.parse(tlv.value)
        if (
            binding.version != FAST_VERSION
            or binding.received_version != FAST_VERSION
            or binding.subtype != CryptoBindingSubtype.REQUEST
            or binding.nonce[31] & 1
        ):
            return self._refuse("EAP-FAST: Crypto-Binding request malformed")
        if self._chain is None or self._method is None:
            return self._refuse("EAP-FAST: Crypto-Binding before any inner method")
        keys = self._chain.advance(_isk(self._method))
        expected = compound_mac(keys.cmk, binding.mac_input())
        if not hmac.compare_digest(expected, binding.compound_mac):
            return self._refuse(
                "EAP-FAST: server's Compound MAC does not verify",
                [Tlv.error(ErrorCode.TUNNEL_COMPROMISE)],
            )
        nonce = binding.nonce[:31] + bytes([binding.nonce[31] | 1])
        answer = CryptoBinding(
            FAST_VERSION, binding.version, CryptoBindingSubtype.RESPONSE, nonce, b"\x00" * 20
        )
        mac = self._binding_mac(keys.cmk, answer.mac_input())
        return answer.with_mac(mac).to_tlv()

    def _inner_request(self, packet: bytes) -> Tlv | Step:
        pkt = parse(packet)
        if not isinstance(pkt, EapRequest):
            return self._refuse("EAP-FAST: inner packet is not a Request")
        if pkt.eap_type == EapType.IDENTITY:
            reply = EapResponse(pkt.identifier, EapType.IDENTITY, self.config.identity)
            return Tlv.eap_payload(reply.to_bytes())
        if self._method is None or pkt.eap_type != self._method_type:
            method = self._new_method(pkt.eap_type)
            if method is None:
                offered = [t for t, _ in self.config.eap_methods]
                nak = EapResponse(pkt.identifier, EapType.NAK, encode_nak(offered))
                return Tlv.eap_payload(nak.to_bytes())
            self._method = method
            self._method_type = pkt.eap_type
        if isinstance(self._method, IdentifierAware):
            self._method.set_identifier(pkt.identifier)
        step = self._method.receive(pkt.type_data)
        if step.decision is Decision.FAILURE and step.reply is None:
            return self._refuse(
                f"EAP-FAST inner method {pkt.eap_type} failed: {self._method.failure_reason}"
            )
        if step.reply is None:
            return self._refuse("EAP-FAST: inner method has nothing to answer")
        return Tlv.eap_payload(EapResponse(pkt.identifier, pkt.eap_type, step.reply).to_bytes())

    def _new_method(self, eap_type: int) -> EapPeerMethod | None:
        if self.anonymous:
            if eap_type != EapType.MSCHAPV2 or self.config.password is None:
                return None
            assert self._prov is not None
            return MsChapV2PeerMethod(
                self.config.identity,
                self.config.password,
                peer_challenge=self._prov.client_challenge,
            )
        factory = next((f for t, f in self.config.eap_methods if t == eap_type), None)
        if factory is None:
            return None
        method = factory()
        if eap_type == EapType.GTC:
            return _GtcPeer(method, self.config.identity)
        return method
