"""PEAP (EAP type 25), version 0 ([MS-PEAP]) and version 1 (draft-josefsson-pppext-eap-tls-eap),
server and peer.

Phase 1 is the TLS handshake (:mod:`ike.eap_tls.driver`).  Phase 2 runs inner EAP inside the
tunnel with the engines of ``ike.eap`` (:class:`~ike.eap.server.EapServer` on the server with
the configured methods and the chained posture methods, :class:`~ike.eap.peer.EapPeer` on the
peer).  The server starts phase 2 right after the handshake with an inner Identity Request.

PEAPv0: inner EAP packets travel without their 4-byte header, except EAP-TLV (type 33).  The
inner EAP-Success / EAP-Failure is replaced by an EAP-TLV Request carrying a Result TLV; on
success it also carries a Crypto-Binding TLV (subtype Request, fresh nonce, compound MAC); the
peer answers with a Result TLV and its own Crypto-Binding TLV (subtype Response, same nonce).
A wrong compound MAC fails the method on either side.  MSK/EMSK come from the cryptobinding
chain (:mod:`ike.eap_peap.keys`); a peer that omits cryptobinding is refused unless
``require_cryptobinding`` is off (then MSK = TLS key material [0:64]).

PEAPv1 (only when the server offers it and the peer picks it): full inner EAP packets; the
inner EAP-Success / Failure is tunnelled and acknowledged; keys = "client EAP encryption"
material (hostapd's default label), no cryptobinding.

Posture: PT-EAP (54) and the legacy EAP-TNC (38, which strongSwan's PEAP uses) are simply
inner methods chained after authentication (``posture`` of :class:`PeapServerConfig`).
"""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ike.eap.method import Decision, PeerMethodFactory, ServerMethodFactory, Step
from ike.eap.packet import (
    EapCode,
    EapError,
    EapFailure,
    EapRequest,
    EapResponse,
    EapSuccess,
    parse,
)
from ike.eap.peer import EapPeer, PeerState
from ike.eap.server import EapServer
from ike.eap_peap.keys import compound_keys, compound_mac, session_keys
from ike.eap_peap.tlv import (
    EAP_TYPE_TLV,
    CryptoBinding,
    ResultStatus,
    Tlv,
    TlvError,
    TlvType,
    encode_tlvs,
    parse_tlvs,
)
from ike.eap_tls.driver import TlsPeerDriver, TlsServerDriver
from ike.eap_tls.framing import Message
from ike.eap_tls.keys import EAP_TYPE_PEAP, key_material, session_id
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion

__all__ = [
    "EapPeapPeer",
    "EapPeapServer",
    "PeapPeerConfig",
    "PeapServerConfig",
    "peap_server_factory",
]

log = logging.getLogger(__name__)

_KNOWN_TLVS = frozenset({TlvType.RESULT, TlvType.CRYPTO_BINDING})


def _strip(packet: bytes) -> bytes:
    """PEAPv0: drop Code, Identifier, Length (RFC 3748 4) from an inner packet."""
    return packet[4:]


def _with_header(code: int, identifier: int, stripped: bytes) -> bytes:
    return struct.pack("!BBH", code, identifier, 4 + len(stripped)) + stripped


def _is_tlv_packet(data: bytes, code: int) -> bool:
    return (
        len(data) >= 5
        and data[0] == code
        and data[4] == EAP_TYPE_TLV
        and struct.unpack_from("!H", data, 2)[0] == len(data)
    )


def _tlv_packet(code: int, identifier: int, tlvs: list[Tlv]) -> bytes:
    payload = encode_tlvs(tlvs)
    if code == EapCode.REQUEST:
        return EapRequest(identifier, EAP_TYPE_TLV, payload).to_bytes()
    return EapResponse(identifier, EAP_TYPE_TLV, payload).to_bytes()


def _tunnel_key(driver: TlsServerDriver | TlsPeerDriver) -> bytes:
    return key_material(driver.tls, EAP_TYPE_PEAP)[:60]


def _check_tlvs(tlvs: list[Tlv]) -> str | None:
    for tlv in tlvs:
        if tlv.mandatory and tlv.tlv_type not in _KNOWN_TLVS:
            return f"unsupported mandatory TLV {tlv.tlv_type}"
    return None


