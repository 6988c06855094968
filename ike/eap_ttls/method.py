"""EAP-TTLS version 0 (RFC 5281), EAP type 21, server and peer.

Phase 1 is the TLS handshake (:mod:`ike.eap_tls.driver`).  Phase 2 exchanges AVPs
(:mod:`ike.eap_ttls.avp`) inside the tunnel:

* PAP: User-Name + User-Password (NUL-padded to 16, RFC 5281 11.2.5);
* CHAP: User-Name + CHAP-Challenge + CHAP-Password, the 16-byte challenge and the one-byte
  identifier taken from ``export("ttls challenge", 17)`` (RFC 5281 11.2.2);
* MS-CHAP-V2: User-Name + MS-CHAP-Challenge + MS-CHAP2-Response (vendor 311), challenge and
  identifier from the same export; the server answers MS-CHAP2-Success, the peer checks the
  authenticator response and acknowledges with an empty message (RFC 5281 11.2.4);
* EAP: EAP-Message AVPs carrying whole inner EAP packets.  The server runs
  :class:`ike.eap.server.EapServer` with the configured inner methods; the peer runs
  :class:`ike.eap.peer.EapPeer`.  The inner EAP-Success is not tunnelled: the outer one
  follows (RFC 5281 11.2.1, hostapd and strongSwan behave the same).

After a successful inner authentication the server can run posture methods (PT-EAP, type 54,
handed in by the gateway) as inner EAP, as strongSwan's TTLS server does.

Keys: MSK || EMSK = PRF(master, "ttls keying material", client || server random)[0:128]
(RFC 5281 8); TLS 1.3: TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x15, 128) (RFC 9427).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ike.eap import mschapv2
from ike.eap.method import Decision, PeerMethodFactory, ServerMethodFactory, Step
from ike.eap.packet import EapResponse, EapType
from ike.eap.peer import EapPeer, PeerState
from ike.eap.server import EapServer
from ike.eap_tls.driver import Phase, TlsPeerDriver, TlsServerDriver
from ike.eap_tls.keys import EAP_TYPE_TTLS, key_material, session_id
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig
from ike.eap_ttls.avp import (
    VENDOR_MICROSOFT,
    Avp,
    AvpCode,
    AvpError,
    MsAvpCode,
    encode_avps,
    parse_avps,
)

__all__ = [
    "CHALLENGE_LABEL",
    "KEYING_LABEL",
    "EapTtlsPeer",
    "EapTtlsServer",
    "InnerAuth",
    "PasswordLookup",
    "TtlsPeerConfig",
    "TtlsServerConfig",
    "ttls_server_factory",
]

log = logging.getLogger(__name__)

KEYING_LABEL = b"ttls keying material"
CHALLENGE_LABEL = b"ttls challenge"

PasswordLookup = Callable[[bytes], "str | None"]
"""``lookup(user_name) -> clear-text password`` or None (same shape as ``ike.eap.methods``)."""

_KNOWN: frozenset[tuple[int, int | None]] = frozenset(
    {
        (AvpCode.USER_NAME, None),
        (AvpCode.USER_PASSWORD, None),
        (AvpCode.CHAP_PASSWORD, None),
        (AvpCode.CHAP_CHALLENGE, None),
        (AvpCode.EAP_MESSAGE, None),
        (AvpCode.REPLY_MESSAGE, None),
        (MsAvpCode.MS_CHAP_CHALLENGE, VENDOR_MICROSOFT),
        (MsAvpCode.MS_CHAP2_RESPONSE, VENDOR_MICROSOFT),
        (MsAvpCode.MS_CHAP2_SUCCESS, VENDOR_MICROSOFT),
        (MsAvpCode.MS_CHAP_ERROR, VENDOR_MICROSOFT),
    }
)


class InnerAuth(enum.Enum):
    """Phase 2 authentication of a TTLS peer."""

    PAP = "pap"
    CHAP = "chap"
    MSCHAPV2 = "mschapv2"
    EAP = "eap"


def _ttls_challenge(driver: TlsServerDriver | TlsPeerDriver, length: int) -> bytes:
    # RFC 5281 11.1; RFC 9427 2.5 keeps the label for TLS 1.3 (no context).
    return driver.tls.export(CHALLENGE_LABEL, length + 1)


def _find(avps: Sequence[Avp], code: int, vendor: int | None = None) -> Avp | None:
    return next((a for a in avps if a.is_(code, vendor)), None)


def _eap_message(avps: Sequence[Avp]) -> bytes | None:
    """Concatenate EAP-Message AVPs (one EAP packet may span several, as in RADIUS)."""
    parts = [a.data for a in avps if a.is_(AvpCode.EAP_MESSAGE)]
    return b"".join(parts) if parts else None


def _eap_avps(packet: bytes) -> bytes:
    return encode_avps([Avp(AvpCode.EAP_MESSAGE, packet, mandatory=True)])


def _check_mandatory(avps: Sequence[Avp]) -> str | None:
    for avp in avps:
        if avp.mandatory and (avp.code, avp.vendor_id) not in _KNOWN:
            vendor = f" (vendor {avp.vendor_id})" if avp.vendor_id is not None else ""
            return f"unsupported mandatory AVP {avp.code}{vendor}"
    return None


@dataclass(frozen=True)
class TtlsServerConfig:
    """TTLS authenticator settings.

    ``eap_methods``: inner EAP methods ``(type, factory)`` in order of preference.
    ``password_lookup`` enables PAP, CHAP and MS-CHAP-V2 (each can be switched off).
    ``posture``: inner EAP methods run after a successful inner authentication (PT-EAP).
    ``client_cert_authenticates``: a client certificate verified in the handshake (set
    ``tls.require_client_cert`` or ``tls.request_client_cert``) counts as the
    authentication; phase 2 then only runs ``posture`` (strongSwan's TTLS server does so).
    """

    tls: TlsServerConfig
    eap_methods: tuple[tuple[int, ServerMethodFactory], ...] = ()
    password_lookup: PasswordLookup | None = None
    allow_pap: bool = True
    allow_chap: bool = True
    allow_mschapv2: bool = True
    posture: tuple[tuple[int, ServerMethodFactory], ...] = ()
    client_cert_authenticates: bool = False


class _ServerPhase2(enum.Enum):
    WAIT_AVPS = "wait-avps"
    INNER_EAP = "inner-eap"
    WAIT_MSCHAP_ACK = "wait-mschap-ack"
    POSTURE = "posture"


class EapTtlsServer(TlsServerDriver):
    """EAP-TTLS authenticator: ``EapTtlsServer(config, identity)``; an EapServerMethod."""

    method_name = "EAP-TTLS"

    def __init__(self, config: TtlsServerConfig, identity: bytes) -> None:
        if config.tls.session_resumption:
            raise ValueError(
                "EAP-TTLS server: session resumption is not supported (the inner "
                "authentication result is not bound to the TLS session)"
            )
        super().__init__(config.tls, identity, version=0)
        self.ttls = config
        self._phase2 = _ServerPhase2.WAIT_AVPS
        self._inner: EapServer | None = None
        self._user: bytes | None = None
        self._keys: bytes | None = None

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_TTLS

    @property
    def inner_identity(self) -> bytes | None:
        """The identity authenticated inside the tunnel (User-Name or inner EAP identity)."""
        if self._inner is not None and self._inner.identity is not None:
            return self._inner.identity
        return self._user

    @property
    def inner_server(self) -> EapServer | None:
        return self._inner

    def msk(self) -> bytes | None:
        return self._keys[:64] if self._keys is not None else None

    def emsk(self) -> bytes | None:
        return self._keys[64:] if self._keys is not None else None

    def _forget_keys(self) -> None:
        self._keys = None

    @property
    def session_id(self) -> bytes | None:
        """EAP Session-Id (RFC 5247 / RFC 9427) once the method succeeded."""
        return session_id(self.tls, EAP_TYPE_TTLS) if self._keys is not None else None

    def _handshake_done(self, app: bytes) -> Step:
        if app:  # TLS 1.3 / resumption: the peer's AVPs came with its Finished
            return self._tunnel(app, empty=False)
        return self._send()

    # Phase 2 as one table: what a response means in each phase.
    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        return _SERVER_PHASE2[self._phase2](self, app)

    def _parse(self, app: bytes) -> list[Avp] | Step:
        try:
            avps = parse_avps(app)
        except AvpError as exc:
            return self._fail(f"EAP-TTLS: malformed AVPs: {exc}")
        problem = _check_mandatory(avps)
        if problem is not None:
            return self._fail(f"EAP-TTLS: {problem}")
        return avps

    def _on_wait_avps(self, app: bytes) -> Step:
        if not app:
            return self._fail("EAP-TTLS: peer sent no phase 2 data")
        avps = self._parse(app)
        return avps if isinstance(avps, Step) else self._first_avps(avps)

    def _on_inner_eap(self, app: bytes) -> Step:
        if not app:
            return self._fail("EAP-TTLS: empty response where an EAP-Message was expected")
        avps = self._parse(app)
        return avps if isinstance(avps, Step) else self._inner_eap(avps)

    def _on_mschap_ack(self, app: bytes) -> Step:
        if app:
            return self._fail("EAP-TTLS: data instead of the MS-CHAP2-Success acknowledgement")
        return self._authenticated()

    def _first_avps(self, avps: list[Avp]) -> Step:
        """The peer's first AVPs choose the inner authentication."""
        eap = _eap_message(avps)
        if self.ttls.client_cert_authenticates and self.tls.peer_certificate() is not None:
            cert = self.tls.peer_certificate()
            assert cert is not None
            log.info("EAP-TTLS: client certificate %s authenticates the peer",
                     cert.subject.rfc4514_string())
            if eap is not None and self.ttls.posture:
                self._inner = EapServer(list(self.ttls.posture))
                self._phase2 = _ServerPhase2.POSTURE
                return self._inner_eap(avps)
            user = _find(avps, AvpCode.USER_NAME)
            self._user = user.data if user is not None else None
            return self._authenticated()
        if eap is not None:
            if not self.ttls.eap_methods:
                return self._fail("EAP-TTLS: inner EAP not configured")
            self._inner = EapServer(list(self.ttls.eap_methods), chain=list(self.ttls.posture))
            self._phase2 = _ServerPhase2.INNER_EAP
            return self._inner_eap(avps)
        user = _find(avps, AvpCode.USER_NAME)
        if user is None:
            return self._fail("EAP-TTLS: no User-Name AVP and no EAP-Message")
        self._user = user.data
        lookup = self.ttls.password_lookup
        if _find(avps, AvpCode.USER_PASSWORD) is not None:
            if not self.ttls.allow_pap or lookup is None:
                return self._fail("EAP-TTLS: inner PAP not allowed")
            return self._pap(avps, user.data, lookup)
        if _find(avps, AvpCode.CHAP_PASSWORD) is not None:
            if not self.ttls.allow_chap or lookup is None:
                return self._fail("EAP-TTLS: inner CHAP not allowed")
            return self._chap(avps, user.data, lookup)
        if _find(avps, MsAvpCode.MS_CHAP2_RESPONSE, VENDOR_MICROSOFT) is not None:
            if not self.ttls.allow_mschapv2 or lookup is None:
                return self._fail("EAP-TTLS: inner MS-CHAP-V2 not allowed")
            return self._mschapv2(avps, user.data, lookup)
        return self._fail("EAP-TTLS: no supported inner authentication AVPs")

    # -- non-EAP inner authentication -------------------------------------------------------
    def _pap(self, avps: list[Avp], user: bytes, lookup: PasswordLookup) -> Step:
        raw = _find(avps, AvpCode.USER_PASSWORD)
        assert raw is not None
        if not raw.data or len(raw.data) > 253:
            return self._fail("EAP-TTLS PAP: User-Password of bad length")
        given = raw.data.rstrip(b"\x00")
        expected = lookup(user)
        if expected is None or not hmac.compare_digest(given, expected.encode("utf-8")):
            return self._fail(f"EAP-TTLS PAP: wrong password for {user!r}")
        return self._authenticated()

    def _chap(self, avps: list[Avp], user: bytes, lookup: PasswordLookup) -> Step:
        challenge = _find(avps, AvpCode.CHAP_CHALLENGE)
        password = _find(avps, AvpCode.CHAP_PASSWORD)
        assert password is not None
        expected_challenge = _ttls_challenge(self, 16)
        if challenge is None or not hmac.compare_digest(challenge.data, expected_challenge[:16]):
            return self._fail("EAP-TTLS CHAP: CHAP-Challenge is not the exported challenge")
        if len(password.data) != 17 or password.data[0] != expected_challenge[16]:
            return self._fail("EAP-TTLS CHAP: CHAP-Password malformed or wrong identifier")
        secret = lookup(user)
        if secret is None:
            return self._fail(f"EAP-TTLS CHAP: unknown user {user!r}")
        digest = hashlib.md5(  # noqa: S324 - RFC 1994 CHAP is MD5
            password.data[:1] + secret.encode("utf-8") + challenge.data
        ).digest()
        if not hmac.compare_digest(digest, password.data[1:]):
            return self._fail(f"EAP-TTLS CHAP: wrong password for {user!r}")
        return self._authenticated()

    def _mschapv2(self, avps: list[Avp], user: bytes, lookup: PasswordLookup) -> Step:
        challenge = _find(avps, MsAvpCode.MS_CHAP_CHALLENGE, VENDOR_MICROSOFT)
        response = _find(avps, MsAvpCode.MS_CHAP2_RESPONSE, VENDOR_MICROSOFT)
        assert response is not None
        expected = _ttls_challenge(self, 16)
        if challenge is None or not hmac.compare_digest(challenge.data, expected[:16]):
            return self._fail("EAP-TTLS MS-CHAP-V2: MS-CHAP-Challenge is not the exported one")
        data = response.data
        if len(data) != 50:
            return self._fail("EAP-TTLS MS-CHAP-V2: MS-CHAP2-Response is not 50 bytes")
        ident, peer_challenge, nt_response = data[0], data[2:18], data[26:50]
        if ident != expected[16]:
            return self._fail("EAP-TTLS MS-CHAP-V2: wrong identifier in MS-CHAP2-Response")
        secret = lookup(user)
        if secret is None:
            return self._fail(f"EAP-TTLS MS-CHAP-V2: unknown user {user!r}")
        pw_hash = mschapv2.nt_password_hash(secret)
        name = mschapv2.strip_domain(user)
        good = mschapv2.generate_nt_response(expected[:16], peer_challenge, name, pw_hash)
        if not hmac.compare_digest(good, nt_response):
            return self._fail(f"EAP-TTLS MS-CHAP-V2: wrong password for {user!r}")
        auth = mschapv2.generate_authenticator_response(
            pw_hash, nt_response, peer_challenge, expected[:16], name
        )
        self._phase2 = _ServerPhase2.WAIT_MSCHAP_ACK
        success = Avp(
            MsAvpCode.MS_CHAP2_SUCCESS, bytes([ident]) + auth, VENDOR_MICROSOFT, mandatory=True
        )
        return self._send(success.to_bytes())

    def _authenticated(self) -> Step:
        """Inner non-EAP authentication succeeded: run posture, or finish."""
        log.info("EAP-TTLS inner authentication of %r succeeded", self._user)
        if self.ttls.posture:
            self._inner = EapServer(list(self.ttls.posture), identity=self._user or b"")
            self._phase2 = _ServerPhase2.POSTURE
            return self._send(_eap_avps(self._inner.start()))
        return self._finish()

    def _finish(self) -> Step:
        self._keys = key_material(self.tls, EAP_TYPE_TTLS, KEYING_LABEL)
        return self._succeed()

    # -- inner EAP -------------------------------------------------------------------------------
    def _inner_eap(self, avps: list[Avp]) -> Step:
        inner = self._inner
        assert inner is not None
        packet = _eap_message(avps)
        if packet is None:
            return self._fail("EAP-TTLS: expected an EAP-Message AVP")
        out = inner.receive(packet)
        if inner.succeeded:
            return self._inner_succeeded(out)
        if inner.failed:
            return self._fail(f"EAP-TTLS inner EAP failed: {inner.failure_reason}")
        if out is None:
            return self._fail("EAP-TTLS: inner EAP packet discarded by the inner EAP server")
        return self._send(_eap_avps(out))


    def _inner_succeeded(self, success_packet: bytes | None) -> Step:
        """Inner EAP ended in EAP-Success: not tunnelled (RFC 5281 11.2.1), the outer
        EAP-Success follows at once."""
        return self._finish()


_SERVER_PHASE2: dict[_ServerPhase2, Callable[[EapTtlsServer, bytes], Step]] = {
    _ServerPhase2.WAIT_AVPS: EapTtlsServer._on_wait_avps,
    _ServerPhase2.INNER_EAP: EapTtlsServer._on_inner_eap,
    _ServerPhase2.POSTURE: EapTtlsServer._on_inner_eap,
    _ServerPhase2.WAIT_MSCHAP_ACK: EapTtlsServer._on_mschap_ack,
}


def ttls_server_factory(config: TtlsServerConfig) -> ServerMethodFactory:
    """A :data:`ServerMethodFactory` building :class:`EapTtlsServer` for each identity."""

    def factory(identity: bytes) -> EapTtlsServer:
        return EapTtlsServer(config, identity)

    return factory


@dataclass(frozen=True)
class TtlsPeerConfig:
    """TTLS peer settings: ``identity`` is the inner identity (User-Name / inner EAP)."""

    tls: TlsPeerConfig
    identity: bytes
    inner: InnerAuth = InnerAuth.EAP
    password: str | None = None
    eap_methods: tuple[tuple[int, PeerMethodFactory], ...] = ()
    """Inner EAP methods, and the posture methods the server may chain (PT-EAP)."""


class EapTtlsPeer(TlsPeerDriver):
    """EAP-TTLS peer: ``EapTtlsPeer(config)``; an EapPeerMethod.

    Says SUCCESS as soon as its inner authentication is complete on its side, but keeps
    answering afterwards: the server may run posture methods before EAP-Success.
    """

    method_name = "EAP-TTLS"
    success_is_final = False

    def __init__(self, config: TtlsPeerConfig) -> None:
        if config.inner is not InnerAuth.EAP and config.password is None:
            raise ValueError("PAP, CHAP and MS-CHAP-V2 need a password")
        super().__init__(config.tls, version=0)
        self.ttls = config
        self._inner: EapPeer | None = None
        self._done = False
        self._expect_mschap_success: bytes | None = None
        self._mschap_state: tuple[bytes, bytes, bytes, bytes] | None = None

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_TTLS

    @property
    def inner_peer(self) -> EapPeer | None:
        return self._inner

    @property
    def may_continue(self) -> bool:
        """RFC 4137 methodState MAY_CONT: after SUCCESS this method still takes Requests
        (the server may chain posture methods), so an EAP peer layer should keep feeding it
        Requests of its type instead of starting a fresh instance."""
        return self.phase is not Phase.FAILED

    def msk(self) -> bytes | None:
        if not self._done:
            return None
        return key_material(self.tls, EAP_TYPE_TTLS, KEYING_LABEL)[:64]

    def emsk(self) -> bytes | None:
        if not self._done:
            return None
        return key_material(self.tls, EAP_TYPE_TTLS, KEYING_LABEL)[64:]

    def _forget_keys(self) -> None:
        self._done = False

    @property
    def session_id(self) -> bytes | None:
        return session_id(self.tls, EAP_TYPE_TTLS) if self._done else None

    def _decision(self) -> Decision:
        return Decision.SUCCESS if self._done else Decision.CONTINUE

    def _handshake_done(self, app: bytes) -> Step:
        cfg = self.ttls
        password = cfg.password or ""
        user = Avp(AvpCode.USER_NAME, cfg.identity, mandatory=True)
        if cfg.inner is InnerAuth.EAP:
            self._inner = EapPeer(cfg.identity, list(cfg.eap_methods), idle_timeout=None)
            identity = EapResponse(0, EapType.IDENTITY, cfg.identity).to_bytes()
            first = _eap_avps(identity)
        elif cfg.inner is InnerAuth.PAP:
            raw = password.encode("utf-8")
            raw += b"\x00" * (-len(raw) % 16 or (16 if not raw else 0))
            first = encode_avps([user, Avp(AvpCode.USER_PASSWORD, raw, mandatory=True)])
            self._done = True
        elif cfg.inner is InnerAuth.CHAP:
            challenge = _ttls_challenge(self, 16)
            digest = hashlib.md5(  # noqa: S324 - RFC 1994 CHAP is MD5
                challenge[16:] + password.encode("utf-8") + challenge[:16]
            ).digest()
            first = encode_avps(
                [
                    user,
                    Avp(AvpCode.CHAP_CHALLENGE, challenge[:16], mandatory=True),
                    Avp(AvpCode.CHAP_PASSWORD, challenge[16:] + digest, mandatory=True),
                ]
            )
            self._done = True
        else:
            challenge = _ttls_challenge(self, 16)
            peer_challenge = secrets.token_bytes(16)
            pw_hash = mschapv2.nt_password_hash(password)
            name = mschapv2.strip_domain(cfg.identity)
            nt = mschapv2.generate_nt_response(challenge[:16], peer_challenge, name, pw_hash)
            self._mschap_state = (pw_hash, nt, peer_challenge, challenge[:17])
            response = challenge[16:17] + b"\x00" + peer_challenge + b"\x00" * 8 + nt
            first = encode_avps(
                [
                    user,
                    Avp(MsAvpCode.MS_CHAP_CHALLENGE, challenge[:16], VENDOR_MICROSOFT, True),
                    Avp(MsAvpCode.MS_CHAP2_RESPONSE, response, VENDOR_MICROSOFT, True),
                ]
            )
        if app:
            # Data before we spoke (unusual); handle it after our first AVPs.
            return self._fail("EAP-TTLS: server sent phase 2 data before the peer")
        return self._send(first, self._decision())

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        if not app:
            return self._send(decision=self._decision())
        try:
            avps = parse_avps(app)
        except AvpError as exc:
            return self._fail(f"EAP-TTLS: malformed AVPs: {exc}", self.framing.ack())
        problem = _check_mandatory(avps)
        if problem is not None:
            return self._fail(f"EAP-TTLS: {problem}", self.framing.ack())
        success = _find(avps, MsAvpCode.MS_CHAP2_SUCCESS, VENDOR_MICROSOFT)
        if success is not None:
            return self._mschap_success(success)
        packet = _eap_message(avps)
        if packet is None:
            return self._fail(
                "EAP-TTLS: server sent AVPs without an EAP-Message", self.framing.ack()
            )
        if self._inner is None:
            # Posture after PAP/CHAP/MS-CHAP-V2: the server starts inner EAP by itself.
            self._inner = EapPeer(
                self.ttls.identity, list(self.ttls.eap_methods), idle_timeout=None
            )
        out = self._inner.receive(packet)
        state = self._inner.state
        if state is PeerState.SUCCESS:
            # A server that tunnels the inner EAP-Success (RFC 5281 does not require it).
            self._done = True
            return self._send(decision=Decision.SUCCESS)
        if state in (PeerState.FAILURE, PeerState.METHOD_FAILED) and out is None:
            return self._fail(
                f"EAP-TTLS inner EAP failed: {self._inner.failure_reason}", self.framing.ack()
            )
        if out is None:
            return self._fail("EAP-TTLS: inner EAP request discarded", self.framing.ack())
        if state is PeerState.METHOD_DONE:
            self._done = True
        elif self.ttls.inner is InnerAuth.EAP:
            self._done = False
        return self._send(_eap_avps(out), self._decision())

    def _mschap_success(self, avp: Avp) -> Step:
        if self._mschap_state is None:
            return self._fail("EAP-TTLS: unexpected MS-CHAP2-Success", self.framing.ack())
        pw_hash, nt, peer_challenge, challenge = self._mschap_state
        data = avp.data
        if len(data) < 43 or data[0] != challenge[16]:
            return self._fail("EAP-TTLS: malformed MS-CHAP2-Success", self.framing.ack())
        name = mschapv2.strip_domain(self.ttls.identity)
        if not mschapv2.check_authenticator_response(
            pw_hash, nt, peer_challenge, challenge[:16], name, data[1:43]
        ):
            return self._fail(
                "EAP-TTLS: server's MS-CHAP2-Success authenticator is wrong", self.framing.ack()
            )
        self._mschap_state = None
        self._done = True
        return self._send(decision=Decision.SUCCESS)
