"""The IKEv2 engine: IKE_SA and CHILD_SA state machines, sans-I/O (RFC 7296).

:class:`IkeEngine` is the aioquic-shaped entry point for one gateway: it takes datagrams with
``receive_datagram(data, addr, now, local=...)``, hands out :class:`Datagram` objects from
``datagrams_to_send(now)``, reports its next deadline with ``get_timer()`` (run it with
``handle_timer(now)``) and queues events (:class:`IkeSaEstablished`, :class:`ChildSaInstalled`,
...) for ``next_event()``.  It never touches a socket or a clock of its own.

Everything that moves an IKE_SA from one state to another lives in :data:`_TRANSITIONS`: the key
is ``(state, exchange type, is_response)``, the value the handler and the states it may move
to.  A message whose key is missing is a protocol error (answered with INVALID_SYNTAX when it
is a request we could decrypt, dropped otherwise).

What the engine does: IKE_SA_INIT (proposal choice in configured order, INVALID_KE_PAYLOAD and
retry, COOKIE above ``cookie_threshold`` half-open SAs, NAT detection and the move to NAT-T,
fragmentation and signature-hash negotiation), IKE_AUTH with PSK, certificates (RFC 7427 and
the classic RSA/ECDSA methods, chain validation, identity against SAN/DN) or EAP (an injected
EAP server/peer; AUTH from the MSK), configuration payloads (virtual IP and DNS from the
connection's :class:`~ike.config.AddressPool`), traffic selector narrowing, CREATE_CHILD_SA
(new CHILD_SA, CHILD_SA rekey with optional PFS, IKE_SA rekey; both answered and started),
INFORMATIONAL (delete, liveness, error notifies), retransmission with charon's backoff, a
one-request window with a response cache for retransmitted requests, simultaneous CHILD_SA
rekeys resolved by the lowest nonce (RFC 7296, 2.8.1), NAT keepalives when behind a NAT.
Not implemented: MOBIKE, redirect, multiple authentication rounds, IKE_SA rekey collisions
(while a request of ours is outstanding a peer's IKE_SA rekey is refused with
TEMPORARY_FAILURE and the peer retries).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import heapq
import hmac
import ipaddress
import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from ike import auth as ikeauth
from ike.config import (
    AddressPending,
    AddressPool,
    AuthClass,
    AuthContext,
    Authorization,
    ChildConfig,
    EapPeerLike,
    EapServerLike,
    EngineConfig,
    EspProposal,
    Identity,
    IkeProposal,
    PeerConfig,
)
from ike.constants import (
    IKE_HEADER_LEN,
    AuthMethod,
    CertEncoding,
    CfgAttribute,
    CfgType,
    DhGroup,
    EncrId,
    ExchangeType,
    HeaderFlag,
    IntegId,
    NotifyType,
    ProtocolId,
    TransformType,
)
from ike.crypto import (
    DH_GROUPS,
    INTEG_ALGS,
    PRF_ALGS,
    DhPrivate,
    EncrAlg,
    IkeKeys,
    IntegAlg,
    PrfAlg,
    derive_child_keys,
    derive_ike_keys,
    rekey_skeyseed,
    skeyseed,
)
from ike.errors import (
    AuthenticationFailed,
    ChildSaNotFound,
    FailedCpRequired,
    IkeError,
    IntegrityCheckFailed,
    InternalAddressFailure,
    InvalidKePayload,
    InvalidSyntax,
    LocalProtocolError,
    NoProposalChosen,
    RemoteProtocolError,
    TemporaryFailure,
    TsUnacceptable,
)
from ike.message import (
    FragmentReassembler,
    Message,
    RawMessage,
    SkCipher,
    decode_message,
    encode_message,
    open_message,
)
from ike.payloads import (
    Authentication,
    CertificatePayload,
    CertificateRequest,
    ConfigAttribute,
    ConfigPayload,
    Delete,
    EapPayload,
    EncryptedFragment,
    EncryptedPayload,
    IDi,
    IDr,
    IpAddress,
    KeyExchange,
    Nonce,
    Notify,
    Payload,
    Proposal,
    SecurityAssociation,
    TrafficSelector,
    Transform,
    TransformAttribute,
    TSi,
    TSr,
    decode_chain,
)

__all__ = [
    "NAT_KEEPALIVE",
    "STAT_NAMES",
    "Address",
    "ChildSaDeleted",
    "ChildSaFailed",
    "ChildSaInstalled",
    "ChildState",
    "Datagram",
    "Event",
    "IkeEngine",
    "IkeSaClosed",
    "IkeSaEstablished",
    "IkeSaRekeyed",
    "IkeSaSecrets",
    "ReauthRequested",
    "SaState",
    "select_proposal",
]

log = logging.getLogger("ike.sa")

Address = tuple[str, int]
"""(IP address as text, UDP port)."""

STAT_NAMES = (
    "datagrams_received",
    "undecodable",
    "unknown_spi",
    "wrong_role",
    "integrity_failed",
    "unexpected_message_id",
    "retransmits_answered",
    "errors_answered",
)
"""Counters in :attr:`IkeEngine.stats`: IKE datagrams fed in; dropped because they did not
parse (garbage, truncated; an IKE_SA_INIT request among them is answered unprotected, RFC 7296,
2.21.1), named no IKE_SA of ours (RFC 7296, 2.21.4: never answered), carried the wrong I flag,
failed the ICV (2.21.2: never answered) or had a message ID outside the window (2.3);
retransmitted requests answered from the response cache; authenticated requests answered
with an error notify."""


@dataclass(frozen=True, repr=False)
class IkeSaSecrets:
    """What a decryption table needs for one IKE_SA (``isakmp.ikev2_decryption_table`` in
    Wireshark): SPIs, SK_e/SK_a both ways and the transform IDs.  Only from
    :meth:`IkeEngine.export_keys` with ``EngineConfig.debug_export_keys``; repr hides keys."""

    spi_i: bytes
    spi_r: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_ai: bytes
    sk_ar: bytes
    encr_id: int
    encr_key_bits: int
    integ_id: int

    def __repr__(self) -> str:
        return f"IkeSaSecrets({self.spi_i.hex()}_i {self.spi_r.hex()}_r, <secret>)"


NONCE_LEN = 32
NAT_KEEPALIVE = b"\xff"
"""RFC 3948, 2.3: the one-octet NAT-keepalive (the UDP adapter sends it without a marker)."""
EAP_SUCCESS, EAP_FAILURE = 3, 4


# --------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True, slots=True)
class Datagram:
    """An IKE message to send from ``local`` to ``remote`` (the adapter adds the non-ESP
    marker when ``local`` is its NAT-T port, :attr:`ike.config.EngineConfig.natt_port`)."""

    data: bytes
    remote: Address
    local: Address


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    ike_sa: bytes
    """Our SPI of the IKE_SA (unique within the engine); every event names the SA by it."""
    spi_i: bytes
    spi_r: bytes
    initiator: bool
    peer_config: str
    local_id: Identity
    remote_id: Identity
    local: Address
    remote: Address
    encr: str
    integ: str
    prf: str
    dh: str
    virtual_ips: tuple[IpAddress, ...]
    eap_identity: bytes | None
    nat_detected: bool


@dataclass(frozen=True, slots=True, repr=False)
class ChildSaInstalled:
    """Keys and selectors for the dataplane: install an inbound and an outbound ESP SA."""

    ike_sa: bytes
    name: str
    spi_in: int
    spi_out: int
    encr_id: int
    encr_key_bits: int
    integ_id: int
    encr_key_in: bytes
    integ_key_in: bytes
    encr_key_out: bytes
    integ_key_out: bytes
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    local: Address
    remote: Address
    udp_encap: bool
    esn: bool
    mode: str = "tunnel"
    protocol: int = ProtocolId.ESP
    replaces: int | None = None
    """Inbound SPI of the CHILD_SA this one rekeys (delete that one when the peer does)."""

    def __repr__(self) -> str:
        return (
            f"ChildSaInstalled({self.name}, in={self.spi_in:08x}, out={self.spi_out:08x}, "
            f"encr={self.encr_id}/{self.encr_key_bits}, integ={self.integ_id}, "
            f"{[str(t) for t in self.local_ts]} === {[str(t) for t in self.remote_ts]})"
        )


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    """The IKE_SA stands but the CHILD_SA could not be set up (the notify says why)."""

    ike_sa: bytes
    name: str
    error: int


@dataclass(frozen=True, slots=True)
class ChildSaDeleted:
    ike_sa: bytes
    spi_in: int
    spi_out: int


@dataclass(frozen=True, slots=True)
class IkeSaClosed:
    ike_sa: bytes
    reason: str
    error: int | None = None
    """The error notify type that ended the SA (sent or received), if any."""


@dataclass(frozen=True, slots=True)
class IkeSaRekeyed:
    """RFC 7296, 2.18: ``new_ike_sa`` replaces ``ike_sa`` (which the peer then deletes); the
    CHILD_SAs and virtual IPs moved to the new IKE_SA."""

    ike_sa: bytes
    new_ike_sa: bytes
    spi_i: bytes
    spi_r: bytes


@dataclass(frozen=True, slots=True)
class ReauthRequested:
    """RFC 4478: the peer's AUTH_LIFETIME notify; re-authenticate within ``lifetime``
    seconds (a new IKE_SA with a full IKE_AUTH, RFC 7296, 2.8.3)."""

    ike_sa: bytes
    lifetime: int


Event = (
    IkeSaEstablished
    | ChildSaInstalled
    | ChildSaFailed
    | ChildSaDeleted
    | IkeSaClosed
    | IkeSaRekeyed
    | ReauthRequested
)


# --------------------------------------------------------------------------------------------
# Proposal selection


@dataclass(frozen=True, slots=True)
class Selected:
    """The transforms chosen from one proposal."""

    number: int
    spi: bytes
    encr: EncrAlg
    integ: IntegAlg | None
    prf: PrfAlg | None
    dh: int
    esn: int

    def to_proposal(self, protocol: int, spi: bytes) -> Proposal:
        ts: list[Transform] = []
        attrs: tuple[TransformAttribute, ...] = ()
        if self.encr.encr_id != EncrId.ENCR_CHACHA20_POLY1305:
            attrs = (TransformAttribute(14, self.encr.key_bits),)
        ts.append(Transform(TransformType.ENCR, self.encr.encr_id, attrs))
        if self.prf is not None:
            ts.append(Transform(TransformType.PRF, self.prf.prf_id))
        if self.integ is not None:
            ts.append(Transform(TransformType.INTEG, self.integ.integ_id))
        if self.dh:
            ts.append(Transform(TransformType.DH, self.dh))
        if protocol != ProtocolId.IKE:
            ts.append(Transform(TransformType.ESN, self.esn))
        return Proposal(self.number, protocol, spi, tuple(ts))


def _offered(prop: Proposal, ttype: TransformType) -> list[tuple[int, int | None]]:
    return [(t.transform_id, t.key_length) for t in prop.of_type(ttype)]


def select_proposal(
    ours: tuple[IkeProposal, ...] | tuple[EspProposal, ...],
    offered: tuple[Proposal, ...],
    protocol: int,
    ke_group: int | None = None,
    with_dh: bool = True,
) -> Selected:
    """Pick the first of *our* proposals (configured preference) that an offered one matches.

    Within a match each transform type takes our first acceptable transform; for DH the
    group of the received KE payload wins when acceptable (saves an INVALID_KE_PAYLOAD round).
    ``with_dh`` False ignores DH transforms (CHILD_SA in IKE_AUTH, RFC 7296 1.2).
    """
    for mine in ours:
        for prop in offered:
            if prop.protocol != protocol:
                continue
            sel = _match(mine, prop, ke_group, with_dh)
            if sel is not None:
                return sel
    raise NoProposalChosen("no acceptable proposal")


def _match(
    mine: IkeProposal | EspProposal, prop: Proposal, ke_group: int | None, with_dh: bool
) -> Selected | None:
    offered_encr = _offered(prop, TransformType.ENCR)
    encr: EncrAlg | None = None
    for alg in mine.encr:
        want_len = None if alg.encr_id == EncrId.ENCR_CHACHA20_POLY1305 else alg.key_bits
        if (alg.encr_id, want_len) in offered_encr:
            encr = alg
            break
    if encr is None:
        return None
    offered_integ = [t for t, _ in _offered(prop, TransformType.INTEG)]
    integ: IntegAlg | None = None
    if encr.aead:
        if any(i != IntegId.NONE for i in offered_integ):
            return None
    else:
        for i in mine.integ:
            if i in offered_integ:
                integ = INTEG_ALGS[i]
                break
        if integ is None:
            return None
    prf: PrfAlg | None = None
    if isinstance(mine, IkeProposal):
        offered_prf = [t for t, _ in _offered(prop, TransformType.PRF)]
        for p in mine.prf:
            if p in offered_prf:
                prf = PRF_ALGS[p]
                break
        if prf is None:
            return None
    offered_dh = [t for t, _ in _offered(prop, TransformType.DH)]
    dh = 0
    if isinstance(mine, IkeProposal) or with_dh:
        acceptable = [g for g in mine.dh if g in offered_dh]
        if not acceptable:
            if isinstance(mine, IkeProposal) or (offered_dh and set(offered_dh) != {0}):
                return None
        else:
            dh = ke_group if ke_group in acceptable else acceptable[0]
    esn = 0
    if isinstance(mine, EspProposal):
        offered_esn = [t for t, _ in _offered(prop, TransformType.ESN)] or [0]
        common = [e for e in mine.esn if e in offered_esn]
        if not common:
            return None
        esn = common[0]
    return Selected(prop.number, prop.spi, encr, integ, prf, dh, esn)


def _check_single(
    prop: Proposal,
    ours: tuple[IkeProposal, ...] | tuple[EspProposal, ...],
    protocol: int,
    with_dh: bool,
) -> Selected:
    """Check a responder's choice: one transform per type, each one we offered."""
    counts: dict[int, int] = {}
    for t in prop.transforms:
        counts[t.transform_type] = counts.get(t.transform_type, 0) + 1
    if any(c > 1 for c in counts.values()) or prop.protocol != protocol:
        raise InvalidSyntax("responder chose more than one transform of a type")
    return select_proposal(ours, (prop,), protocol, None, with_dh)


