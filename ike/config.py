"""Typed configuration the IKEv2 engine takes (strongSwan's swanctl.conf vocabulary).

A :class:`PeerConfig` is a swanctl "connection": identities, authentication rounds, IKE
proposals and :class:`ChildConfig` children.  Proposals parse strongSwan's proposal strings
(``aes128-sha256-x25519``, ``aes256gcm16-prfsha384-ecp384``).  The gateway supplies an
:class:`AddressPool` for virtual IPs and EAP server/peer factories; the engine calls them.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ike.constants import DhGroup, EncrId, EsnId, IdType, IntegId, PrfId, ProtocolId, TransformType
from ike.crypto import EncrAlg, encr_alg
from ike.errors import LocalProtocolError
from ike.payloads import IpAddress, Proposal, TrafficSelector, Transform, TransformAttribute

__all__ = [
    "AddressPending",
    "AddressPool",
    "AuthClass",
    "AuthContext",
    "Authorization",
    "ChildConfig",
    "EapPeerLike",
    "EapServerLike",
    "EngineConfig",
    "EspProposal",
    "Identity",
    "IkeProposal",
    "PeerConfig",
    "PrivateKey",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# --------------------------------------------------------------------------------------------
# Identities (RFC 7296, 3.5)


@dataclass(frozen=True, slots=True)
class Identity:
    id_type: int
    data: bytes

    @classmethod
    def parse(cls, text: str) -> Self:
        """strongSwan's rules: an IP address, ``@fqdn``, ``user@host``, a DN, else FQDN."""
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            kind = IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR
            return cls(kind, addr.packed)
        if text.startswith("@"):
            return cls(IdType.ID_FQDN, text[1:].encode())
        if "=" in text and ("," in text or text.split("=", 1)[0].strip().isalpha()):
            return cls(IdType.ID_DER_ASN1_DN, _dn_der(text))
        if "@" in text:
            return cls(IdType.ID_RFC822_ADDR, text.encode())
        return cls(IdType.ID_FQDN, text.encode())

    @classmethod
    def from_name(cls, name: x509.Name) -> Self:
        return cls(IdType.ID_DER_ASN1_DN, name.public_bytes())

    def __str__(self) -> str:
        if self.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
            try:
                return str(ipaddress.ip_address(self.data))
            except ValueError:
                return self.data.hex()
        if self.id_type == IdType.ID_DER_ASN1_DN:
            return _dn_text(self.data) or f"DN:{self.data.hex()}"
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.decode("utf-8", "replace")
        return self.data.hex()


_DN_NAMES = {
    "2.5.4.6": "C",
    "2.5.4.8": "ST",
    "2.5.4.7": "L",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.3": "CN",
    "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.4": "SN",
    "0.9.2342.19200300.100.1.1": "UID",
    "2.5.4.5": "serialNumber",
}