def _result(tlvs: list[Tlv]) -> ResultStatus | None:
    for tlv in tlvs:
        if tlv.tlv_type == TlvType.RESULT:
            if len(tlv.value) != 2:
                raise TlvError("Result TLV value is not 2 bytes", 0)
            status = struct.unpack("!H", tlv.value)[0]
            if status not in (ResultStatus.SUCCESS, ResultStatus.FAILURE):
                raise TlvError(f"Result TLV status {status}", 0)
            return ResultStatus(status)
    return None


def _binding(tlvs: list[Tlv]) -> CryptoBinding | None:
    found = [t for t in tlvs if t.tlv_type == TlvType.CRYPTO_BINDING]
    if not found:
        return None
    if len(found) > 1:
        raise TlvError("more than one Crypto-Binding TLV", 0)
    return CryptoBinding.parse(found[0].value)


@dataclass(frozen=True)
class PeapServerConfig:
    """PEAP authenticator settings.

    ``eap_methods``: inner authentication methods in order of preference (MS-CHAPv2, GTC...).
    ``posture``: inner methods chained after authentication (PT-EAP 54, EAP-TNC 38).
    ``max_version``: version offered in the Start (0, or 1 to let a peer pick v1).
    """

    tls: TlsServerConfig
    eap_methods: tuple[tuple[int, ServerMethodFactory], ...]
    posture: tuple[tuple[int, ServerMethodFactory], ...] = ()
    max_version: int = 0
    require_cryptobinding: bool = True


class _ServerPhase2(enum.Enum):
    WAIT_ACK = "wait-ack"
    INNER = "inner"
    RESULT_SENT = "result-sent"
    V1_SUCCESS_SENT = "v1-success-sent"