# --------------------------------------------------------------------------------------------
# Traffic selectors


def _intersect(a: TrafficSelector, b: TrafficSelector) -> TrafficSelector | None:
    if a.ts_type != b.ts_type:
        return None
    if a.ip_proto and b.ip_proto and a.ip_proto != b.ip_proto:
        return None
    lo = max(int(a.start_addr), int(b.start_addr))
    hi = min(int(a.end_addr), int(b.end_addr))
    plo, phi = max(a.start_port, b.start_port), min(a.end_port, b.end_port)
    if lo > hi or plo > phi:
        return None
    mk = ipaddress.IPv4Address if a.ts_type == 7 else ipaddress.IPv6Address
    return TrafficSelector(mk(lo), mk(hi), a.ip_proto or b.ip_proto, plo, phi)


def narrow(
    offered: tuple[TrafficSelector, ...], configured: tuple[TrafficSelector, ...]
) -> tuple[TrafficSelector, ...]:
    """RFC 7296, 2.9: the responder's subset of the offered selectors (deduplicated)."""
    out: list[TrafficSelector] = []
    for c in configured:
        for o in offered:
            x = _intersect(o, c)
            if x is not None and x not in out:
                out.append(x)
    return tuple(out)


def _host_ts(addr: str | IpAddress) -> TrafficSelector:
    a = ipaddress.ip_address(addr)
    return TrafficSelector(a, a)


def _subset(inner: tuple[TrafficSelector, ...], outer: tuple[TrafficSelector, ...]) -> bool:
    return all(any(_intersect(i, o) == i for o in outer) for i in inner)


# --------------------------------------------------------------------------------------------
# The IKE_SA state machine


class SaState(enum.Enum):
    I_INIT_SENT = "initiator: IKE_SA_INIT sent"
    I_AUTH_SENT = "initiator: IKE_AUTH sent"
    I_EAP = "initiator: EAP in progress"
    I_EAP_AUTH_SENT = "initiator: AUTH from MSK sent"
    R_INIT_DONE = "responder: IKE_SA_INIT answered"
    R_EAP = "responder: EAP in progress"
    R_EAP_DONE = "responder: EAP succeeded, waiting for AUTH"
    ESTABLISHED = "established"
    DELETING = "deleting"
    CLOSED = "closed"


S = SaState
_INIT, _AUTH = ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH
_CHILD, _INFO = ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL
_REQ, _RESP = False, True

_TRANSITIONS: dict[tuple[SaState, int, bool], tuple[str, frozenset[SaState]]] = {
    # initiator
    (S.I_INIT_SENT, _INIT, _RESP): ("_i_init_response", frozenset({S.I_INIT_SENT, S.I_AUTH_SENT})),
    (S.I_AUTH_SENT, _AUTH, _RESP): ("_i_auth_response", frozenset({S.ESTABLISHED, S.I_EAP})),
    (S.I_EAP, _AUTH, _RESP): ("_i_eap_response", frozenset({S.I_EAP, S.I_EAP_AUTH_SENT})),
    (S.I_EAP_AUTH_SENT, _AUTH, _RESP): ("_i_eap_auth_response", frozenset({S.ESTABLISHED})),
    # responder
    # (staying in R_INIT_DONE / R_EAP_DONE: the response waits for the pool, resume_auth)
    (S.R_INIT_DONE, _AUTH, _REQ): (
        "_r_auth_request",
        frozenset({S.ESTABLISHED, S.R_EAP, S.R_INIT_DONE}),
    ),
    (S.R_EAP, _AUTH, _REQ): ("_r_eap_request", frozenset({S.R_EAP, S.R_EAP_DONE})),
    (S.R_EAP_DONE, _AUTH, _REQ): (
        "_r_eap_auth_request",
        frozenset({S.ESTABLISHED, S.R_EAP_DONE}),
    ),
    # both, once authenticated
    (S.ESTABLISHED, _INFO, _REQ): ("_info_request", frozenset({S.ESTABLISHED})),
    (S.ESTABLISHED, _INFO, _RESP): ("_info_response", frozenset({S.ESTABLISHED})),
    (S.ESTABLISHED, _CHILD, _REQ): ("_create_child_request", frozenset({S.ESTABLISHED})),
    (S.ESTABLISHED, _CHILD, _RESP): (
        "_create_child_response",
        frozenset({S.ESTABLISHED, S.DELETING}),
    ),
    (S.DELETING, _INFO, _REQ): ("_info_request", frozenset({S.DELETING})),
    (S.DELETING, _INFO, _RESP): ("_delete_response", frozenset()),
    (S.R_EAP, _INFO, _REQ): ("_info_request", frozenset({S.R_EAP})),
    (S.R_EAP_DONE, _INFO, _REQ): ("_info_request", frozenset({S.R_EAP_DONE})),
    (S.I_EAP, _INFO, _REQ): ("_info_request", frozenset({S.I_EAP})),
}
"""(state, exchange, is_response) -> (handler, states it may move to); CLOSED is always allowed."""


@dataclass(slots=True)
class _Outstanding:
    message_id: int
    datagrams: list[bytes]
    tries: int
    deadline: float
    deletes: tuple[bytes, ...] = ()
    """Inbound SPIs of the CHILD_SAs this request deletes."""


class ChildState(enum.Enum):
    INSTALLED = "installed"
    REKEYING = "rekeying (our CREATE_CHILD_SA is in flight)"
    REKEYED = "rekeyed (a newer CHILD_SA replaces it; the peer deletes this one)"
    DELETING = "deleting (our Delete is in flight)"
    DELETED = "deleted"


C = ChildState
_CHILD_TRANSITIONS: dict[tuple[ChildState, str], ChildState] = {
    (C.INSTALLED, "rekey"): C.REKEYING,
    (C.REKEYING, "rekey_failed"): C.INSTALLED,
    (C.REKEYING, "rekey_lost"): C.REKEYED,  # RFC 7296, 2.8.1: the peer's rekey survives
    (C.INSTALLED, "peer_rekeyed"): C.REKEYED,
    (C.REKEYING, "peer_rekeyed"): C.REKEYING,  # a collision, decided when ours completes
    (C.REKEYED, "peer_rekeyed"): C.REKEYED,
    (C.INSTALLED, "delete"): C.DELETING,
    (C.REKEYING, "delete"): C.DELETING,
    (C.REKEYED, "delete"): C.DELETING,
    (C.DELETING, "delete_acked"): C.DELETED,
    (C.INSTALLED, "peer_deleted"): C.DELETED,
    (C.REKEYING, "peer_deleted"): C.DELETED,
    (C.REKEYED, "peer_deleted"): C.DELETED,
    (C.DELETING, "peer_deleted"): C.DELETED,  # both sent Delete (RFC 7296, 1.4.1)
    (C.INSTALLED, "ike_closed"): C.DELETED,
    (C.REKEYING, "ike_closed"): C.DELETED,
    (C.REKEYED, "ike_closed"): C.DELETED,
    (C.DELETING, "ike_closed"): C.DELETED,
}
"""The CHILD_SA state machine: (state, event) -> next state; anything else is a bug."""


@dataclass(slots=True)
class _ChildState:
    name: str
    spi_in: bytes
    spi_out: bytes = b""
    config: ChildConfig | None = None
    local_ts: tuple[TrafficSelector, ...] = ()
    remote_ts: tuple[TrafficSelector, ...] = ()
    rekey_at: float | None = None
    state: ChildState = ChildState.INSTALLED


@dataclass(slots=True)
class _PendingChild:
    sa: SecurityAssociation | None
    tsi: TSi | None
    tsr: TSr | None
    cp: ConfigPayload | None