def _der_items(data: bytes) -> list[tuple[int, bytes]] | None:
    """Split DER TLVs (definite lengths only); None when malformed."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            return None
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            if n == 0 or n > 3 or pos + n > len(data):
                return None
            length = int.from_bytes(data[pos : pos + n], "big")
            pos += n
        if pos + length > len(data):
            return None
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out


def _oid_text(body: bytes) -> str:
    if not body:
        return ""
    parts = [str(body[0] // 40), str(body[0] % 40)]
    value = 0
    for b in body[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def _dn_text(der: bytes) -> str | None:
    """A DER Name as strongSwan prints it (``C=CH, O=org, CN=host``), None if unparseable."""
    outer = _der_items(der)
    if not outer or len(outer) != 1 or outer[0][0] != 0x30:
        return None
    rdns = _der_items(outer[0][1])
    if rdns is None:
        return None
    parts = []
    for tag, rdn in rdns:
        atvs = _der_items(rdn) if tag == 0x31 else None
        if not atvs:
            return None
        for atv_tag, atv in atvs:
            fields = _der_items(atv) if atv_tag == 0x30 else None
            if not fields or len(fields) != 2 or fields[0][0] != 0x06:
                return None
            oid = _oid_text(fields[0][1])
            value = fields[1][1].decode("utf-8", "replace")
            parts.append(f"{_DN_NAMES.get(oid, oid)}={value}")
    return ", ".join(parts)


def _dn_der(text: str) -> bytes:
    """A DN in strongSwan order (``C=CH, O=org, CN=host``: most significant RDN first)."""
    from cryptography.x509.oid import NameOID

    oids = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "CN": NameOID.COMMON_NAME,
        "E": NameOID.EMAIL_ADDRESS,
        "DC": NameOID.DOMAIN_COMPONENT,
        "SN": NameOID.SURNAME,
        "UID": NameOID.USER_ID,
    }
    rdns = []
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        oid = oids.get(key.strip().upper())
        if oid is None:
            raise LocalProtocolError(f"unknown DN attribute {key!r} in {text!r}")
        rdns.append(x509.NameAttribute(oid, value.strip()))
    return x509.Name(rdns).public_bytes()


# --------------------------------------------------------------------------------------------
# Proposals

_ENCR_WORDS: dict[str, tuple[EncrId, int | None]] = {
    "aes128": (EncrId.ENCR_AES_CBC, 128),
    "aes192": (EncrId.ENCR_AES_CBC, 192),
    "aes256": (EncrId.ENCR_AES_CBC, 256),
    "aes128gcm16": (EncrId.ENCR_AES_GCM_16, 128),
    "aes192gcm16": (EncrId.ENCR_AES_GCM_16, 192),
    "aes256gcm16": (EncrId.ENCR_AES_GCM_16, 256),
    "aes128gcm128": (EncrId.ENCR_AES_GCM_16, 128),
    "aes192gcm128": (EncrId.ENCR_AES_GCM_16, 192),
    "aes256gcm128": (EncrId.ENCR_AES_GCM_16, 256),
    "chacha20poly1305": (EncrId.ENCR_CHACHA20_POLY1305, None),
}
_INTEG_WORDS: dict[str, tuple[IntegId, PrfId]] = {
    "sha1": (IntegId.AUTH_HMAC_SHA1_96, PrfId.PRF_HMAC_SHA1),
    "sha256": (IntegId.AUTH_HMAC_SHA2_256_128, PrfId.PRF_HMAC_SHA2_256),
    "sha384": (IntegId.AUTH_HMAC_SHA2_384_192, PrfId.PRF_HMAC_SHA2_384),
    "sha512": (IntegId.AUTH_HMAC_SHA2_512_256, PrfId.PRF_HMAC_SHA2_512),
}
_PRF_WORDS: dict[str, PrfId] = {
    "prfsha1": PrfId.PRF_HMAC_SHA1,
    "prfsha256": PrfId.PRF_HMAC_SHA2_256,
    "prfsha384": PrfId.PRF_HMAC_SHA2_384,
    "prfsha512": PrfId.PRF_HMAC_SHA2_512,
}
_DH_WORDS: dict[str, DhGroup] = {
    "modp2048": DhGroup.MODP_2048,
    "modp3072": DhGroup.MODP_3072,
    "modp4096": DhGroup.MODP_4096,
    "ecp256": DhGroup.ECP_256,
    "ecp384": DhGroup.ECP_384,
    "ecp521": DhGroup.ECP_521,
    "curve25519": DhGroup.CURVE25519,
    "x25519": DhGroup.CURVE25519,
    "curve448": DhGroup.CURVE448,
    "x448": DhGroup.CURVE448,
}


def _encr_transform(alg: EncrAlg) -> Transform:
    attrs: tuple[TransformAttribute, ...] = ()
    if alg.encr_id != EncrId.ENCR_CHACHA20_POLY1305:
        attrs = (TransformAttribute(14, alg.key_bits),)
    return Transform(TransformType.ENCR, alg.encr_id, attrs)


def _split_words(text: str) -> list[str]:
    words = [w.strip().lower() for w in text.split("-") if w.strip()]
    if not words:
        raise LocalProtocolError("empty proposal")
    return words


@dataclass(frozen=True, slots=True)
class IkeProposal:
    """An IKE proposal: each tuple lists acceptable transforms in order of preference."""

    encr: tuple[EncrAlg, ...]
    integ: tuple[IntegId, ...]
    prf: tuple[PrfId, ...]
    dh: tuple[DhGroup, ...]

    @classmethod
    def parse(cls, text: str) -> Self:
        encr: list[EncrAlg] = []
        integ: list[IntegId] = []
        prf: list[PrfId] = []
        dh: list[DhGroup] = []
        for w in _split_words(text):
            if w in _ENCR_WORDS:
                eid, bits = _ENCR_WORDS[w]
                alg = encr_alg(eid, bits)
                assert alg is not None
                encr.append(alg)
            elif w in _INTEG_WORDS:
                integ.append(_INTEG_WORDS[w][0])
            elif w in _PRF_WORDS:
                prf.append(_PRF_WORDS[w])
            elif w in _DH_WORDS:
                dh.append(_DH_WORDS[w])
            else:
                raise LocalProtocolError(f"unknown IKE proposal keyword {w!r} in {text!r}")
        aead = [a.aead for a in encr]
        if not encr or not dh:
            raise LocalProtocolError(f"IKE proposal {text!r} needs encryption and a DH group")
        if any(aead) and not all(aead):
            raise LocalProtocolError(f"IKE proposal {text!r} mixes AEAD and classic ciphers")
        if all(aead):
            if not prf:
                prf = [_INTEG_WORDS[w][1] for w in _split_words(text) if w in _INTEG_WORDS]
            integ = []
            if not prf:
                prf = [PrfId.PRF_HMAC_SHA2_256]
        else:
            if not integ:
                raise LocalProtocolError(f"IKE proposal {text!r} needs an integrity algorithm")
            if not prf:
                by_integ = {v[0]: v[1] for v in _INTEG_WORDS.values()}
                prf = [by_integ[i] for i in integ]
        return cls(tuple(encr), tuple(integ), tuple(dict.fromkeys(prf)), tuple(dh))

    def to_proposal(self, number: int, spi: bytes = b"") -> Proposal:
        ts: list[Transform] = [_encr_transform(a) for a in self.encr]
        ts += [Transform(TransformType.PRF, p) for p in self.prf]
        ts += [Transform(TransformType.INTEG, i) for i in self.integ]
        ts += [Transform(TransformType.DH, g) for g in self.dh]
        return Proposal(number, ProtocolId.IKE, spi, tuple(ts))


@dataclass(frozen=True, slots=True)
class EspProposal:
    """An ESP proposal; ``dh`` groups are used for PFS in CREATE_CHILD_SA only."""

    encr: tuple[EncrAlg, ...]
    integ: tuple[IntegId, ...]
    dh: tuple[DhGroup, ...] = ()
    esn: tuple[EsnId, ...] = (EsnId.NO_ESN,)

    @classmethod
    def parse(cls, text: str) -> Self:
        encr: list[EncrAlg] = []
        integ: list[IntegId] = []
        dh: list[DhGroup] = []
        esn: list[EsnId] = []
        for w in _split_words(text):
            if w in _ENCR_WORDS:
                eid, bits = _ENCR_WORDS[w]
                alg = encr_alg(eid, bits)
                assert alg is not None
                encr.append(alg)
            elif w in _INTEG_WORDS:
                integ.append(_INTEG_WORDS[w][0])
            elif w in _DH_WORDS:
                dh.append(_DH_WORDS[w])
            elif w == "esn":
                esn.append(EsnId.ESN)
            elif w == "noesn":
                esn.append(EsnId.NO_ESN)
            else:
                raise LocalProtocolError(f"unknown ESP proposal keyword {w!r} in {text!r}")
        if not encr:
            raise LocalProtocolError(f"ESP proposal {text!r} needs encryption")
        if not all(a.aead for a in encr) and not integ:
            raise LocalProtocolError(f"ESP proposal {text!r} needs an integrity algorithm")
        if all(a.aead for a in encr):
            integ = []
        return cls(tuple(encr), tuple(integ), tuple(dh), tuple(esn or [EsnId.NO_ESN]))

    def to_proposal(self, number: int, spi: bytes, with_dh: bool = False) -> Proposal:
        ts: list[Transform] = [_encr_transform(a) for a in self.encr]
        ts += [Transform(TransformType.INTEG, i) for i in self.integ]
        if with_dh:
            ts += [Transform(TransformType.DH, g) for g in self.dh]
        ts += [Transform(TransformType.ESN, e) for e in self.esn]
        return Proposal(number, ProtocolId.ESP, spi, tuple(ts))


DEFAULT_IKE_PROPOSALS = (
    IkeProposal.parse("aes128-aes256-sha256-sha384-sha512-x25519-ecp256-ecp384-modp3072-modp2048"),
    IkeProposal.parse(
        "aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512"
        "-x25519-ecp256-ecp384-modp3072-modp2048"
    ),
)
DEFAULT_ESP_PROPOSALS = (
    EspProposal.parse("aes128gcm16-aes256gcm16-chacha20poly1305"),
    EspProposal.parse("aes128-aes256-sha256-sha384-sha512"),
)


# --------------------------------------------------------------------------------------------
# Callbacks the gateway supplies


class AddressPending(Exception):
    """Raised by :meth:`AddressPool.acquire` whose answer is not ready yet (a pool in a
    database the adapter asks in a thread).  The responder holds its IKE_AUTH response (the
    peer's retransmits are dropped meanwhile) until the adapter calls
    :meth:`ike.sa.IkeEngine.resume_auth`; ``acquire`` is then called again and must answer."""


class AddressPool(Protocol):
    """Virtual IPs for configuration payloads (the gateway's ``gateway.pools``).

    A pool may also have ``attributes(identity) -> Sequence[tuple[int, bytes]]``: further
    configuration attributes (RFC 7296, 3.15.1) for the CFG_REPLY, each sent when the peer
    asked for its type (like ``PeerConfig.dns``)."""

    def acquire(
        self, identity: Identity, requested: IpAddress | None, version: int
    ) -> IpAddress | None:
        """An address for ``identity`` (IP version 4 or 6), or None when the pool is empty;
        raises :class:`AddressPending` when the answer comes later."""
        ...

    def release(self, identity: Identity, address: IpAddress) -> None: ...


class EapServerLike(Protocol):
    """What the engine needs of ``ike.eap.server.EapServer``."""

    def start(self) -> bytes: ...

    def receive(self, packet: bytes) -> bytes | None: ...

    @property
    def succeeded(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    @property
    def msk(self) -> bytes | None: ...


class EapPeerLike(Protocol):
    """What the engine needs of an EAP peer: Request in, Response (or None) out."""

    def receive(self, packet: bytes) -> bytes | None: ...

    @property
    def succeeded(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    @property
    def msk(self) -> bytes | None: ...


# --------------------------------------------------------------------------------------------
# Connections


class AuthClass(enum.Enum):
    """swanctl's ``auth`` values the engine implements."""

    PSK = "psk"
    PUBKEY = "pubkey"
    EAP = "eap"


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """A swanctl child: an empty ``local_ts`` / ``remote_ts`` means ``dynamic``: the host's
    own address (or the virtual IP assigned to the peer)."""

    name: str
    local_ts: tuple[TrafficSelector, ...] = ()
    remote_ts: tuple[TrafficSelector, ...] = ()
    esp_proposals: tuple[EspProposal, ...] = DEFAULT_ESP_PROPOSALS
    rekey_time: float | None = None
    """Seconds after which this side rekeys the CHILD_SA (swanctl ``rekey_time``); None
    leaves rekeying to the peer (clients such as charon rekey on their own)."""

    @classmethod
    def make(
        cls,
        name: str,
        local_ts: Sequence[str] = (),
        remote_ts: Sequence[str] = (),
        esp_proposals: Sequence[str] = (),
    ) -> Self:
        return cls(
            name,
            tuple(TrafficSelector.from_network(t) for t in local_ts),
            tuple(TrafficSelector.from_network(t) for t in remote_ts),
            tuple(EspProposal.parse(p) for p in esp_proposals) or DEFAULT_ESP_PROPOSALS,
        )


@dataclass(frozen=True, slots=True)
class AuthContext:
    """What :attr:`PeerConfig.authorize` learns about a freshly authenticated peer."""

    ike_sa: bytes
    """The engine's handle of the IKE_SA (our SPI), as in every event."""
    peer_config: str
    remote_id: Identity
    remote: tuple[str, int]
    eap_identity: bytes | None
    eap_server: EapServerLike | None
    """The finished EAP conversation (its methods hold e.g. a posture verdict), if any."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """The CHILD_SA configurations and address pool granted to one IKE_SA."""

    children: tuple[ChildConfig, ...]
    pool: AddressPool | None = None


@dataclass(frozen=True)
class PeerConfig:
    """A swanctl connection.  ``remote_id`` None is ``%any``."""

    name: str
    local_id: Identity
    remote_id: Identity | None = None
    local_auth: AuthClass = AuthClass.PSK
    remote_auth: AuthClass = AuthClass.PSK
    psk: bytes | None = field(default=None, repr=False)
    certificate: x509.Certificate | None = None
    private_key: PrivateKey | None = field(default=None, repr=False)
    intermediates: tuple[x509.Certificate, ...] = ()
    trust_anchors: tuple[x509.Certificate, ...] = ()
    eap_server: Callable[[Identity], EapServerLike] | None = None
    eap_peer: Callable[[], EapPeerLike] | None = None
    eap_identity: bytes | None = None
    ike_proposals: tuple[IkeProposal, ...] = DEFAULT_IKE_PROPOSALS
    children: tuple[ChildConfig, ...] = ()
    pool: AddressPool | None = None
    dns: tuple[IpAddress, ...] = ()
    request_vips: tuple[IpAddress, ...] = ()
    remote_addrs: tuple[str, ...] = ()
    fragmentation: bool = True
    send_certreq: bool = True
    rekey_time: float | None = None
    """Seconds after which this side rekeys the IKE_SA (swanctl ``rekey_time``); None leaves
    it to the peer."""
    dpd_delay: float | None = None
    """Dead peer detection (swanctl ``dpd_delay``): after this many seconds without an
    authenticated IKE message from the peer, send an empty INFORMATIONAL (RFC 7296, 1.4,
    2.4); an unanswered one closes the IKE_SA once the retransmits are exhausted.  ESP
    traffic is not seen by the engine, so a busy tunnel is checked too.  None sends none."""
    authorize: Callable[[AuthContext], Authorization | None] | None = None
    """Responder: called once the peer is authenticated (after EAP, before any virtual IP or
    CHILD_SA); its children and pool replace ``children`` / ``pool`` for this IKE_SA (and
    its rekeys).  None refuses access: the IKE_AUTH answer is AUTHENTICATION_FAILED."""
    reauth_time: int | None = None
    """Responder: ask the initiator to re-authenticate within this many seconds, with an
    AUTH_LIFETIME notify (RFC 4478) in the last IKE_AUTH response, as charon does for its
    ``reauth_time``; a new IKE_AUTH runs the posture assessment again.  None sends none."""
    remote_natt_port: int = 4500
    """Initiator: the peer's NAT-T port, where IKE moves once a NAT is detected (RFC 7296,
    2.23; RFC 3948).  4500 unless the peer listens elsewhere (a gateway on 10500/14500)."""

    def __post_init__(self) -> None:
        if self.dpd_delay is not None and not self.dpd_delay > 0:
            raise LocalProtocolError(f"{self.name}: dpd_delay must be > 0")
        if not 0 < self.remote_natt_port < 65536:
            raise LocalProtocolError(f"{self.name}: remote_natt_port {self.remote_natt_port}")
        for side, auth in (("local", self.local_auth), ("remote", self.remote_auth)):
            if auth is AuthClass.PSK and self.psk is None:
                raise LocalProtocolError(f"{self.name}: {side} auth psk needs a psk")
        if self.local_auth is AuthClass.PUBKEY and (
            self.certificate is None or self.private_key is None
        ):
            raise LocalProtocolError(f"{self.name}: local auth pubkey needs a cert and key")
        if self.remote_auth is AuthClass.PUBKEY and not self.trust_anchors:
            raise LocalProtocolError(f"{self.name}: remote auth pubkey needs trust anchors")
        if self.remote_auth is AuthClass.EAP and self.eap_server is None:
            raise LocalProtocolError(f"{self.name}: remote auth eap needs an EAP server")
        if self.local_auth is AuthClass.EAP and self.eap_peer is None:
            raise LocalProtocolError(f"{self.name}: local auth eap needs an EAP peer")
        if not self.ike_proposals:
            raise LocalProtocolError(f"{self.name}: no IKE proposals")


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True)
class EngineConfig:
    """Engine-wide settings (strongSwan names in parentheses).

    Retransmission follows charon: ``timeout * base ** n`` for n in 0..tries
    (``retransmit_timeout``, ``retransmit_base``, ``retransmit_tries``).
    """

    peers: tuple[PeerConfig, ...]
    cookie_threshold: int = 10
    """Half-open IKE_SAs above which IKE_SA_INIT needs a COOKIE (``cookie_threshold``)."""
    half_open_timeout: float = 30.0
    """Seconds a responder keeps an IKE_SA that has not started IKE_AUTH."""
    auth_timeout: float = 120.0
    """Seconds an EAP conversation in IKE_AUTH may take before the IKE_SA is dropped."""
    keepalive_interval: float | None = 20.0
    """NAT keepalives (RFC 3948, 2.3) from a host behind a NAT after this many idle
    seconds (``keep_alive``); None disables them."""
    retransmit_timeout: float = 4.0
    retransmit_base: float = 1.8
    retransmit_tries: int = 5
    fragment_size: int = 1280
    """Largest IKE message sent before RFC 7383 fragmentation is used (``fragment_size``)."""
    wall_clock: Callable[[], _dt.datetime] = _utcnow
    """Wall clock for certificate validity (monotonic ``now`` drives timers)."""
    debug_export_keys: bool = False
    """Let :meth:`ike.sa.IkeEngine.export_keys` hand out IKE SA keys (for a decryption table
    in tshark; testing only).  Off by default; the engine never logs keys either way."""
    natt_port: int = 4500
    """Our own NAT-T port (charon's ``port_nat_t``): an initiator moves its IKE_SA to it once
    a NAT is detected, and IKE on it goes behind the non-ESP marker (RFC 3948, 2.2)."""