class EapPeapServer(TlsServerDriver):
    """PEAP authenticator: ``EapPeapServer(config, identity)``; an EapServerMethod."""

    method_name = "PEAP"

    def __init__(self, config: PeapServerConfig, identity: bytes) -> None:
        if config.tls.session_resumption:
            raise ValueError("PEAP server: session resumption (fast reconnect) is not supported")
        if config.max_version not in (0, 1):
            raise ValueError("PEAP max_version must be 0 or 1")
        if not config.eap_methods:
            raise ValueError("PEAP needs at least one inner method")
        super().__init__(config.tls, identity, version=config.max_version)
        self.peap = config
        self.version: int | None = None
        self._inner = EapServer(list(config.eap_methods), chain=list(config.posture))
        self._phase2 = _ServerPhase2.INNER
        self._last_inner_id = 0
        self._nonce = b""
        self._tlv_id = 0
        self._keys: tuple[bytes, bytes] | None = None

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_PEAP

    @property
    def inner_server(self) -> EapServer:
        return self._inner

    @property
    def inner_identity(self) -> bytes | None:
        return self._inner.identity

    def msk(self) -> bytes | None:
        return self._keys[0] if self._keys is not None else None

    def _forget_keys(self) -> None:
        self._keys = None

    @property
    def session_id(self) -> bytes | None:
        """EAP Session-Id (RFC 5247 / RFC 9427) once the method succeeded."""
        return session_id(self.tls, EAP_TYPE_PEAP) if self._keys is not None else None

    def emsk(self) -> bytes | None:
        return self._keys[1] if self._keys is not None else None

    def receive(self, type_data: bytes) -> Step:
        if self.version is None and type_data and self._tls is not None:
            peer_version = type_data[0] & 0x07
            if peer_version > self.peap.max_version:
                return self._fail(
                    f"PEAP: peer chose version {peer_version}, offered {self.peap.max_version}"
                )
            self.version = peer_version
            self.framing.version = peer_version
            log.debug("PEAP version %d", peer_version)
        return super().receive(type_data)

    # phase 2 ---------------------------------------------------------------------------------
    def _handshake_done(self, app: bytes) -> Step:
        if app:
            return self._fail("PEAP: peer sent data before phase 2 started")
        if self.tls.version < TlsVersion.TLS1_3:
            out = self.tls.data_to_send()
            if out:
                # TLS 1.2 full handshake: our Finished goes out alone and phase 2 starts
                # after the peer's ACK (wpa_supplicant cannot take phase 2 data in the
                # Finished flight; hostapd waits the same way).
                self._phase2 = _ServerPhase2.WAIT_ACK
                return self._frame(out)
        # TLS 1.3, or a resumed TLS 1.2 session: the peer sent the last Finished, so phase 2
        # starts right away.
        return self._send_inner(self._inner.start())

    def _send_inner(self, packet: bytes) -> Step:
        """Send what the inner EAP server produced (Request, Success or Failure)."""
        pkt = parse(packet)
        if isinstance(pkt, EapRequest):
            self._last_inner_id = pkt.identifier
            return self._send(_strip(packet) if self.version == 0 else packet)
        if isinstance(pkt, EapSuccess):
            return self._inner_succeeded(pkt.identifier)
        assert isinstance(pkt, EapFailure)
        self._failure_reason = f"PEAP inner EAP failed: {self._inner.failure_reason}"
        if self.version == 0:
            tlvs = [Tlv.result(ResultStatus.FAILURE)]
            out = _tlv_packet(EapCode.REQUEST, (pkt.identifier + 1) % 256, tlvs)
        else:
            out = packet
        self.tls.write_application_data(out)
        return self._fail(self._failure_reason, self.framing.send(self.tls.data_to_send()))

    def _inner_succeeded(self, identifier: int) -> Step:
        if self.version == 1:
            self._phase2 = _ServerPhase2.V1_SUCCESS_SENT
            return self._send(EapSuccess(identifier).to_bytes())
        self._tlv_id = (identifier + 1) % 256
        self._nonce = secrets.token_bytes(32)
        keys = compound_keys(_tunnel_key(self), self._isk())
        binding = CryptoBinding(0, self.version or 0, 0, self._nonce, b"\x00" * 20)
        mac = compound_mac(keys.cmk, binding.mac_input(EAP_TYPE_PEAP))
        binding = CryptoBinding(0, self.version or 0, 0, self._nonce, mac)
        self._phase2 = _ServerPhase2.RESULT_SENT
        tlvs = [Tlv.result(ResultStatus.SUCCESS), binding.to_tlv()]
        return self._send(_tlv_packet(EapCode.REQUEST, self._tlv_id, tlvs))

    def _isk(self) -> bytes | None:
        """ISK of the authentication method (the first that exported keys): MS-CHAPv2's is the
        server's Recv key then Send key = the first 32 bytes of its MSK."""
        msk = self._inner.msk
        return msk[:32] if msk is not None else None

    # Phase 2 as one table: what a response means in each phase.
    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        return _SERVER_PHASE2[self._phase2](self, app)

    def _on_finished_ack(self, app: bytes) -> Step:
        if app:
            return self._fail("PEAP: data instead of the acknowledgement of Finished")
        self._phase2 = _ServerPhase2.INNER
        return self._send_inner(self._inner.start())

    def _on_inner(self, app: bytes) -> Step:
        if not app:
            return self._fail("PEAP: empty response in phase 2")
        if self.version == 0:
            if _is_tlv_packet(app, EapCode.RESPONSE):
                return self._fail("PEAP: unexpected EAP-TLV response during inner EAP")
            packet = _with_header(EapCode.RESPONSE, self._last_inner_id, app)
        else:
            packet = app
        out = self._inner.receive(packet)
        if out is None:
            return self._fail("PEAP: inner EAP response discarded by the inner EAP server")
        return self._send_inner(out)

    def _on_v1_success_ack(self, app: bytes) -> Step:
        if app:
            return self._fail("PEAPv1: data instead of the acknowledgement of Success")
        self._keys = self._tls_keys()
        return self._succeed()

    def _result_response(self, app: bytes) -> Step:
        if not app:
            return self._fail("PEAP: empty response to the Result TLV")
        if not _is_tlv_packet(app, EapCode.RESPONSE):
            return self._fail("PEAP: expected an EAP-TLV response to the Result TLV")
        try:
            pkt = parse(app)
            assert isinstance(pkt, EapResponse)
            if pkt.identifier != self._tlv_id:
                return self._fail("PEAP: EAP-TLV response with the wrong identifier")
            tlvs = parse_tlvs(pkt.type_data)
            problem = _check_tlvs(tlvs)
            if problem is not None:
                return self._fail(f"PEAP: {problem}")
            result = _result(tlvs)
            binding = _binding(tlvs)
        except (EapError, TlvError) as exc:
            return self._fail(f"PEAP: malformed EAP-TLV response: {exc}")
        if result is not ResultStatus.SUCCESS:
            return self._fail("PEAP: peer answered the Result TLV with failure")
        if binding is None:
            if self.peap.require_cryptobinding:
                return self._fail("PEAP: peer sent no Crypto-Binding TLV (required)")
            self._keys = self._tls_keys()
            return self._succeed()
        if binding.subtype != 1 or binding.version != 0:
            return self._fail("PEAP: Crypto-Binding TLV is not a version 0 Binding Response")
        if binding.received_version != (self.version or 0):
            return self._fail("PEAP: Crypto-Binding received-version mismatch")
        if not hmac.compare_digest(binding.nonce, self._nonce):
            return self._fail("PEAP: Crypto-Binding nonce does not echo ours")
        keys = compound_keys(_tunnel_key(self), self._isk())
        expected = compound_mac(keys.cmk, binding.mac_input(EAP_TYPE_PEAP))
        if not hmac.compare_digest(expected, binding.compound_mac):
            return self._fail(
                "PEAP: cryptobinding compound MAC mismatch (tunnel not bound to "
                "the inner authentication)"
            )
        self._keys = session_keys(keys.ipmk)
        return self._succeed()

    def _tls_keys(self) -> tuple[bytes, bytes]:
        material = key_material(self.tls, EAP_TYPE_PEAP)
        return material[:64], material[64:]