class _NotifyError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Close(Exception):
    def __init__(self, reason: str, error: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass(eq=False, repr=False)
class IkeSa:
    """One IKE_SA; created and driven by :class:`IkeEngine` only (its repr shows no secret)."""

    engine: IkeEngine
    initiator: bool
    spi_i: bytes
    spi_r: bytes
    local: Address
    remote: Address
    state: SaState
    peer: PeerConfig | None = None
    candidates: tuple[PeerConfig, ...] = ()
    nonce_i: bytes = b""
    nonce_r: bytes = b""
    dh: DhPrivate | None = None
    suite: Selected | None = None
    keys: IkeKeys | None = None
    cipher: SkCipher | None = None
    init_request: bytes = b""
    init_response: bytes = b""
    next_out: int = 0
    next_in: int = 0
    outstanding: _Outstanding | None = None
    cached_response: tuple[int, list[bytes]] | None = None
    reassembler: FragmentReassembler = field(default_factory=FragmentReassembler)
    peer_fragmentation: bool = False
    peer_hashes: tuple[int, ...] | None = None
    nat_local: bool = False
    nat_remote: bool = False
    remote_id: Identity | None = None
    local_id: Identity | None = None
    eap_server: EapServerLike | None = None
    eap_peer: EapPeerLike | None = None
    eap_identity: bytes | None = None
    last_eap: bytes | None = None
    msk: bytes | None = None
    pending_child: _PendingChild | None = None
    held_auth: tuple[int, list[Payload], _PendingChild] | None = None
    """IKE_AUTH response waiting for an :class:`AddressPending` pool (message ID, payloads
    so far, the CHILD_SA request)."""
    children: list[_ChildState] = field(default_factory=list)
    vips: list[IpAddress] = field(default_factory=list)
    expires: float | None = None
    cookie: bytes | None = None
    id_i_body: bytes = b""
    id_r_body: bytes = b""
    child_offer: tuple[_ChildState, tuple[TrafficSelector, ...], tuple[TrafficSelector, ...]] | (
        None
    ) = None
    initial_contact: bool = False
    pending_create: tuple[Any, ...] | None = None
    granted: Authorization | None = None
    collision: tuple[_ChildState, bytes, bytes] | None = None
    answered: _Outstanding | None = None
    keepalive_at: float | None = None
    ike_rekey_at: float | None = None
    dpd_at: float | None = None
    queued: list[tuple[int, list[Payload]]] = field(default_factory=list)

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return f"IkeSa({self.spi_i.hex()}_i {self.spi_r.hex()}_r, {role}, {self.state.name})"

    # -- identity ---------------------------------------------------------------------------

    @property
    def local_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    def _set_state(self, new: SaState, allowed: frozenset[SaState] | None = None) -> None:
        if allowed is not None and new not in allowed and new is not S.CLOSED:
            raise LocalProtocolError(f"transition {self.state.name} -> {new.name} not in table")
        if new is not self.state:
            log.debug("IKE_SA %s: %s -> %s", self.local_spi.hex(), self.state.name, new.name)
        self.state = new

    # -- sending ----------------------------------------------------------------------------

    def _message(self, exchange: int, payloads: list[Payload], response: bool, mid: int) -> Message:
        return Message(
            self.spi_i, self.spi_r, exchange, mid, response, self.initiator, tuple(payloads)
        )

    def _encode(self, msg: Message, protect: bool = True) -> list[bytes]:
        cipher = self.cipher if protect else None
        frag = (
            self.engine.config.fragment_size
            if self.peer_fragmentation and msg.exchange_type != _INIT
            else None
        )
        return encode_message(msg, cipher, frag)

    def send_request(
        self, exchange: int, payloads: list[Payload], now: float, protect: bool = True
    ) -> None:
        if self.outstanding is not None and exchange == _INFO and self.state is S.ESTABLISHED:
            self.queued.append((exchange, payloads))  # window size 1 (RFC 7296, 2.3)
            return
        msg = self._message(exchange, payloads, False, self.next_out)
        log.debug("IKE_SA %s sending %s", self.local_spi.hex(), msg.describe())
        datagrams = self._encode(msg, protect)
        deletes = tuple(
            spi
            for p in payloads
            if isinstance(p, Delete) and p.protocol == ProtocolId.ESP
            for spi in p.spis
        )
        self.outstanding = _Outstanding(
            self.next_out, datagrams, 0, now + self.engine.config.retransmit_timeout, deletes
        )
        self.engine._emit_datagrams(datagrams, self)
        if exchange == _INIT:
            self.init_request = datagrams[0]

    def send_response(
        self, exchange: int, mid: int, payloads: list[Payload], protect: bool = True
    ) -> list[bytes]:
        msg = self._message(exchange, payloads, True, mid)
        log.debug("IKE_SA %s sending %s", self.local_spi.hex(), msg.describe())
        datagrams = self._encode(msg, protect)
        self.cached_response = (mid, datagrams)
        self.engine._emit_datagrams(datagrams, self)
        return datagrams

    # -- timers -----------------------------------------------------------------------------

    def timer(self) -> float | None:
        times = [t for t in (self.expires, self.outstanding and self.outstanding.deadline) if t]
        if self.state is S.ESTABLISHED and self.outstanding is None:
            times += [
                c.rekey_at
                for c in self.children
                if c.rekey_at is not None and c.state is C.INSTALLED
            ]
            if self.ike_rekey_at is not None:
                times.append(self.ike_rekey_at)
            if self.dpd_at is not None:
                times.append(self.dpd_at)
        if self.state is S.ESTABLISHED and self.keepalive_at is not None:
            times.append(self.keepalive_at)
        return min(times) if times else None

    def on_timer(self, now: float) -> None:
        cfg = self.engine.config
        if self.expires is not None and now >= self.expires:
            raise _Close("timeout waiting for the peer (half-open or authentication)")
        out = self.outstanding
        if out is not None and now >= out.deadline:
            if out.tries >= cfg.retransmit_tries:
                raise _Close("peer not responding: retransmits exhausted")
            out.tries += 1
            out.deadline = now + cfg.retransmit_timeout * cfg.retransmit_base**out.tries
            log.debug(
                "IKE_SA %s retransmit %d of message %d",
                self.local_spi.hex(),
                out.tries,
                out.message_id,
            )
            self.engine._emit_datagrams(out.datagrams, self)
        if self.state is S.ESTABLISHED and self.keepalive_at is not None:
            if now >= self.keepalive_at:
                self.engine._emit_datagrams([NAT_KEEPALIVE], self)
        if self.state is S.ESTABLISHED and self.outstanding is None:
            if self.ike_rekey_at is not None and now >= self.ike_rekey_at:
                self.ike_rekey_at = None
                self.start_ike_rekey(now)
                return
            if self.dpd_at is not None and now >= self.dpd_at:
                # RFC 7296, 2.4: an empty INFORMATIONAL; its answer (or any other
                # authenticated message) moves dpd_at on, no answer closes the IKE_SA.
                self._touch_dpd(now)
                self.send_request(_INFO, [], now)
                return
            due = [
                c
                for c in self.children
                if c.rekey_at is not None and now >= c.rekey_at and c.state is C.INSTALLED
            ]
            if due:
                self.start_child_rekey(due[0], now)

    # -- receiving --------------------------------------------------------------------------

    def receive(self, raw: RawMessage, remote: Address, local: Address, now: float) -> None:
        h = raw.header
        if raw.is_response:
            out = self.outstanding
            if out is None or h.message_id != out.message_id:
                log.debug("dropping response with unexpected message ID %d", h.message_id)
                self.engine.stats["unexpected_message_id"] += 1
                return
        else:
            if self.cached_response is not None and h.message_id == self.cached_response[0]:
                enc = raw.encrypted
                if not isinstance(enc, EncryptedFragment) or enc.number == 1:
                    # RFC 7296, 2.11: answer where the retransmission came from (the SA's
                    # addresses only move with a new, authenticated request).
                    self.engine.stats["retransmits_answered"] += 1
                    self.engine._out.extend(
                        Datagram(d, remote, local) for d in self.cached_response[1]
                    )
                return
            if h.message_id != self.next_in:
                log.debug(
                    "dropping request with message ID %d (want %d)", h.message_id, self.next_in
                )
                self.engine.stats["unexpected_message_id"] += 1
                return
        if h.exchange_type == _INIT:
            msg = raw.plain()
        else:
            opened = self._open(raw)
            if opened is None:
                return
            msg = opened
        log.debug("IKE_SA %s received %s", self.local_spi.hex(), msg.describe())
        if h.exchange_type != _INIT:
            # RFC 7296, 2.23: follow the peer behind a NAT (authenticated messages only).
            self.remote, self.local = remote, local
            if self.dpd_at is not None:
                self._touch_dpd(now)
        key = (self.state, h.exchange_type, raw.is_response)
        entry = _TRANSITIONS.get(key)
        if raw.is_response:
            self.answered, self.outstanding = self.outstanding, None
            self.next_out += 1
        if entry is None:
            if not raw.is_response:
                self.next_in += 1
                self.engine.stats["errors_answered"] += 1
                self.send_response(
                    h.exchange_type, h.message_id, [Notify(NotifyType.INVALID_SYNTAX)]
                )
            log.debug("no transition for %s", key)
            return
        handler_name, allowed = entry
        handler: Callable[[Message, float], SaState] = getattr(self, handler_name)
        if raw.is_response:
            new = handler(msg, now)
            self._set_state(new, allowed)
            if self.queued and self.outstanding is None and self.state is S.ESTABLISHED:
                next_exchange, next_payloads = self.queued.pop(0)
                self.send_request(next_exchange, next_payloads, now)
            return
        self.next_in += 1
        try:
            new = handler(msg, now)
        except RemoteProtocolError as exc:
            log.info("IKE_SA %s: %s", self.local_spi.hex(), exc)
            payloads: list[Payload] = [Notify(exc.notify_type, exc.notify_data)]
            self.engine.stats["errors_answered"] += 1
            self.send_response(h.exchange_type, h.message_id, payloads)
            if self.state is not S.ESTABLISHED:
                raise _Close(str(exc), exc.notify_type) from None
            return
        self._set_state(new, allowed)

    def _open(self, raw: RawMessage) -> Message | None:
        if self.cipher is None:
            return None
        enc = raw.encrypted
        try:
            if isinstance(enc, EncryptedFragment):
                done = self.reassembler.add(raw, self.cipher)
                if done is None:
                    return None
                first, plain = done
                return raw.plain(raw.payloads[:-1] + decode_chain(first, plain))
            if isinstance(enc, EncryptedPayload):
                return open_message(raw, self.cipher)
        except IntegrityCheckFailed as exc:
            log.info("dropping message: %s", exc)  # RFC 7296, 2.21.2: never answered
            self.engine.stats["integrity_failed"] += 1
            return None
        except RemoteProtocolError as exc:
            if not raw.is_response:
                # Authenticated but unparseable: answer with the error (RFC 7296, 2.5, 2.21.2).
                self.next_in += 1
                self.engine.stats["errors_answered"] += 1
                self.send_response(
                    raw.header.exchange_type,
                    raw.header.message_id,
                    [Notify(exc.notify_type, exc.notify_data)],
                )
                return None
            log.info("dropping message: %s", exc)
            return None
        log.debug("dropping unprotected message in a protected exchange")
        return None

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _one(msg: Message, cls: type[Payload], required: bool = True) -> Payload | None:
        found = msg.get(cls)
        if len(found) > 1:
            raise InvalidSyntax(f"more than one {cls.__name__} payload")
        if not found:
            if required:
                raise InvalidSyntax(f"missing {cls.__name__} payload")
            return None
        return found[0]

    @staticmethod
    def _notifies(msg: Message) -> dict[int, Notify]:
        return {p.notify_type: p for p in msg.payloads if isinstance(p, Notify)}

    @staticmethod
    def _error_notify(msg: Message) -> Notify | None:
        for p in msg.payloads:
            if isinstance(p, Notify) and p.notify_type < 16384:
                return p
        return None

    def _prf(self) -> PrfAlg:
        assert self.suite is not None and self.suite.prf is not None
        return self.suite.prf

    def _derive(self, g_ir: bytes, rekey_from: tuple[PrfAlg, bytes] | None = None) -> None:
        assert self.suite is not None
        prf = self._prf()
        if rekey_from is None:
            seed = skeyseed(prf, self.nonce_i, self.nonce_r, g_ir)
        else:
            # RFC 7296, 2.18; the old IKE_SA's PRF computes SKEYSEED (as strongSwan does).
            old_prf, old_sk_d = rekey_from
            seed = rekey_skeyseed(old_prf, old_sk_d, g_ir, self.nonce_i, self.nonce_r)
        integ_len = self.suite.integ.key_len if self.suite.integ else 0
        keys = derive_ike_keys(
            prf,
            seed,
            self.nonce_i,
            self.nonce_r,
            self.spi_i,
            self.spi_r,
            self.suite.encr.key_len,
            integ_len,
        )
        self.keys = keys
        if self.initiator:
            self.cipher = SkCipher(
                self.suite.encr,
                self.suite.integ,
                keys.sk_ei,
                keys.sk_ai,
                keys.sk_er,
                keys.sk_ar,
                self.engine.random,
            )
        else:
            self.cipher = SkCipher(
                self.suite.encr,
                self.suite.integ,
                keys.sk_er,
                keys.sk_ar,
                keys.sk_ei,
                keys.sk_ai,
                self.engine.random,
            )

    def _nat_hash(self, spi_r: bytes, addr: Address) -> bytes:
        ip = ipaddress.ip_address(addr[0]).packed
        return hashlib.sha1(  # noqa: S324 - RFC 7296, 2.23 prescribes SHA-1
            self.spi_i + spi_r + ip + struct.pack("!H", addr[1])
        ).digest()

    def _nat_notifies(self, spi_r: bytes) -> list[Payload]:
        return [
            Notify(NotifyType.NAT_DETECTION_SOURCE_IP, self._nat_hash(spi_r, self.local)),
            Notify(NotifyType.NAT_DETECTION_DESTINATION_IP, self._nat_hash(spi_r, self.remote)),
        ]

    def _check_nat(self, msg: Message, spi_r: bytes) -> None:
        src = [
            p
            for p in msg.payloads
            if isinstance(p, Notify) and p.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP
        ]
        dst = [
            p
            for p in msg.payloads
            if isinstance(p, Notify) and p.notify_type == NotifyType.NAT_DETECTION_DESTINATION_IP
        ]
        if src:
            want = self._nat_hash(spi_r, self.remote)
            self.nat_remote = not any(hmac.compare_digest(p.data, want) for p in src)
        if dst:
            want = self._nat_hash(spi_r, self.local)
            self.nat_local = not any(hmac.compare_digest(p.data, want) for p in dst)

    def _read_common_init(self, msg: Message) -> None:
        notes = self._notifies(msg)
        self.peer_fragmentation = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in notes
        sha = notes.get(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        if sha is not None:
            if len(sha.data) % 2:
                raise InvalidSyntax("SIGNATURE_HASH_ALGORITHMS of odd length")
            self.peer_hashes = tuple(
                int.from_bytes(sha.data[i : i + 2], "big") for i in range(0, len(sha.data), 2)
            )

    def _init_extras(self, peers: tuple[PeerConfig, ...]) -> list[Payload]:
        extra: list[Payload] = []
        if any(p.fragmentation for p in peers):
            extra.append(Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        extra.append(
            Notify(
                NotifyType.SIGNATURE_HASH_ALGORITHMS,
                b"".join(h.to_bytes(2, "big") for h in ikeauth.SUPPORTED_HASHES),
            )
        )
        return extra

    # -- authentication ---------------------------------------------------------------------

    def _octets(self, of_initiator: bool, id_body: bytes) -> bytes:
        assert self.keys is not None
        if of_initiator:
            return ikeauth.signed_octets(
                self.init_request, self.nonce_r, self._prf(), self.keys.sk_pi, id_body
            )
        return ikeauth.signed_octets(
            self.init_response, self.nonce_i, self._prf(), self.keys.sk_pr, id_body
        )

    def _local_auth_payloads(self, peer: PeerConfig, id_body: bytes) -> list[Payload]:
        """CERT(s) and AUTH proving our identity with the connection's local auth."""
        octets = self._octets(self.initiator, id_body)
        if peer.local_auth is AuthClass.PSK:
            assert peer.psk is not None
            return [Authentication(AuthMethod.PSK, ikeauth.psk_auth(self._prf(), peer.psk, octets))]
        if peer.local_auth is AuthClass.PUBKEY:
            assert peer.certificate is not None and peer.private_key is not None
            from cryptography.hazmat.primitives.serialization import Encoding

            out: list[Payload] = [
                CertificatePayload(
                    CertEncoding.X509_SIGNATURE, peer.certificate.public_bytes(Encoding.DER)
                )
            ]
            out += [
                CertificatePayload(CertEncoding.X509_SIGNATURE, c.public_bytes(Encoding.DER))
                for c in peer.intermediates
            ]
            method, data = ikeauth.sign(peer.private_key, octets, self.peer_hashes)
            out.append(Authentication(method, data))
            return out
        raise LocalProtocolError("EAP is not a local AUTH method for this message")

    def _verify_peer_auth(
        self, peer: PeerConfig, msg: Message, ident: Identity, id_body: bytes
    ) -> None:
        auth_p = self._one(msg, Authentication)
        assert isinstance(auth_p, Authentication)
        octets = self._octets(not self.initiator, id_body)
        if peer.remote_auth is AuthClass.PSK:
            assert peer.psk is not None
            if auth_p.method != AuthMethod.PSK or not ikeauth.verify_psk(
                self._prf(), peer.psk, octets, auth_p.data
            ):
                raise AuthenticationFailed("pre-shared key AUTH does not verify")
            return
        if peer.remote_auth is AuthClass.PUBKEY:
            certs = [
                p
                for p in msg.payloads
                if isinstance(p, CertificatePayload) and p.encoding == CertEncoding.X509_SIGNATURE
            ]
            if not certs:
                raise AuthenticationFailed("no certificate received")
            try:
                leaf = x509.load_der_x509_certificate(certs[0].data)
                inter = tuple(x509.load_der_x509_certificate(c.data) for c in certs[1:])
            except ValueError:
                raise AuthenticationFailed("unparseable certificate") from None
            ikeauth.validate_chain(leaf, inter, peer.trust_anchors, self.engine.config.wall_clock())
            if not ikeauth.identity_matches_cert(ident, leaf):
                raise AuthenticationFailed(f"identity {ident} does not match the certificate")
            ikeauth.verify_signature(leaf, auth_p.method, auth_p.data, octets)
            return
        raise AuthenticationFailed("peer must authenticate with EAP")

    def _msk_auth(self, of_initiator: bool, id_body: bytes) -> bytes:
        assert self.keys is not None
        secret = self.msk if self.msk else (self.keys.sk_pi if of_initiator else self.keys.sk_pr)
        return ikeauth.psk_auth(self._prf(), secret, self._octets(of_initiator, id_body))

    # -- CHILD_SA ---------------------------------------------------------------------------

    def _new_spi(self) -> bytes:
        while True:
            spi = self.engine.random(4)
            if int.from_bytes(spi, "big") >= 256:
                return spi

    def _child_keys_event(
        self,
        child: _ChildState,
        sel: Selected,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
        exchange: tuple[bool, bytes, bytes, bytes | None] | None = None,
        replaces: int | None = None,
    ) -> ChildSaInstalled:
        """``exchange`` = (we requested, Ni, Nr, g^ir) of a CREATE_CHILD_SA; None for the
        CHILD_SA of IKE_AUTH (RFC 7296, 2.17)."""
        assert self.keys is not None
        integ_len = sel.integ.key_len if sel.integ else 0
        we_requested, ni, nr, g_ir = exchange or (self.initiator, self.nonce_i, self.nonce_r, None)
        child.local_ts, child.remote_ts = local_ts, remote_ts
        if child.config is not None and child.config.rekey_time is not None:
            child.rekey_at = self.engine._now + child.config.rekey_time
        ck = derive_child_keys(
            self._prf(), self.keys.sk_d, ni, nr, sel.encr.key_len, integ_len, g_ir
        )
        if we_requested:
            e_in, a_in, e_out, a_out = ck.encr_r, ck.integ_r, ck.encr_i, ck.integ_i
        else:
            e_in, a_in, e_out, a_out = ck.encr_i, ck.integ_i, ck.encr_r, ck.integ_r
        udp = self.nat_local or self.nat_remote or self.local[1] == self.engine.config.natt_port
        return ChildSaInstalled(
            self.local_spi,
            child.name,
            int.from_bytes(child.spi_in, "big"),
            int.from_bytes(child.spi_out, "big"),
            sel.encr.encr_id,
            sel.encr.key_bits,
            sel.integ.integ_id if sel.integ else 0,
            e_in,
            a_in,
            e_out,
            a_out,
            local_ts,
            remote_ts,
            self.local,
            self.remote,
            udp,
            bool(sel.esn),
            replaces=replaces,
        )

    def _r_child(self, pending: _PendingChild) -> list[Payload]:
        """Responder: CP, SA and TS for the CHILD_SA of IKE_AUTH, or an error notify."""
        peer = self.peer
        assert peer is not None
        out: list[Payload] = []
        try:
            if pending.cp is not None and pending.cp.cfg_type == CfgType.CFG_REQUEST:
                out.append(self._assign_vips(peer, pending.cp))
            if pending.sa is None or pending.tsi is None or pending.tsr is None:
                return out  # no CHILD_SA asked for
            for cfg in self._child_configs():
                remote_cfg = cfg.remote_ts or self._dynamic_remote_ts(pending.tsi.selectors)
                local_cfg = cfg.local_ts or (_host_ts(self.local[0]),)
                tsi = narrow(pending.tsi.selectors, remote_cfg)
                tsr = narrow(pending.tsr.selectors, local_cfg)
                if tsi and tsr:
                    break
            else:
                raise TsUnacceptable("no child matches the traffic selectors")
            sel = select_proposal(
                cfg.esp_proposals, pending.sa.proposals, ProtocolId.ESP, with_dh=False
            )
        except RemoteProtocolError as exc:
            self.engine._events.append(ChildSaFailed(self.local_spi, "", exc.notify_type))
            return [*out, Notify(exc.notify_type, exc.notify_data)]
        child = _ChildState(cfg.name, self._new_spi(), sel.spi, cfg)
        self.children.append(child)
        out += [
            SecurityAssociation((sel.to_proposal(ProtocolId.ESP, child.spi_in),)),
            TSi(tsi),
            TSr(tsr),
        ]
        self.engine._events.append(self._child_keys_event(child, sel, tsr, tsi))
        return out

    def _assign_vips(self, peer: PeerConfig, cp: ConfigPayload) -> Payload:
        attrs: list[ConfigAttribute] = []
        wants = {a.attr_type: a for a in cp.attributes}
        ident = self.remote_id
        assert ident is not None
        for version, code in (
            (4, CfgAttribute.INTERNAL_IP4_ADDRESS),
            (6, CfgAttribute.INTERNAL_IP6_ADDRESS),
        ):
            if code not in wants:
                continue
            pool = self._pool()
            if pool is None:
                raise InternalAddressFailure("no pool for a virtual IP request")
            value = wants[code].value
            if len(value) not in ((0, 4) if version == 4 else (0, 17)):
                raise InvalidSyntax("INTERNAL_IP_ADDRESS attribute of a wrong length")
            req_data = value[: 4 if version == 4 else 16]
            requested: IpAddress | None = None
            if req_data and any(req_data):
                requested = ipaddress.ip_address(req_data)
            try:
                addr = pool.acquire(ident, requested, version)
            except AddressPending:
                del self.vips[len(self.vips) - len(attrs) :]  # asked again on resume
                raise
            if addr is None:
                raise InternalAddressFailure("address pool exhausted")
            self.vips.append(addr)
            value = addr.packed + (b"\x80" if version == 6 else b"")
            attrs.append(ConfigAttribute(code, value))
        for dns in peer.dns:
            code = (
                CfgAttribute.INTERNAL_IP4_DNS if dns.version == 4 else CfgAttribute.INTERNAL_IP6_DNS
            )
            if code in wants:
                attrs.append(ConfigAttribute(code, dns.packed))
        pool = self._pool()
        more = getattr(pool, "attributes", None) if pool is not None else None
        if more is not None:
            for typ, value in more(ident):
                attr = ConfigAttribute(int(typ), bytes(value))
                if typ in wants and attr not in attrs:
                    attrs.append(attr)
        return ConfigPayload(CfgType.CFG_REPLY, tuple(attrs))

    def _release_vips(self) -> None:
        pool = self._pool()
        if pool is not None and self.remote_id is not None:
            for v in self.vips:
                pool.release(self.remote_id, v)
        if not self.initiator:
            self.vips.clear()

    def _child_event(self, child: _ChildState, event: str) -> None:
        """Move a CHILD_SA through :data:`_CHILD_TRANSITIONS`; DELETED emits ChildSaDeleted
        and forgets it."""
        new = _CHILD_TRANSITIONS.get((child.state, event))
        if new is None:
            raise LocalProtocolError(f"CHILD_SA {child.name}: {event} in {child.state.name}")
        log.debug(
            "CHILD_SA %s %s: %s -> %s", child.name, child.spi_in.hex(), child.state.name, new.name
        )
        child.state = new
        if new is C.DELETED:
            if child in self.children:
                self.children.remove(child)
            self.engine._events.append(
                ChildSaDeleted(
                    self.local_spi,
                    int.from_bytes(child.spi_in, "big"),
                    int.from_bytes(child.spi_out, "big"),
                )
            )

    def _dynamic_remote_ts(
        self, offered: tuple[TrafficSelector, ...]
    ) -> tuple[TrafficSelector, ...]:
        """swanctl's ``dynamic`` remote selector: the peer's virtual IPs, else its address.
        Behind a NAT its address is not the one it proposes (RFC 7296, 2.23.1): then the
        single host it offers stands for itself."""
        if self.vips:
            return tuple(_host_ts(v) for v in self.vips)
        hosts: tuple[TrafficSelector, ...] = (_host_ts(self.remote[0]),)
        if self.nat_remote:
            hosts += tuple(t for t in offered if t.start_addr == t.end_addr)
        return hosts

    def _child_configs(self) -> tuple[ChildConfig, ...]:
        assert self.peer is not None
        if self.granted is not None:
            return tuple(self.granted.children)  # an empty grant allows no CHILD_SA
        return tuple(self.peer.children) or (ChildConfig("default"),)

    def _pool(self) -> AddressPool | None:
        if self.granted is not None:
            return self.granted.pool
        return self.peer.pool if self.peer is not None else None

    def _authorize(self) -> None:
        """Ask the connection's ``authorize`` hook what this authenticated peer may have."""
        peer = self.peer
        assert peer is not None and self.remote_id is not None
        if peer.authorize is None:
            return
        granted = peer.authorize(
            AuthContext(
                self.local_spi,
                peer.name,
                self.remote_id,
                self.remote,
                self.eap_identity,
                self.eap_server,
            )
        )
        if granted is None:
            raise AuthenticationFailed(f"access for {self.remote_id} refused by policy")
        self.granted = granted

    def _replace_older_sas(self) -> None:
        """INITIAL_CONTACT (RFC 7296, 2.4), once the peer is authenticated and before its
        virtual IP is assigned, so the old IKE_SA's lease is released first."""
        if self.initial_contact and not self.initiator:
            self.engine._initial_contact(self)

    def _established(self) -> None:
        assert self.suite is not None and self.peer is not None
        assert self.remote_id is not None and self.local_id is not None
        self.expires = None
        self.engine._events.append(
            IkeSaEstablished(
                self.local_spi,
                self.spi_i,
                self.spi_r,
                self.initiator,
                self.peer.name,
                self.local_id,
                self.remote_id,
                self.local,
                self.remote,
                self.suite.encr.name,
                self.suite.integ.name if self.suite.integ else "NONE",
                self._prf().name,
                DhGroup(self.suite.dh).name,
                tuple(self.vips),
                self.eap_identity,
                self.nat_local or self.nat_remote,
            )
        )
        self._schedule_ike_rekey()

    def _schedule_ike_rekey(self) -> None:
        if self.peer is not None and self.peer.rekey_time is not None:
            self.ike_rekey_at = self.engine._now + self.peer.rekey_time
        self._touch_dpd(self.engine._now)
        interval = self.engine.config.keepalive_interval
        if self.nat_local and interval is not None:
            # RFC 3948, 2.3: we are the one behind the NAT; keep its mapping open.
            self.keepalive_at = self.engine._now + interval

    def _touch_dpd(self, now: float) -> None:
        if self.peer is not None and self.peer.dpd_delay is not None:
            self.dpd_at = now + self.peer.dpd_delay

    # ======================================================================================
    # Responder handlers

    def _r_auth_request(self, msg: Message, now: float) -> SaState:
        idi = self._one(msg, IDi)
        assert isinstance(idi, IDi)
        idr = self._one(msg, IDr, required=False)
        ident = Identity(idi.id_type, idi.data)
        self.remote_id = ident
        self.id_i_body = idi.id_body()
        want_local = Identity(idr.id_type, idr.data) if isinstance(idr, IDr) else None
        self.initial_contact = NotifyType.INITIAL_CONTACT in self._notifies(msg)
        has_auth = bool(msg.get(Authentication))
        peer = None
        for cand in self.candidates:
            if cand.remote_id is not None and cand.remote_id != ident:
                continue
            if want_local is not None and cand.local_id != want_local:
                continue
            if (cand.remote_auth is AuthClass.EAP) == has_auth:
                continue
            peer = cand
            break
        if peer is None:
            raise AuthenticationFailed(f"no connection matches {ident} (AUTH={has_auth})")
        self.peer = peer
        if has_auth:
            self._verify_peer_auth(peer, msg, ident, self.id_i_body)
        self.local_id = peer.local_id
        idr_out = IDr(peer.local_id.id_type, peer.local_id.data)
        self.id_r_body = idr_out.id_body()
        reply: list[Payload] = [idr_out, *self._local_auth_payloads(peer, self.id_r_body)]
        sa_p = self._one(msg, SecurityAssociation, required=False)
        tsi = self._one(msg, TSi, required=False)
        tsr = self._one(msg, TSr, required=False)
        cp = self._one(msg, ConfigPayload, required=False)
        pending = _PendingChild(
            sa_p if isinstance(sa_p, SecurityAssociation) else None,
            tsi if isinstance(tsi, TSi) else None,
            tsr if isinstance(tsr, TSr) else None,
            cp if isinstance(cp, ConfigPayload) else None,
        )
        if peer.remote_auth is AuthClass.EAP:
            assert peer.eap_server is not None
            self.eap_server = peer.eap_server(ident)
            self.pending_child = pending
            first = self.eap_server.start()
            self.last_eap = first
            self.expires = now + self.engine.config.auth_timeout
            reply.append(EapPayload(first))
            self.send_response(_AUTH, msg.message_id, reply)
            return S.R_EAP
        self._authorize()
        self._replace_older_sas()
        return self._r_auth_reply(msg.message_id, reply, pending)

    def _r_auth_reply(self, mid: int, reply: list[Payload], pending: _PendingChild) -> SaState:
        """The last IKE_AUTH response with its CHILD_SA; held while the pool is pending."""
        try:
            child = self._r_child(pending)
        except AddressPending:
            log.info("IKE_SA %s: IKE_AUTH waits for the address pool", self.local_spi.hex())
            self.held_auth = (mid, reply, pending)
            return self.state
        self.held_auth = None
        peer = self.peer
        if peer is not None and peer.reauth_time is not None:
            # RFC 4478, 3: AUTH_LIFETIME goes in the last IKE_AUTH response.
            child.append(Notify(NotifyType.AUTH_LIFETIME, peer.reauth_time.to_bytes(4, "big")))
        self.send_response(_AUTH, mid, reply + child)
        self._established()
        return S.ESTABLISHED

    def resume_auth(self) -> None:
        """The pool has its answer: send the held IKE_AUTH response."""
        if self.held_auth is None or self.state not in (S.R_INIT_DONE, S.R_EAP_DONE):
            return
        self._set_state(self._r_auth_reply(*self.held_auth))

    def _r_eap_request(self, msg: Message, now: float) -> SaState:
        eap_p = self._one(msg, EapPayload)
        assert isinstance(eap_p, EapPayload) and self.eap_server is not None
        answer = self.eap_server.receive(eap_p.message)
        if answer is None:
            answer = self.last_eap  # the EAP layer discarded it: ask again
            assert answer is not None
        self.last_eap = answer
        self.send_response(_AUTH, msg.message_id, [EapPayload(answer)])
        if self.eap_server.failed or (answer and answer[0] == EAP_FAILURE):
            raise _Close("EAP authentication failed", NotifyType.AUTHENTICATION_FAILED)
        if self.eap_server.succeeded:
            self.msk = self.eap_server.msk
            ident = getattr(self.eap_server, "identity", None)
            self.eap_identity = ident if isinstance(ident, bytes) else None
            return S.R_EAP_DONE
        return S.R_EAP

    def _r_eap_auth_request(self, msg: Message, now: float) -> SaState:
        auth_p = self._one(msg, Authentication)
        assert isinstance(auth_p, Authentication)
        want = self._msk_auth(True, self.id_i_body)
        if auth_p.method != AuthMethod.PSK or not hmac.compare_digest(want, auth_p.data):
            raise AuthenticationFailed("AUTH from the EAP MSK does not verify")
        reply: list[Payload] = [
            Authentication(AuthMethod.PSK, self._msk_auth(False, self.id_r_body))
        ]
        assert self.pending_child is not None
        self._authorize()
        self._replace_older_sas()
        return self._r_auth_reply(msg.message_id, reply, self.pending_child)

    # ======================================================================================
    # Initiator handlers

    def start_initiator(self, now: float) -> None:
        peer = self.peer
        assert peer is not None
        if self.dh is None:
            self.dh = DH_GROUPS[peer.ike_proposals[0].dh[0]].generate()
        payloads: list[Payload] = []
        if self.cookie is not None:
            payloads.append(Notify(NotifyType.COOKIE, self.cookie))
        payloads += [
            SecurityAssociation(
                tuple(p.to_proposal(i + 1) for i, p in enumerate(peer.ike_proposals))
            ),
            KeyExchange(self.dh.group, self.dh.public),
            Nonce(self.nonce_i),
            *self._nat_notifies(bytes(8)),
            *self._init_extras((peer,)),
        ]
        self.next_out = 0
        self.send_request(_INIT, payloads, now, protect=False)

    def _i_init_response(self, msg: Message, now: float) -> SaState:
        peer = self.peer
        assert peer is not None
        notes = self._notifies(msg)
        if NotifyType.COOKIE in notes:
            self.cookie = notes[NotifyType.COOKIE].data
            self.start_initiator(now)
            return S.I_INIT_SENT
        if NotifyType.INVALID_KE_PAYLOAD in notes:
            data = notes[NotifyType.INVALID_KE_PAYLOAD].data
            if len(data) != 2:
                raise _Close("malformed INVALID_KE_PAYLOAD", NotifyType.INVALID_SYNTAX)
            group = int.from_bytes(data, "big")
            acceptable = {g for p in peer.ike_proposals for g in p.dh}
            if (
                group not in acceptable
                or group not in DH_GROUPS
                or (self.dh is not None and group == self.dh.group)
            ):
                raise _Close(f"responder wants DH group {group}", NotifyType.INVALID_KE_PAYLOAD)
            log.info("IKE_SA %s: retrying with DH group %d", self.local_spi.hex(), group)
            self.dh = DH_GROUPS[group].generate()
            self.start_initiator(now)
            return S.I_INIT_SENT
        err = self._error_notify(msg)
        if err is not None:
            raise _Close(f"IKE_SA_INIT failed: {_notify_name(err.notify_type)}", err.notify_type)
        sa_p, ke_p, nonce_p = (
            self._one(msg, SecurityAssociation),
            self._one(msg, KeyExchange),
            self._one(msg, Nonce),
        )
        assert isinstance(sa_p, SecurityAssociation) and isinstance(ke_p, KeyExchange)
        assert isinstance(nonce_p, Nonce) and self.dh is not None
        if len(sa_p.proposals) != 1:
            raise _Close("responder returned more than one proposal", NotifyType.INVALID_SYNTAX)
        sel = _check_single(sa_p.proposals[0], peer.ike_proposals, ProtocolId.IKE, True)
        if sel.dh != self.dh.group or ke_p.group != sel.dh:
            raise _Close("responder KE group differs from ours", NotifyType.INVALID_SYNTAX)
        self.suite = sel
        self.spi_r = msg.spi_r
        self.nonce_r = nonce_p.data
        self.init_response = self.engine._last_raw
        self._read_common_init(msg)
        self._check_nat(msg, self.spi_r)
        g_ir = self.dh.exchange(ke_p.data)
        self._derive(g_ir)
        if self.nat_local or self.nat_remote:
            # RFC 7296, 2.23: continue on the NAT-T ports (4500 unless configured otherwise).
            self.local = (self.local[0], self.engine.config.natt_port)
            self.remote = (self.remote[0], peer.remote_natt_port)
        self._send_auth_request(now)
        return S.I_AUTH_SENT

    def _send_auth_request(self, now: float) -> None:
        peer = self.peer
        assert peer is not None
        idi = IDi(peer.local_id.id_type, peer.local_id.data)
        self.local_id = peer.local_id
        self.id_i_body = idi.id_body()
        payloads: list[Payload] = [idi]
        if peer.remote_auth is AuthClass.PUBKEY and peer.send_certreq:
            payloads.append(
                CertificateRequest(
                    CertEncoding.X509_SIGNATURE, ikeauth.certreq_data(peer.trust_anchors)
                )
            )
        if peer.remote_id is not None:
            payloads.append(IDr(peer.remote_id.id_type, peer.remote_id.data))
        if peer.local_auth is not AuthClass.EAP:
            payloads += self._local_auth_payloads(peer, self.id_i_body)
        if peer.request_vips:
            attrs = []
            for v in peer.request_vips:
                code = (
                    CfgAttribute.INTERNAL_IP4_ADDRESS
                    if v.version == 4
                    else CfgAttribute.INTERNAL_IP6_ADDRESS
                )
                attrs.append(ConfigAttribute(code, b"" if int(v) == 0 else v.packed))
                attrs.append(
                    ConfigAttribute(
                        CfgAttribute.INTERNAL_IP4_DNS
                        if v.version == 4
                        else CfgAttribute.INTERNAL_IP6_DNS
                    )
                )
            payloads.append(ConfigPayload(CfgType.CFG_REQUEST, tuple(attrs)))
        if peer.children:
            cfg = peer.children[0]
            child = _ChildState(cfg.name, self._new_spi(), b"", cfg)
            local_ts = cfg.local_ts or (
                (TrafficSelector.from_network("0.0.0.0/0"),)
                if peer.request_vips
                else (_host_ts(self.local[0]),)
            )
            remote_ts = cfg.remote_ts or (_host_ts(self.remote[0]),)
            self.child_offer = (child, local_ts, remote_ts)
            payloads += [
                SecurityAssociation(
                    tuple(
                        p.to_proposal(i + 1, child.spi_in) for i, p in enumerate(cfg.esp_proposals)
                    )
                ),
                TSi(local_ts),
                TSr(remote_ts),
            ]
        self.send_request(_AUTH, payloads, now)

    def _i_auth_response(self, msg: Message, now: float) -> SaState:
        peer = self.peer
        assert peer is not None
        err = self._error_notify(msg)
        if err is not None and err.notify_type in (
            NotifyType.AUTHENTICATION_FAILED,
            NotifyType.INVALID_SYNTAX,
            NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
        ):
            raise _Close(f"IKE_AUTH failed: {_notify_name(err.notify_type)}", err.notify_type)
        idr = self._one(msg, IDr)
        assert isinstance(idr, IDr)
        ident = Identity(idr.id_type, idr.data)
        if peer.remote_id is not None and ident != peer.remote_id:
            self._fail_auth_initiator(now, f"responder identity {ident} is not {peer.remote_id}")
        self.remote_id = ident
        self.id_r_body = idr.id_body()
        try:
            if peer.remote_auth is AuthClass.EAP:
                raise AuthenticationFailed("responders cannot authenticate with EAP")
            self._verify_peer_auth(peer, msg, ident, self.id_r_body)
        except AuthenticationFailed as exc:
            self._fail_auth_initiator(now, str(exc))
        if peer.local_auth is AuthClass.EAP:
            eap_p = self._one(msg, EapPayload)
            assert isinstance(eap_p, EapPayload) and peer.eap_peer is not None
            self.eap_peer = peer.eap_peer()
            self._i_eap_step(eap_p, now)
            return S.I_EAP
        self._i_child_result(msg)
        self._established()
        self._auth_lifetime(msg)
        return S.ESTABLISHED

    def _auth_lifetime(self, msg: Message) -> None:
        """RFC 4478: an AUTH_LIFETIME notify (in the last IKE_AUTH response, or later in an
        INFORMATIONAL) asks us to re-authenticate within its lifetime."""
        life = self._notifies(msg).get(NotifyType.AUTH_LIFETIME)
        if life is not None and len(life.data) == 4:
            seconds = int.from_bytes(life.data, "big")
            self.engine._events.append(ReauthRequested(self.local_spi, seconds))

    def _fail_auth_initiator(self, now: float, reason: str) -> None:
        """RFC 7296, 2.21.2: tell the responder in an INFORMATIONAL, then give up."""
        self.send_request(_INFO, [Notify(NotifyType.AUTHENTICATION_FAILED)], now)
        raise _Close(reason, NotifyType.AUTHENTICATION_FAILED)

    def _i_eap_step(self, eap_p: EapPayload, now: float) -> None:
        assert self.eap_peer is not None
        answer = self.eap_peer.receive(eap_p.message)
        if answer is None:
            raise _Close("EAP peer discarded the request", NotifyType.AUTHENTICATION_FAILED)
        self.send_request(_AUTH, [EapPayload(answer)], now)

    def _i_eap_response(self, msg: Message, now: float) -> SaState:
        eap_p = self._one(msg, EapPayload, required=False)
        if not isinstance(eap_p, EapPayload):
            err = self._error_notify(msg)
            raise _Close("IKE_AUTH (EAP) failed", err.notify_type if err else None)
        assert self.eap_peer is not None
        code = eap_p.message[0]
        if code == EAP_FAILURE:
            raise _Close("EAP-Failure received", NotifyType.AUTHENTICATION_FAILED)
        if code == EAP_SUCCESS:
            self.eap_peer.receive(eap_p.message)
            self.msk = self.eap_peer.msk
            self.send_request(
                _AUTH, [Authentication(AuthMethod.PSK, self._msk_auth(True, self.id_i_body))], now
            )
            return S.I_EAP_AUTH_SENT
        self._i_eap_step(eap_p, now)
        return S.I_EAP

    def _i_eap_auth_response(self, msg: Message, now: float) -> SaState:
        err = self._error_notify(msg)
        if err is not None and err.notify_type == NotifyType.AUTHENTICATION_FAILED:
            raise _Close("IKE_AUTH (MSK) failed", err.notify_type)
        auth_p = self._one(msg, Authentication)
        assert isinstance(auth_p, Authentication)
        want = self._msk_auth(False, self.id_r_body)
        if auth_p.method != AuthMethod.PSK or not hmac.compare_digest(want, auth_p.data):
            self._fail_auth_initiator(now, "responder AUTH from the MSK does not verify")
        self._i_child_result(msg)
        self._established()
        self._auth_lifetime(msg)
        return S.ESTABLISHED

    def _i_child_result(self, msg: Message) -> None:
        peer = self.peer
        assert peer is not None
        cp = self._one(msg, ConfigPayload, required=False)
        if isinstance(cp, ConfigPayload) and cp.cfg_type == CfgType.CFG_REPLY:
            for a in cp.attributes:
                if a.attr_type == CfgAttribute.INTERNAL_IP4_ADDRESS and len(a.value) == 4:
                    self.vips.append(ipaddress.IPv4Address(a.value))
                elif a.attr_type == CfgAttribute.INTERNAL_IP6_ADDRESS and len(a.value) == 17:
                    self.vips.append(ipaddress.IPv6Address(a.value[:16]))
        if self.child_offer is None:
            return
        child, local_ts, remote_ts = self.child_offer
        self.child_offer = None
        err = self._error_notify(msg)
        if err is not None:
            self.engine._events.append(ChildSaFailed(self.local_spi, child.name, err.notify_type))
            return
        try:
            if peer.request_vips and not self.vips:
                raise FailedCpRequired("no virtual IP assigned")
            sa_p = self._one(msg, SecurityAssociation)
            tsi = self._one(msg, TSi)
            tsr = self._one(msg, TSr)
            assert isinstance(sa_p, SecurityAssociation) and isinstance(tsi, TSi)
            assert isinstance(tsr, TSr) and child.config is not None
            if len(sa_p.proposals) != 1:
                raise NoProposalChosen("responder returned more than one ESP proposal")
            sel = _check_single(
                sa_p.proposals[0], child.config.esp_proposals, ProtocolId.ESP, False
            )
            if len(sel.spi) != 4:
                raise InvalidSyntax("ESP SPI must be 4 octets")
            if not _subset(tsi.selectors, local_ts) or not _subset(tsr.selectors, remote_ts):
                raise TsUnacceptable("responder widened the traffic selectors")
        except RemoteProtocolError as exc:
            self.engine._events.append(ChildSaFailed(self.local_spi, child.name, exc.notify_type))
            return
        child.spi_out = sel.spi
        self.children.append(child)
        self.engine._events.append(self._child_keys_event(child, sel, tsi.selectors, tsr.selectors))

    # ======================================================================================
    # Both roles, established

    def _info_request(self, msg: Message, now: float) -> SaState:
        reply: list[Payload] = []
        deletes = [p for p in msg.payloads if isinstance(p, Delete)]
        for d in deletes:
            if d.protocol == ProtocolId.IKE:
                self.send_response(_INFO, msg.message_id, [])
                raise _Close("deleted by peer")
        spis_back: list[bytes] = []
        for d in deletes:
            if d.protocol != ProtocolId.ESP:
                continue
            for spi in d.spis:
                for child in list(self.children):
                    if child.spi_out == spi:
                        # RFC 7296, 1.4.1: no Delete back for one we are deleting ourselves.
                        if child.state is not C.DELETING:
                            spis_back.append(child.spi_in)
                        self._child_event(child, "peer_deleted")
        if spis_back:
            reply.append(Delete(ProtocolId.ESP, tuple(spis_back)))
        err = self._error_notify(msg)
        self.send_response(_INFO, msg.message_id, reply)
        self._auth_lifetime(msg)
        if err is not None and err.notify_type == NotifyType.AUTHENTICATION_FAILED:
            raise _Close("peer reports AUTHENTICATION_FAILED", err.notify_type)
        return self.state

    def _info_response(self, msg: Message, now: float) -> SaState:
        # RFC 7296, 1.4.1: our Delete was answered (with or without the peer's half).
        acked = self.answered.deletes if self.answered is not None else ()
        for child in [c for c in self.children if c.state is C.DELETING]:
            if child.spi_in in acked:
                self._child_event(child, "delete_acked")
        return S.ESTABLISHED

    def start_child_delete(self, spi_in: int, now: float) -> None:
        child = next(
            (
                c
                for c in self.children
                if int.from_bytes(c.spi_in, "big") == spi_in and c.state is not C.DELETING
            ),
            None,
        )
        if child is None:
            raise LocalProtocolError(f"no CHILD_SA with inbound SPI {spi_in:08x}")
        self._child_event(child, "delete")
        self.send_request(_INFO, [Delete(ProtocolId.ESP, (child.spi_in,))], now)

    def _delete_response(self, msg: Message, now: float) -> SaState:
        raise _Close("deleted")

    def _create_child_request(self, msg: Message, now: float) -> SaState:
        """RFC 7296, 1.3: a new CHILD_SA, a CHILD_SA rekey (REKEY_SA) or an IKE_SA rekey."""
        sa_p = self._one(msg, SecurityAssociation)
        nonce_p = self._one(msg, Nonce)
        ke_p = self._one(msg, KeyExchange, required=False)
        assert isinstance(sa_p, SecurityAssociation) and isinstance(nonce_p, Nonce)
        ke = ke_p if isinstance(ke_p, KeyExchange) else None
        if sa_p.proposals and sa_p.proposals[0].protocol == ProtocolId.IKE:
            if ke is None:
                raise InvalidSyntax("IKE_SA rekey without KE")
            self._rekey_ike(msg, sa_p, nonce_p, ke)
            return S.ESTABLISHED
        peer = self.peer
        assert peer is not None
        tsi_p, tsr_p = self._one(msg, TSi), self._one(msg, TSr)
        assert isinstance(tsi_p, TSi) and isinstance(tsr_p, TSr)
        rekey = self._notifies(msg).get(NotifyType.REKEY_SA)
        old: _ChildState | None = None
        if rekey is not None:
            old = next(
                (c for c in self.children if c.spi_out == rekey.spi and c.state is not C.DELETING),
                None,
            )
            if old is None:
                raise ChildSaNotFound("REKEY_SA for an unknown CHILD_SA", rekey.spi)
        configs = (
            (old.config,) if old is not None and old.config is not None else self._child_configs()
        )
        for cfg in configs:
            remote_cfg = cfg.remote_ts or self._peer_ts(tsi_p.selectors)
            tsi = narrow(tsi_p.selectors, remote_cfg)
            tsr = narrow(tsr_p.selectors, cfg.local_ts or self._own_ts())
            if tsi and tsr:
                break
        else:
            raise TsUnacceptable("no child matches the traffic selectors")
        sel = select_proposal(
            cfg.esp_proposals,
            sa_p.proposals,
            ProtocolId.ESP,
            ke.group if ke else None,
            with_dh=True,
        )
        g_ir: bytes | None = None
        reply_ke: list[Payload] = []
        if sel.dh:
            if ke is None or ke.group != sel.dh:
                raise InvalidKePayload(f"want DH group {sel.dh} for PFS", sel.dh)
            mine = DH_GROUPS[sel.dh].generate()
            g_ir = mine.exchange(ke.data)
            reply_ke = [KeyExchange(sel.dh, mine.public)]
        nonce_r = self.engine.random(NONCE_LEN)
        child = _ChildState(cfg.name, self._new_spi(), sel.spi, cfg)
        self.children.append(child)
        reply: list[Payload] = [
            SecurityAssociation((sel.to_proposal(ProtocolId.ESP, child.spi_in),)),
            Nonce(nonce_r),
            *reply_ke,
            TSi(tsi),
            TSr(tsr),
        ]
        self.send_response(_CHILD, msg.message_id, reply)
        if old is not None:
            self._child_event(old, "peer_rekeyed")
        pending = self.pending_create
        if old is not None and pending is not None and pending[0] == "child" and pending[1] is old:
            # RFC 7296, 2.8.1: both ends rekey the same CHILD_SA; decided when ours completes.
            self.collision = (child, nonce_p.data, nonce_r)
        self.engine._events.append(
            self._child_keys_event(
                child,
                sel,
                tsr,
                tsi,
                (False, nonce_p.data, nonce_r, g_ir),
                int.from_bytes(old.spi_in, "big") if old is not None else None,
            )
        )
        return S.ESTABLISHED

    def start_child_rekey(self, old: _ChildState, now: float) -> None:
        """RFC 7296, 1.3.3: rekey ``old`` (REKEY_SA, PFS when its proposals name DH groups)."""
        cfg = old.config or ChildConfig(old.name)
        self._child_event(old, "rekey")
        old.rekey_at = None
        new = _ChildState(old.name, self._new_spi(), b"", cfg)
        groups = [g for p in cfg.esp_proposals for g in p.dh]
        dh = DH_GROUPS[groups[0]].generate() if groups else None
        nonce = self.engine.random(NONCE_LEN)
        payloads: list[Payload] = [
            Notify(NotifyType.REKEY_SA, b"", ProtocolId.ESP, old.spi_in),
            SecurityAssociation(
                tuple(
                    p.to_proposal(i + 1, new.spi_in, with_dh=True)
                    for i, p in enumerate(cfg.esp_proposals)
                )
            ),
            Nonce(nonce),
        ]
        if dh is not None:
            payloads.append(KeyExchange(dh.group, dh.public))
        # TSi names the initiator's side of this exchange (that is us).
        payloads += [TSi(old.local_ts), TSr(old.remote_ts)]
        self.pending_create = ("child", old, new, nonce, dh)
        self.send_request(_CHILD, payloads, now)

    def _own_ts(self) -> tuple[TrafficSelector, ...]:
        """swanctl's ``dynamic`` local selector: our virtual IPs (initiator), else our address."""
        if self.initiator and self.vips:
            return tuple(_host_ts(v) for v in self.vips)
        return (_host_ts(self.local[0]),)

    def _peer_ts(self, offered: tuple[TrafficSelector, ...]) -> tuple[TrafficSelector, ...]:
        """swanctl's ``dynamic`` remote selector from either end."""
        if self.initiator:
            return (_host_ts(self.remote[0]),)
        return self._dynamic_remote_ts(offered)

    def start_child_create(self, cfg: ChildConfig, now: float) -> None:
        """RFC 7296, 1.3.1: a new CHILD_SA for ``cfg`` (either end may ask; PFS when its
        proposals name DH groups).  ``dynamic`` selectors are our virtual IPs / address and
        the peer's virtual IPs / address."""
        new = _ChildState(cfg.name, self._new_spi(), b"", cfg)
        groups = [g for p in cfg.esp_proposals for g in p.dh]
        dh = DH_GROUPS[groups[0]].generate() if groups else None
        nonce = self.engine.random(NONCE_LEN)
        local_ts = cfg.local_ts or self._own_ts()
        remote_ts = cfg.remote_ts or self._peer_ts(())
        payloads: list[Payload] = [
            SecurityAssociation(
                tuple(
                    p.to_proposal(i + 1, new.spi_in, with_dh=True)
                    for i, p in enumerate(cfg.esp_proposals)
                )
            ),
            Nonce(nonce),
        ]
        if dh is not None:
            payloads.append(KeyExchange(dh.group, dh.public))
        payloads += [TSi(local_ts), TSr(remote_ts)]  # TSi: the requester's side (us)
        self.pending_create = ("new", new, nonce, dh, local_ts, remote_ts)
        self.send_request(_CHILD, payloads, now)

    def _new_child_response(self, msg: Message, pending: tuple[Any, ...]) -> SaState:
        _, new, nonce_i, dh, local_ts, remote_ts = pending
        try:
            err = self._error_notify(msg)
            if err is not None:
                raise _NotifyError(err.notify_type)
            sa_p, nonce_p = self._one(msg, SecurityAssociation), self._one(msg, Nonce)
            tsi, tsr = self._one(msg, TSi), self._one(msg, TSr)
            ke_p = self._one(msg, KeyExchange, required=False)
            assert isinstance(sa_p, SecurityAssociation) and isinstance(nonce_p, Nonce)
            assert isinstance(tsi, TSi) and isinstance(tsr, TSr)
            assert new.config is not None
            if len(sa_p.proposals) != 1:
                raise NoProposalChosen("responder returned more than one proposal")
            sel = _check_single(sa_p.proposals[0], new.config.esp_proposals, ProtocolId.ESP, True)
            g_ir: bytes | None = None
            if sel.dh:
                if dh is None or not isinstance(ke_p, KeyExchange) or ke_p.group != dh.group:
                    raise InvalidSyntax("PFS group of the response differs from ours")
                g_ir = dh.exchange(ke_p.data)
            if len(sel.spi) != 4:
                raise InvalidSyntax("ESP SPI must be 4 octets")
            if not _subset(tsi.selectors, local_ts) or not _subset(tsr.selectors, remote_ts):
                raise TsUnacceptable("responder widened the traffic selectors")
        except (_NotifyError, RemoteProtocolError) as exc:
            code = exc.code if isinstance(exc, _NotifyError) else exc.notify_type
            self.engine._events.append(ChildSaFailed(self.local_spi, new.name, code))
            return S.ESTABLISHED
        new.spi_out = sel.spi
        self.children.append(new)
        self.engine._events.append(
            self._child_keys_event(
                new, sel, tsi.selectors, tsr.selectors, (True, nonce_i, nonce_p.data, g_ir)
            )
        )
        return S.ESTABLISHED

    def start_ike_rekey(self, now: float) -> None:
        """RFC 7296, 1.3.2: rekey this IKE_SA; the new one inherits the CHILD_SAs."""
        peer = self.peer
        assert peer is not None and self.suite is not None
        new_spi = self.engine._new_ike_spi()
        dh = DH_GROUPS[self.suite.dh].generate()
        nonce = self.engine.random(NONCE_LEN)
        self.pending_create = ("ike", new_spi, nonce, dh)
        self.engine._reserved.add(new_spi)
        proposals = tuple(p.to_proposal(i + 1, new_spi) for i, p in enumerate(peer.ike_proposals))
        self.send_request(
            _CHILD,
            [SecurityAssociation(proposals), Nonce(nonce), KeyExchange(dh.group, dh.public)],
            now,
        )

    def _create_child_response(self, msg: Message, now: float) -> SaState:
        pending, self.pending_create = self.pending_create, None
        if pending is None:
            return S.ESTABLISHED
        err = self._error_notify(msg)
        if pending[0] == "ike":
            _, new_spi, nonce_i, dh = pending
            self.engine._reserved.discard(new_spi)
            if err is not None:
                log.info("IKE_SA rekey refused: %s", _notify_name(err.notify_type))
                return S.ESTABLISHED
            return self._finish_ike_rekey(msg, new_spi, nonce_i, dh, now)
        if pending[0] == "new":
            return self._new_child_response(msg, pending)
        _, old, new, nonce_i, dh = pending
        try:
            if err is not None:
                raise _NotifyError(err.notify_type)
            sa_p, nonce_p = self._one(msg, SecurityAssociation), self._one(msg, Nonce)
            tsi, tsr = self._one(msg, TSi), self._one(msg, TSr)
            ke_p = self._one(msg, KeyExchange, required=False)
            assert isinstance(sa_p, SecurityAssociation) and isinstance(nonce_p, Nonce)
            assert isinstance(tsi, TSi) and isinstance(tsr, TSr)
            assert new.config is not None
            if len(sa_p.proposals) != 1:
                raise NoProposalChosen("responder returned more than one proposal")
            sel = _check_single(sa_p.proposals[0], new.config.esp_proposals, ProtocolId.ESP, True)
            g_ir: bytes | None = None
            if sel.dh:
                if dh is None or not isinstance(ke_p, KeyExchange) or ke_p.group != dh.group:
                    raise InvalidSyntax("PFS group of the response differs from ours")
                g_ir = dh.exchange(ke_p.data)
            if len(sel.spi) != 4:
                raise InvalidSyntax("ESP SPI must be 4 octets")
            if not _subset(tsi.selectors, old.local_ts) or not _subset(
                tsr.selectors, old.remote_ts
            ):
                raise TsUnacceptable("responder widened the traffic selectors")
        except (_NotifyError, RemoteProtocolError) as exc:
            code = exc.code if isinstance(exc, _NotifyError) else exc.notify_type
            self.engine._events.append(ChildSaFailed(self.local_spi, new.name, code))
            self.collision = None
            if old.state is C.REKEYING:
                self._child_event(old, "rekey_failed")
            return S.ESTABLISHED
        new.spi_out = sel.spi
        self.children.append(new)
        self.engine._events.append(
            self._child_keys_event(
                new,
                sel,
                tsi.selectors,
                tsr.selectors,
                (True, nonce_i, nonce_p.data, g_ir),
                int.from_bytes(old.spi_in, "big"),
            )
        )
        collision, self.collision = self.collision, None
        if collision is not None:
            # RFC 7296, 2.8.1: the CHILD_SA made with the lowest of the four nonces is
            # redundant and deleted by the end that started its exchange; the other end's
            # rekey survives and that end deletes the old CHILD_SA.
            _, their_ni, our_nr = collision
            lowest = min(nonce_i, nonce_p.data, their_ni, our_nr)
            if lowest in (nonce_i, nonce_p.data):
                if old.state is C.REKEYING:
                    self._child_event(old, "rekey_lost")
                self.start_child_delete(int.from_bytes(new.spi_in, "big"), now)
                return S.ESTABLISHED
        if old.state is not C.DELETED:
            self.start_child_delete(int.from_bytes(old.spi_in, "big"), now)
        return S.ESTABLISHED

    def _finish_ike_rekey(
        self, msg: Message, new_spi: bytes, nonce_i: bytes, dh: DhPrivate, now: float
    ) -> SaState:
        peer = self.peer
        assert peer is not None and self.keys is not None
        sa_p = self._one(msg, SecurityAssociation)
        nonce_p = self._one(msg, Nonce)
        ke_p = self._one(msg, KeyExchange)
        assert isinstance(sa_p, SecurityAssociation) and isinstance(nonce_p, Nonce)
        assert isinstance(ke_p, KeyExchange)
        if len(sa_p.proposals) != 1:
            raise InvalidSyntax("responder returned more than one IKE proposal")
        sel = _check_single(sa_p.proposals[0], peer.ike_proposals, ProtocolId.IKE, True)
        if sel.dh != dh.group or ke_p.group != dh.group or len(sel.spi) != 8:
            raise InvalidSyntax("IKE_SA rekey response does not fit our request")
        g_ir = dh.exchange(ke_p.data)
        # RFC 7296, 2.18: whoever starts the rekey is the initiator of the new IKE_SA.
        self._successor(True, new_spi, sel.spi, sel, nonce_i, nonce_p.data, g_ir)
        self.send_request(_INFO, [Delete(ProtocolId.IKE)], now)
        return S.DELETING

    def _rekey_ike(
        self, msg: Message, sa_p: SecurityAssociation, nonce_p: Nonce, ke: KeyExchange
    ) -> None:
        """RFC 7296, 1.3.2 and 2.18: answer the rekey and set up the new IKE_SA."""
        peer = self.peer
        assert peer is not None and self.keys is not None
        if self.outstanding is not None:
            raise TemporaryFailure("a request of ours is outstanding (rekey collision)")
        sel = select_proposal(peer.ike_proposals, sa_p.proposals, ProtocolId.IKE, ke.group)
        if sel.dh != ke.group:
            raise InvalidKePayload(f"want DH group {sel.dh}", sel.dh)
        if len(sel.spi) != 8:
            raise InvalidSyntax("IKE_SA rekey proposal needs an 8-octet SPI")
        mine = DH_GROUPS[sel.dh].generate()
        g_ir = mine.exchange(ke.data)
        new_spi = self.engine._new_ike_spi()
        nonce_r = self.engine.random(NONCE_LEN)
        self.send_response(
            _CHILD,
            msg.message_id,
            [
                SecurityAssociation((sel.to_proposal(ProtocolId.IKE, new_spi),)),
                Nonce(nonce_r),
                KeyExchange(sel.dh, mine.public),
            ],
        )
        self._successor(False, sel.spi, new_spi, sel, nonce_p.data, nonce_r, g_ir)

    def _successor(
        self,
        initiator: bool,
        spi_i: bytes,
        spi_r: bytes,
        sel: Selected,
        nonce_i: bytes,
        nonce_r: bytes,
        g_ir: bytes,
    ) -> None:
        """The IKE_SA that replaces this one after a rekey (RFC 7296, 2.18): new keys from
        SK_d, the same peer, identities, grant, CHILD_SAs and virtual IPs."""
        assert self.keys is not None
        new = IkeSa(
            self.engine,
            initiator,
            spi_i,
            spi_r,
            self.local,
            self.remote,
            S.ESTABLISHED,
            peer=self.peer,
        )
        new.suite, new.nonce_i, new.nonce_r = sel, nonce_i, nonce_r
        new.peer_fragmentation, new.peer_hashes = self.peer_fragmentation, self.peer_hashes
        new.nat_local, new.nat_remote = self.nat_local, self.nat_remote
        new.local_id, new.remote_id = self.local_id, self.remote_id
        new.eap_identity, new.granted = self.eap_identity, self.granted
        new._derive(g_ir, rekey_from=(self._prf(), self.keys.sk_d))
        new._schedule_ike_rekey()
        new.children, self.children = self.children, []
        new.vips, self.vips = self.vips, []
        self.engine._sas[new.local_spi] = new
        self.engine._dirty.append(new)
        self.engine._events.append(IkeSaRekeyed(self.local_spi, new.local_spi, spi_i, spi_r))

    def start_delete(self, now: float) -> None:
        self.send_request(_INFO, [Delete(ProtocolId.IKE)], now)
        self._set_state(S.DELETING)

    def close_cleanup(self) -> None:
        for child in list(self.children):
            self._child_event(child, "ike_closed")
        self._release_vips()
        self._set_state(S.CLOSED)


def _notify_name(value: int) -> str:
    try:
        return NotifyType(value).name
    except ValueError:
        return str(value)


# --------------------------------------------------------------------------------------------
# The engine


class IkeEngine:
    """All IKE_SAs of one gateway (or one client).  See the module docstring for the API."""

    def __init__(
        self, config: EngineConfig, *, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.config = config
        self.random = random
        self._sas: dict[bytes, IkeSa] = {}
        self._half_open: dict[tuple[bytes, Address], bytes] = {}
        self._init_key: dict[bytes, tuple[bytes, Address]] = {}  # the reverse of _half_open
        self._out: list[Datagram] = []
        self._events: list[Event] = []
        self._cookie_secret = random(32)
        self._last_raw = b""
        self._now = 0.0
        self._reserved: set[bytes] = set()
        # Deadlines: a heap of (when, seq, spi) with lazy deletion; _timer_at holds each SA's
        # current deadline and _dirty the SAs touched since the last resync, so get_timer and
        # handle_timer cost O(log n) per change instead of a scan of every IKE_SA.
        self._timer_heap: list[tuple[float, int, bytes]] = []
        self._timer_at: dict[bytes, float] = {}
        self._timer_seq = 0
        self._dirty: list[IkeSa] = []
        self._r_init: set[bytes] = set()
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        """Counters named in :data:`STAT_NAMES` (read them; the engine only increments)."""

    # -- public API -------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float, *, local: Address) -> None:
        """Feed one IKE message (without the non-ESP marker) received from ``addr`` on
        ``local``."""
        self._now = now
        self.stats["datagrams_received"] += 1
        try:
            raw = decode_message(data)
        except RemoteProtocolError as exc:
            self.stats["undecodable"] += 1
            self._answer_undecodable(data, addr, local, exc)
            return
        self._last_raw = bytes(data)
        h = raw.header
        if h.exchange_type == _INIT and not raw.is_response and raw.is_initiator:
            if h.spi_r != bytes(8) or h.message_id != 0:
                return
            key = (h.spi_i, addr)
            existing = self._half_open.get(key)
            if existing is not None and existing in self._sas:
                half = self._sas[existing]
                if half.cached_response is not None and half.init_request == data:
                    self.stats["retransmits_answered"] += 1
                    self._emit_datagrams(half.cached_response[1], half)
                return
            self._responder_init(raw, addr, local, now)
            return
        ours = h.spi_r if raw.is_initiator else h.spi_i
        sa = self._sas.get(ours)
        if sa is None or sa.state is S.CLOSED:
            # RFC 7296, 2.21.4: outside any IKE_SA; we may answer a request with an
            # unprotected INVALID_IKE_SPI but do not (it would let anyone reflect traffic).
            log.debug("no IKE_SA for SPI %s", ours.hex())
            self.stats["unknown_spi"] += 1
            return
        if sa.initiator == raw.is_initiator:
            self.stats["wrong_role"] += 1
            return  # the I flag says the message comes from our own role
        if h.exchange_type != _INIT and (h.spi_i, h.spi_r) != (sa.spi_i, sa.spi_r):
            # both SPIs name the IKE_SA (RFC 7296, 3.1); a half-matching pair is not ours
            self.stats["unknown_spi"] += 1
            return
        self._run(sa, lambda: sa.receive(raw, addr, local, now))

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        self._resync_timers()
        heap = self._timer_heap
        while heap:
            when, _, spi = heap[0]
            if self._timer_at.get(spi) == when:
                return when
            heapq.heappop(heap)  # superseded
        return None

    def handle_timer(self, now: float) -> None:
        self._now = now
        self._resync_timers()
        heap, due = self._timer_heap, []
        while heap and heap[0][0] <= now:
            when, _, spi = heapq.heappop(heap)
            if self._timer_at.get(spi) == when:
                del self._timer_at[spi]
                sa = self._sas.get(spi)
                if sa is not None:
                    due.append(sa)
        for sa in due:
            self._dirty.append(sa)
            t = sa.timer()
            if t is not None and now >= t:
                self._run(sa, functools.partial(sa.on_timer, now))
        self._resync_timers()

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def initiate(self, peer_name: str, now: float, *, local: Address, remote: Address) -> bytes:
        """Start an IKE_SA with the named connection; returns our SPI (the SA's handle)."""
        self._now = now
        peer = next((p for p in self.config.peers if p.name == peer_name), None)
        if peer is None:
            raise LocalProtocolError(f"no connection named {peer_name!r}")
        spi = self._new_ike_spi()
        sa = IkeSa(self, True, spi, bytes(8), local, remote, S.I_INIT_SENT, peer=peer)
        sa.nonce_i = self.random(NONCE_LEN)
        self._sas[spi] = sa
        self._dirty.append(sa)
        self._run(sa, lambda: sa.start_initiator(now))
        return spi

    def delete_ike_sa(self, ike_sa: bytes, now: float) -> None:
        """Send an INFORMATIONAL Delete for the IKE_SA (and all its CHILD_SAs)."""
        self._now = now
        sa = self._sas.get(ike_sa)
        if sa is None:
            raise LocalProtocolError("no such IKE_SA")
        if sa.state is S.ESTABLISHED:
            self._run(sa, lambda: sa.start_delete(now))
        else:
            self._close(sa, "deleted locally")

    def resume_auth(self, ike_sa: bytes, now: float) -> None:
        """An :class:`ike.config.AddressPending` pool has its answer: finish the IKE_SA's
        held IKE_AUTH (``acquire`` is asked again).  Nothing happens for an IKE_SA that is
        gone or holds nothing."""
        self._now = now
        sa = self._sas.get(ike_sa)
        if sa is not None and sa.held_auth is not None:
            self._run(sa, sa.resume_auth)

    def request_reauth(self, ike_sa: bytes, now: float, lifetime: int = 0) -> None:
        """Ask the peer to re-authenticate within ``lifetime`` seconds: an INFORMATIONAL
        with AUTH_LIFETIME (RFC 4478; charon re-authenticates, a new IKE_AUTH)."""
        self._now = now
        if not 0 <= lifetime < 2**32:
            raise LocalProtocolError(f"AUTH_LIFETIME {lifetime} out of range")
        sa = self._established_sa(ike_sa)
        payload = Notify(NotifyType.AUTH_LIFETIME, lifetime.to_bytes(4, "big"))
        self._run(sa, lambda: sa.send_request(_INFO, [payload], now))

    def send_liveness(self, ike_sa: bytes, now: float) -> None:
        """Dead peer detection: an empty INFORMATIONAL (RFC 7296, 1.4); an unanswered one ends
        in IkeSaClosed once the retransmits are exhausted."""
        self._now = now
        sa = self._established_sa(ike_sa)
        self._run(sa, lambda: sa.send_request(_INFO, [], now))

    def delete_child_sa(self, ike_sa: bytes, spi_in: int, now: float) -> None:
        """Delete one CHILD_SA (named by our inbound SPI) with an INFORMATIONAL exchange."""
        self._now = now
        sa = self._established_sa(ike_sa)
        self._run(sa, lambda: sa.start_child_delete(spi_in, now))

    def rekey_child_sa(self, ike_sa: bytes, spi_in: int, now: float) -> None:
        """Rekey a CHILD_SA (named by our inbound SPI); ChildSaInstalled with ``replaces``
        follows, then the old one is deleted (ChildSaDeleted)."""
        self._now = now
        sa = self._established_sa(ike_sa)
        child = next((c for c in sa.children if int.from_bytes(c.spi_in, "big") == spi_in), None)
        if child is None:
            raise LocalProtocolError(f"no CHILD_SA with inbound SPI {spi_in:08x}")
        if sa.outstanding is not None:
            raise LocalProtocolError("a request is outstanding on this IKE_SA; retry later")
        self._run(sa, lambda: sa.start_child_rekey(child, now))

    def create_child_sa(self, ike_sa: bytes, config: ChildConfig, now: float) -> None:
        """Ask the peer for a new CHILD_SA of ``config`` (CREATE_CHILD_SA, RFC 7296, 1.3.1),
        from either end of the IKE_SA; ChildSaInstalled (or ChildSaFailed) follows.  A
        gateway moving a peer between children (posture re-assessment) pairs this with
        :meth:`set_children` and :meth:`delete_child_sa`."""
        self._now = now
        sa = self._established_sa(ike_sa)
        if sa.outstanding is not None or sa.pending_create is not None:
            raise LocalProtocolError("a request is outstanding on this IKE_SA; retry later")
        self._run(sa, lambda: sa.start_child_create(config, now))

    def set_children(self, ike_sa: bytes, children: tuple[ChildConfig, ...]) -> None:
        """Replace the CHILD_SA configurations granted to an IKE_SA (what the peer may ask
        for from now on); the address pool of its grant stays (its leases live there)."""
        sa = self._established_sa(ike_sa)
        pool = sa._pool()
        sa.granted = Authorization(tuple(children), pool)

    def rekey_ike_sa(self, ike_sa: bytes, now: float) -> None:
        """Rekey the IKE_SA; IkeSaRekeyed names the new one, then the old one is deleted."""
        self._now = now
        sa = self._established_sa(ike_sa)
        if sa.outstanding is not None:
            raise LocalProtocolError("a request is outstanding on this IKE_SA; retry later")
        self._run(sa, lambda: sa.start_ike_rekey(now))

    def _established_sa(self, ike_sa: bytes) -> IkeSa:
        sa = self._sas.get(ike_sa)
        if sa is None or sa.state is not S.ESTABLISHED:
            raise LocalProtocolError("no such established IKE_SA")
        return sa

    def _initial_contact(self, sa: IkeSa) -> None:
        """RFC 7296, 2.4: INITIAL_CONTACT lets us drop older IKE_SAs of the same peer."""
        for other in list(self._sas.values()):
            if (
                other is not sa
                and not other.initiator
                and other.state is S.ESTABLISHED
                and other.remote_id == sa.remote_id
                and other.peer is sa.peer
            ):
                self._close(other, "replaced: the peer sent INITIAL_CONTACT")

    def export_keys(self, ike_sa: bytes) -> IkeSaSecrets:
        """The SPIs and SK_e/SK_a of an IKE_SA with keys, for a decryption table (tshark).

        Testing only: raises :class:`LocalProtocolError` unless the engine was configured with
        ``EngineConfig.debug_export_keys``."""
        if not self.config.debug_export_keys:
            raise LocalProtocolError("key export is off (EngineConfig.debug_export_keys)")
        sa = self._sas.get(ike_sa)
        if sa is None or sa.keys is None or sa.suite is None:
            raise LocalProtocolError("no IKE_SA with keys")
        k, suite = sa.keys, sa.suite
        return IkeSaSecrets(
            sa.spi_i,
            sa.spi_r,
            k.sk_ei,
            k.sk_er,
            k.sk_ai,
            k.sk_ar,
            int(suite.encr.encr_id),
            suite.encr.key_bits,
            int(suite.integ.integ_id) if suite.integ else 0,
        )

    def ike_sa_state(self, ike_sa: bytes) -> SaState | None:
        sa = self._sas.get(ike_sa)
        return sa.state if sa is not None else None

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self._sas))

    # -- internals --------------------------------------------------------------------------

    def _resync_timers(self) -> None:
        dirty, self._dirty = self._dirty, []
        for sa in dirty:
            spi = sa.local_spi
            t = sa.timer() if self._sas.get(spi) is sa else None
            if t == self._timer_at.get(spi):
                continue
            if t is None:
                del self._timer_at[spi]
            else:
                self._timer_at[spi] = t
                self._timer_seq += 1
                heapq.heappush(self._timer_heap, (t, self._timer_seq, spi))

    def _run(self, sa: IkeSa, action: Callable[[], None]) -> None:
        if len(self._dirty) > 4096:  # a caller that never asks get_timer() must not leak
            self._resync_timers()
        self._dirty.append(sa)
        try:
            action()
        except _Close as close:
            self._close(sa, close.reason, close.error)
        except IkeError as exc:
            log.info("IKE_SA %s: %s", sa.local_spi.hex(), exc)
            err = exc.notify_type if isinstance(exc, RemoteProtocolError) else None
            self._close(sa, str(exc), err)

    def _close(self, sa: IkeSa, reason: str, error: int | None = None) -> None:
        if sa.state is S.CLOSED:
            return
        log.info("IKE_SA %s closed: %s", sa.local_spi.hex(), reason)
        sa.close_cleanup()
        self._sas.pop(sa.local_spi, None)
        self._dirty.append(sa)  # drops its deadline
        key = self._init_key.pop(sa.local_spi, None)
        if key is not None and self._half_open.get(key) == sa.local_spi:
            del self._half_open[key]
        self._events.append(IkeSaClosed(sa.local_spi, reason, error))

    def _emit_datagrams(self, datagrams: list[bytes], sa: IkeSa) -> None:
        self._dirty.append(sa)
        for d in datagrams:
            self._out.append(Datagram(d, sa.remote, sa.local))
        if sa.keepalive_at is not None and self.config.keepalive_interval is not None:
            sa.keepalive_at = self._now + self.config.keepalive_interval

    def _new_ike_spi(self) -> bytes:
        while True:
            spi = self.random(8)
            if spi != bytes(8) and spi not in self._sas and spi not in self._reserved:
                return spi

    def _half_open_count(self) -> int:
        # only SAs that entered R_INIT_DONE are candidates: O(half-open), not O(all IKE_SAs)
        for spi in list(self._r_init):
            sa = self._sas.get(spi)
            if sa is None or sa.state is not S.R_INIT_DONE:
                self._r_init.discard(spi)
        return len(self._r_init)

    def _cookie(self, nonce_i: bytes, addr: Address, spi_i: bytes) -> bytes:
        """RFC 7296, 2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)."""
        ip = ipaddress.ip_address(addr[0]).packed
        return b"\x01" + hmac.digest(self._cookie_secret, nonce_i + ip + spi_i, "sha256")

    def _answer_undecodable(
        self, data: bytes, addr: Address, local: Address, exc: RemoteProtocolError
    ) -> None:
        """Unprotected error answers to an IKE_SA_INIT request we cannot parse (RFC 7296,
        2.5 and 2.21.1); anything else that does not parse is dropped."""
        if len(data) < IKE_HEADER_LEN:
            return
        spi_i, spi_r = data[:8], data[8:16]
        exch, flags, mid = data[18], data[19], int.from_bytes(data[20:24], "big")
        if exch != _INIT or flags & HeaderFlag.RESPONSE or spi_r != bytes(8) or mid != 0:
            return
        msg = Message(
            spi_i, bytes(8), _INIT, 0, True, False, (Notify(exc.notify_type, exc.notify_data),)
        )
        self._out.extend(Datagram(d, addr, local) for d in encode_message(msg))

    def _init_error(self, raw: RawMessage, addr: Address, local: Address, notify: Notify) -> None:
        msg = Message(raw.header.spi_i, bytes(8), _INIT, 0, True, False, (notify,))
        self._out.extend(Datagram(d, addr, local) for d in encode_message(msg))

    def _responder_init(self, raw: RawMessage, addr: Address, local: Address, now: float) -> None:
        msg = raw.plain()
        h = raw.header
        try:
            sa_p = IkeSa._one(msg, SecurityAssociation)
            ke_p = IkeSa._one(msg, KeyExchange)
            nonce_p = IkeSa._one(msg, Nonce)
        except RemoteProtocolError as exc:
            self._init_error(raw, addr, local, Notify(exc.notify_type, exc.notify_data))
            return
        assert isinstance(sa_p, SecurityAssociation) and isinstance(ke_p, KeyExchange)
        assert isinstance(nonce_p, Nonce)
        if self._half_open_count() >= self.config.cookie_threshold:
            want = self._cookie(nonce_p.data, addr, h.spi_i)
            first = msg.payloads[0] if msg.payloads else None
            got = (
                first.data
                if isinstance(first, Notify) and (first.notify_type == NotifyType.COOKIE)
                else None
            )
            if got is None or not hmac.compare_digest(got, want):
                self._init_error(raw, addr, local, Notify(NotifyType.COOKIE, want))
                return
        ours = tuple(p for peer in self.config.peers for p in peer.ike_proposals)
        try:
            sel = select_proposal(ours, sa_p.proposals, ProtocolId.IKE, ke_p.group)
            if sel.dh != ke_p.group:
                raise InvalidKePayload(f"want DH group {sel.dh}", sel.dh)
        except RemoteProtocolError as exc:
            log.info("IKE_SA_INIT from %s: %s", addr, exc)
            self._init_error(raw, addr, local, Notify(exc.notify_type, exc.notify_data))
            return
        spi = self._new_ike_spi()
        sa = IkeSa(
            self, False, h.spi_i, spi, local, addr, S.R_INIT_DONE, candidates=self.config.peers
        )
        sa.suite = sel
        sa.nonce_i = nonce_p.data
        sa.nonce_r = self.random(NONCE_LEN)
        sa.init_request = raw.data
        sa.next_in = 1
        sa.expires = now + self.config.half_open_timeout
        try:
            sa._read_common_init(msg)
            sa.dh = DH_GROUPS[sel.dh].generate()
            g_ir = sa.dh.exchange(ke_p.data)
        except RemoteProtocolError as exc:
            self._init_error(raw, addr, local, Notify(exc.notify_type, exc.notify_data))
            return
        sa._check_nat(msg, bytes(8))
        sa._derive(g_ir)
        self._sas[spi] = sa
        self._dirty.append(sa)
        self._half_open[(h.spi_i, addr)] = spi
        self._init_key[spi] = (h.spi_i, addr)
        self._r_init.add(spi)
        payloads: list[Payload] = [
            SecurityAssociation((sel.to_proposal(ProtocolId.IKE, b""),)),
            KeyExchange(sel.dh, sa.dh.public),
            Nonce(sa.nonce_r),
            *sa._nat_notifies(spi),
        ]
        if any(p.remote_auth is AuthClass.PUBKEY for p in self.config.peers):
            anchors = tuple(a for p in self.config.peers for a in p.trust_anchors)
            payloads.append(
                CertificateRequest(CertEncoding.X509_SIGNATURE, ikeauth.certreq_data(anchors))
            )
        if sa.peer_fragmentation and any(p.fragmentation for p in self.config.peers):
            payloads.append(Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        else:
            sa.peer_fragmentation = False
        if sa.peer_hashes is not None:
            payloads.append(
                Notify(
                    NotifyType.SIGNATURE_HASH_ALGORITHMS,
                    b"".join(x.to_bytes(2, "big") for x in ikeauth.SUPPORTED_HASHES),
                )
            )
        datagrams = sa.send_response(_INIT, 0, payloads, protect=False)
        sa.init_response = datagrams[0]