_SERVER_PHASE2: dict[_ServerPhase2, Callable[[EapPeapServer, bytes], Step]] = {
    _ServerPhase2.WAIT_ACK: EapPeapServer._on_finished_ack,
    _ServerPhase2.INNER: EapPeapServer._on_inner,
    _ServerPhase2.RESULT_SENT: EapPeapServer._result_response,
    _ServerPhase2.V1_SUCCESS_SENT: EapPeapServer._on_v1_success_ack,
}


def peap_server_factory(config: PeapServerConfig) -> ServerMethodFactory:
    def factory(identity: bytes) -> EapPeapServer:
        return EapPeapServer(config, identity)

    return factory


@dataclass(frozen=True)
class PeapPeerConfig:
    """PEAP peer settings: ``identity`` answers the inner Identity Request; ``eap_methods``
    are the inner methods (and posture methods) the peer accepts."""

    tls: TlsPeerConfig
    identity: bytes
    eap_methods: tuple[tuple[int, PeerMethodFactory], ...]
    max_version: int = 0
    require_cryptobinding: bool = False


class EapPeapPeer(TlsPeerDriver):
    """PEAP peer: ``EapPeapPeer(config)``; an EapPeerMethod."""

    method_name = "PEAP"

    def __init__(self, config: PeapPeerConfig) -> None:
        if config.max_version not in (0, 1):
            raise ValueError("PEAP max_version must be 0 or 1")
        super().__init__(config.tls, version=0)
        self.peap = config
        self.version = 0
        self._inner = EapPeer(config.identity, list(config.eap_methods), idle_timeout=None)
        self._inner_id = 0
        self._keys: tuple[bytes, bytes] | None = None

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_PEAP

    @property
    def inner_peer(self) -> EapPeer:
        return self._inner

    def msk(self) -> bytes | None:
        return self._keys[0] if self._keys is not None else None

    def _forget_keys(self) -> None:
        self._keys = None

    @property
    def session_id(self) -> bytes | None:
        """EAP Session-Id (RFC 5247 / RFC 9427) once the method succeeded."""
        return session_id(self.tls, EAP_TYPE_PEAP) if self._keys is not None else None

    def emsk(self) -> bytes | None:
        return self._keys[1] if self._keys is not None else None

    def _accept_start(self, msg: Message) -> str | None:
        self.version = min(msg.version, self.peap.max_version)
        self.framing.version = self.version
        return None

    def _handshake_done(self, app: bytes) -> Step:
        if app:
            return self._tunnel(app, empty=False)
        return self._send()

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        if not app:
            return self._send()
        if self.version == 0 and _is_tlv_packet(app, EapCode.REQUEST):
            return self._tlv_request(app)
        if self.version == 0:
            self._inner_id = (self._inner_id + 1) % 256
            packet = _with_header(EapCode.REQUEST, self._inner_id, app)
        else:
            packet = app
        try:
            pkt = parse(packet)
        except EapError as exc:
            return self._fail(f"PEAP: malformed inner EAP packet: {exc}", self.framing.ack())
        out = self._inner.receive(packet)
        if isinstance(pkt, EapSuccess | EapFailure):  # PEAPv1 tunnelled result
            if self._inner.state is PeerState.SUCCESS:
                material = key_material(self.tls, EAP_TYPE_PEAP)
                self._keys = (material[:64], material[64:])
                return self._send(decision=Decision.SUCCESS)
            return self._fail(
                f"PEAP inner EAP failed: {self._inner.failure_reason}", self.framing.ack()
            )
        if out is None:
            reason = self._inner.failure_reason or "inner EAP request discarded"
            return self._fail(f"PEAP: {reason}", self.framing.ack())
        return self._send(_strip(out) if self.version == 0 else out)

    def _tlv_request(self, app: bytes) -> Step:
        try:
            pkt = parse(app)
            assert isinstance(pkt, EapRequest)
            tlvs = parse_tlvs(pkt.type_data)
            problem = _check_tlvs(tlvs)
            if problem is not None:
                return self._fail(f"PEAP: {problem}", self.framing.ack())
            result = _result(tlvs)
            binding = _binding(tlvs)
        except (EapError, TlvError) as exc:
            return self._fail(f"PEAP: malformed EAP-TLV request: {exc}", self.framing.ack())
        if result is not ResultStatus.SUCCESS:
            reply = _tlv_packet(
                EapCode.RESPONSE, pkt.identifier, [Tlv.result(ResultStatus.FAILURE)]
            )
            self.tls.write_application_data(reply)
            return self._fail(
                "PEAP: server reported failure in the Result TLV",
                self.framing.send(self.tls.data_to_send()),
            )
        # The Result TLV stands for the inner EAP-Success.
        self._inner.receive(EapSuccess(self._inner_id).to_bytes())
        if self._inner.state is not PeerState.SUCCESS:
            return self._refuse(
                pkt.identifier,
                "PEAP: server reported success before the inner method completed on this side",
            )
        isk = self._inner.msk
        tk = _tunnel_key(self)
        if binding is None:
            if self.peap.require_cryptobinding:
                return self._refuse(pkt.identifier, "PEAP: server sent no Crypto-Binding TLV")
            material = key_material(self.tls, EAP_TYPE_PEAP)
            self._keys = (material[:64], material[64:])
            reply = _tlv_packet(
                EapCode.RESPONSE, pkt.identifier, [Tlv.result(ResultStatus.SUCCESS)]
            )
            return self._send(reply, Decision.SUCCESS)
        keys = compound_keys(tk, isk[:32] if isk is not None else None)
        if binding.subtype != 0 or binding.version != 0:
            return self._refuse(pkt.identifier, "PEAP: Crypto-Binding TLV is not a Request")
        expected = compound_mac(keys.cmk, binding.mac_input(EAP_TYPE_PEAP))
        if not hmac.compare_digest(expected, binding.compound_mac):
            return self._refuse(
                pkt.identifier, "PEAP: server's cryptobinding compound MAC mismatch"
            )
        answer = CryptoBinding(0, self.version, 1, binding.nonce, b"\x00" * 20)
        mac = compound_mac(keys.cmk, answer.mac_input(EAP_TYPE_PEAP))
        answer = CryptoBinding(0, self.version, 1, binding.nonce, mac)
        self._keys = session_keys(keys.ipmk)
        reply = _tlv_packet(
            EapCode.RESPONSE, pkt.identifier, [Tlv.result(ResultStatus.SUCCESS), answer.to_tlv()]
        )
        return self._send(reply, Decision.SUCCESS)

    def _refuse(self, identifier: int, reason: str) -> Step:
        reply = _tlv_packet(EapCode.RESPONSE, identifier, [Tlv.result(ResultStatus.FAILURE)])
        self.tls.write_application_data(reply)
        return self._fail(reason, self.framing.send(self.tls.data_to_send()))
