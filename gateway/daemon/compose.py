"""Composition root: engines built from a :class:`~gateway.daemon.config.GatewayConfig`.

:func:`compose` reads certificates, keys and secrets and builds

* one :class:`ike.config.PeerConfig` per connection, each with an EAP server factory for the
  configured method (EAP-TLS/TTLS/PEAP/MD5/MS-CHAPv2/GTC) and, on connections with
  ``posture.assess``, PT-EAP (or EAP-TNC) inside the tunnel method running a
  :class:`nea.pb_tnc.Tncs` whose validators come from ``[nea]``;
* the virtual-IP pools (:class:`gateway.pools.MemoryPools`) behind the engine's pool callback;
* each connection's ``authorize`` hook (:attr:`ike.config.PeerConfig.authorize`): once the peer
  is authenticated it grants the children and the pool of the IKE_SA's posture verdict
  (``allow`` or ``isolate``), or refuses (``none``).

The verdict lives in a :class:`PostureSession` per IKE_SA, kept by the :class:`AccessRouter`.
PT-EAP runs deep inside a tunnel method whose configuration is shared by every IKE_SA of the
connection, so the posture method finds its session through the IKE_SA whose datagram is being
processed: the daemon's UDP service sets it (:meth:`AccessRouter.focus`) around each datagram.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.daemon.config import (
    ChildSpec,
    ConfigError,
    ConnectionSpec,
    GatewayConfig,
    SecretSpec,
    memory_pools,
    sql_pools,
)
from gateway.pools import MemoryPools, PoolError
from ike.config import (
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    AuthClass,
    AuthContext,
    Authorization,
    ChildConfig,
    EngineConfig,
    EspProposal,
    Identity,
    IkeProposal,
    PeerConfig,
    PrivateKey,
)
from ike.eap.packet import EapType
from ike.errors import IkeError
from ike.payloads import IpAddress, TrafficSelector

__all__ = [
    "AccessRouter",
    "Composition",
    "PostureSession",
    "RoutedPool",
    "Verdict",
    "compose",
]

log = logging.getLogger("gateway.daemon.cfg")

PT_EAP_TYPE = 54
EAP_TNC_TYPE = 38


class Verdict(enum.Enum):
    """What the posture assessment decided for one IKE_SA (``none`` fails the EAP)."""

    ALLOW = "allow"
    ISOLATE = "isolate"
    NONE = "none"


# --------------------------------------------------------------------------------------------
# Per-IKE_SA state: the EAP server and the posture verdict


@dataclass
class PostureSession:
    """One IKE_SA's posture conversation (created when its EAP server is)."""

    ike_sa: bytes
    connection: str
    posture_required: bool
    connection_id: int = 0
    method: Any = None
    """The PT-EAP / EAP-TNC server method, once started."""
    eap_server: Any = None
    tncs: Any = None

    @property
    def verdict(self) -> Verdict:
        if not self.posture_required:
            return Verdict.ALLOW
        if self.method is None:
            return Verdict.NONE
        v = getattr(self.method, "verdict", None)
        if v is None or not v.grants_access:
            return Verdict.NONE
        from nea.pb_tnc import AccessRecommendation

        if v.recommendation is AccessRecommendation.QUARANTINED:
            return Verdict.ISOLATE
        return Verdict.ALLOW


class AccessRouter:
    """Which IKE_SA is being processed, and each IKE_SA's posture session."""

    def __init__(self) -> None:
        self.current: bytes | None = None
        self.sessions: dict[bytes, PostureSession] = {}
        self.given: dict[tuple[bytes, int], IpAddress] = {}
        """Addresses leased to an IKE_SA whose IKE_AUTH is still being answered."""
        self.pool_attrs: dict[bytes, list[tuple[int, bytes]]] = {}

    def pools_done(self, ike_sa: bytes) -> None:
        """IKE_AUTH answered (or the IKE_SA gone): forget its pool answers."""
        for key in [k for k in self.given if k[0] == ike_sa]:
            del self.given[key]
        self.pool_attrs.pop(ike_sa, None)

    def focus(self, ike_sa: bytes | None) -> None:
        self.current = ike_sa

    def session(self, ike_sa: bytes | None = None) -> PostureSession | None:
        key = self.current if ike_sa is None else ike_sa
        return self.sessions.get(key) if key is not None else None

    def verdict(self, ike_sa: bytes | None = None) -> Verdict:
        s = self.session(ike_sa)
        return s.verdict if s is not None else Verdict.ALLOW

    def rename(self, old: bytes, new: bytes) -> None:
        """IKE_SA rekeyed: the new SA inherits the session."""
        if old in self.sessions:
            self.sessions[new] = self.sessions.pop(old)
            self.sessions[new].ike_sa = new

    def drop(self, ike_sa: bytes) -> PostureSession | None:
        return self.sessions.pop(ike_sa, None)


class RoutedPool:
    """The engine's :class:`ike.config.AddressPool` for one verdict of one connection: leases
    from the named pools, first the one of the right address family.  Pools in the
    configuration come from ``gateway.pools.MemoryPools``; ``[pools.NAME] database`` pools from
    the :class:`~gateway.daemon.sqlpool.SqlPoolBackend` (whose first answer for an IKE_SA is
    :class:`ike.config.AddressPending`; the engine asks again when it is there)."""

    def __init__(
        self,
        pools: MemoryPools,
        names: tuple[str, ...],
        verdict: str = "",
        sql: Any = None,
        router: AccessRouter | None = None,
    ) -> None:
        self.pools = pools
        self.names = names
        self.verdict = verdict
        self.sql = sql
        self.router = router
        self.leases: dict[tuple[Identity, IpAddress], str] = {}
        self._given: dict[tuple[bytes, int], IpAddress] = router.given if router else {}
        self._attrs: dict[bytes, list[tuple[int, bytes]]] = router.pool_attrs if router else {}

    def _family(self, name: str) -> int | None:
        p = self.pools.pools.get(name)
        if p is None or not p.ranges:
            return None
        return p.ranges[0].first.version

    def _current(self) -> bytes:
        return (self.router.current if self.router is not None else None) or b""

    def acquire(
        self, identity: Identity, requested: IpAddress | None, version: int
    ) -> IpAddress | None:
        ike_sa = self._current()
        given = self._given.get((ike_sa, version))
        if given is not None:  # asked again after an SQL answer for another family
            return given
        want = requested if requested is not None and requested.version == version else None
        for name in self.names:
            addr: IpAddress | None
            if self.sql is not None and name in self.sql:
                answer = self.sql.lookup(ike_sa, name, str(identity), want, version)
                if answer.error is not None or not answer.family_matches:
                    continue
                addr = answer.address
                if addr is not None:
                    self._attrs.setdefault(ike_sa, []).extend(answer.attributes)
            else:
                if self._family(name) != version:
                    continue
                addr = self.pools.acquire(name, str(identity), want)
                if addr is None and want is not None:
                    addr = self.pools.acquire(name, str(identity), None)
            if addr is not None:
                self.leases[(identity, addr)] = name
                if ike_sa:
                    self._given[(ike_sa, version)] = addr
                log.info("lease %s from pool %s for %s (%s)", addr, name, identity, self.verdict)
                return addr
        log.warning("no address for %s (verdict %s, pools %s)", identity, self.verdict, self.names)
        return None

    def attributes(self, identity: Identity) -> list[tuple[int, bytes]]:
        """Configuration attributes of the SQL pools that leased this IKE_SA's addresses."""
        return list(self._attrs.get(self._current(), ()))

    def release(self, identity: Identity, address: IpAddress) -> None:
        name = self.leases.pop((identity, address), None)
        if name is None:
            return
        if self.sql is not None and name in self.sql:
            self.sql.release(name, address, str(identity))
        else:
            self.pools.release(name, address, str(identity))


# --------------------------------------------------------------------------------------------
# Reading files


def _read(path: Path, key: str, source: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from None


def _load_certs(path: Path, key: str, source: str) -> list[x509.Certificate]:
    data = _read(path, key, source)
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(source, key, f"{path} is not a certificate: {exc}") from None


def _load_key(spec: SecretSpec, source: str) -> PrivateKey:
    assert spec.file is not None
    key = f"secrets.{spec.name}.file"
    data = _read(spec.file, key, source)
    try:
        if b"-----BEGIN" in data:
            k = serialization.load_pem_private_key(data, spec.secret)
        else:
            k = serialization.load_der_private_key(data, spec.secret)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, key, f"{spec.file} is not a usable private key: {exc}") from None
    if not isinstance(
        k, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ConfigError(source, key, f"{spec.file}: unsupported key type {type(k).__name__}")
    return k


def _pub(obj: Any) -> bytes:
    return bytes(
        obj.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# --------------------------------------------------------------------------------------------
# The composition


@dataclass
class ConnectionRuntime:
    spec: ConnectionSpec
    peer: PeerConfig


@dataclass
class Composition:
    """Everything the daemon runs for one configuration."""

    config: GatewayConfig
    engine_config: EngineConfig
    connections: dict[str, ConnectionRuntime]
    pools: MemoryPools
    router: AccessRouter
    policy_engine: Any = None
    evidence_sink: Any = None
    nea_state: Any = None
    fast_keyrings: dict[str, Any] = field(default_factory=dict)
    sql_pools: Any = None
    affected: set[int] = field(default_factory=set)
    policy_changed: bool = False
    """Posture connection ids the policy reload affects (to re-assess)."""
    """The :class:`~gateway.daemon.sqlpool.SqlPoolBackend` of ``[pools.NAME] database``."""
    notes: list[str] = field(default_factory=list)


class _Nea:
    """Validators from ``[nea]`` shared by every TNCS; built on first need."""

    def __init__(self, config: GatewayConfig, clock: Callable[[], _dt.datetime]) -> None:
        self.config = config
        self.clock = clock
        self._ids = itertools.count(1)
        self.engine: Any = None
        self.validators: list[Any] = []
        self.sink: Any = None
        self.policy_changed = False
        """The last :meth:`reload_policy` read a different policy."""

    def _load_policy(self) -> Any:
        spec = self.config.nea
        assert spec is not None
        from nea.policy import PolicyError, load_policy, parse_policy

        try:
            return load_policy(spec.policy) if spec.policy is not None else parse_policy("")
        except PolicyError as exc:
            raise ConfigError(self.config.source, "nea.policy", str(exc)) from None

    def _sync(self, policy: Any) -> None:
        sync = getattr(self.sink, "sync_policy", None)
        if sync is not None:
            sync(policy)

    def reload_policy(self) -> set[int]:
        """Re-read the policy file into the running validators; returns the posture
        connection ids whose assessment it affects (PT-EAP ran inside IKE_AUTH / the RADIUS
        conversation: the daemon asks those endpoints to re-authenticate)."""
        policy = self._load_policy()
        self.policy_changed = policy != self.engine.policy
        affected = set(self.engine.reload(policy))
        self._sync(policy)
        if affected:
            log.info("policy reload affects %d posture session(s)", len(affected))
        return affected

    def start(self, sink: Any = None) -> None:
        spec = self.config.nea
        assert spec is not None
        source = self.config.source
        try:
            from nea.imv import PolicyEngine, build_validators
            from nea.pb_tnc.imv import RecommendationPolicy
        except ImportError as exc:  # pragma: no cover - installation problem
            raise ConfigError(source, "nea", f"validators not available: {exc}") from None
        policy = self._load_policy()
        self.sink = sink
        self._sync(policy)
        self.engine = PolicyEngine(
            policy,
            clock=self.clock,
            sink=sink,
            recommendation_policy=RecommendationPolicy(spec.recommendation_policy),
        )
        self.validators = build_validators(self.engine, spec.validators)

    def next_id(self) -> int:
        """A new posture connection id (IKEv2, RADIUS and PT-TLS share the numbering)."""
        return next(self._ids)

    def pdp_referral(self) -> Any:
        """The PB-PDP-Referral to our PT-TLS listener (``[pt_tls] referral``), or None."""
        spec = self.config.pt_tls
        if spec is None or not spec.referral:
            return None
        from nea.pb_tnc.messages import PbPdpReferral

        name = spec.referral_name or spec.listen
        return PbPdpReferral.from_fqdn(name, spec.port)

    def make_tncs(
        self, identity: bytes, session: PostureSession | None, *, pt_eap: bool = True
    ) -> Any:
        from nea.pb_tnc import PbTncConfig, Tncs

        cid = self.next_id()
        self.engine.open_connection(cid, identity=identity.decode("utf-8", "replace"))
        referral = self.pdp_referral()
        config = (
            PbTncConfig.for_pt_eap(pdp_referral=referral)
            if pt_eap
            else PbTncConfig(pdp_referral=referral)
        )
        tncs = Tncs(self.validators, connection_id=cid, config=config)
        if session is not None:
            session.connection_id = cid
            session.tncs = tncs
        return tncs


def _psk_for(spec: ConnectionSpec, secrets: Sequence[SecretSpec]) -> bytes | None:
    ike = [s for s in secrets if s.kind == "ike"]
    wanted = [i for i in (spec.remote.id, spec.local.id) if i]
    for ident in wanted:
        for s in ike:
            if ident in s.ids:
                return s.secret
    for s in ike:
        if not s.ids:
            return s.secret
    return None


def _passwords(secrets: Sequence[SecretSpec]) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in secrets:
        if s.kind == "eap" and s.secret is not None:
            for i in s.ids:
                out[i] = s.secret.decode("utf-8", "replace")
    return out


def _local_credentials(
    spec: ConnectionSpec, config: GatewayConfig, keys: list[PrivateKey]
) -> tuple[list[x509.Certificate], PrivateKey | None]:
    where = f"connections.{spec.name}.local.certs"
    chain: list[x509.Certificate] = []
    for p in spec.local.certs:
        chain += _load_certs(p, where, config.source)
    if not chain:
        return [], None
    leaf_pub = _pub(chain[0])
    key = next((k for k in keys if _pub(k) == leaf_pub), None)
    if key is None:
        raise ConfigError(
            config.source,
            where,
            f"no private key for {chain[0].subject.rfc4514_string()} in [secrets.private-*]",
        )
    return chain, key


def _anchors(spec: ConnectionSpec, config: GatewayConfig) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for a in config.authorities:
        out += _load_certs(a.cacert, f"authorities.{a.name}.cacert", config.source)
    for p in spec.remote.cacerts:
        out += _load_certs(p, f"connections.{spec.name}.remote.cacerts", config.source)
    return out


def _crls(config: GatewayConfig) -> tuple[bytes, ...]:
    out = []
    for a in config.authorities:
        if a.crl is not None:
            data = _read(a.crl, f"authorities.{a.name}.crl", config.source)
            if b"-----BEGIN" not in data:
                try:
                    crl = x509.load_der_x509_crl(data)
                except ValueError as exc:
                    raise ConfigError(
                        config.source, f"authorities.{a.name}.crl", f"not a CRL: {exc}"
                    ) from None
                data = crl.public_bytes(serialization.Encoding.PEM)
            out.append(data)
    return tuple(out)


class _Refuse:
    """A server method that fails at the first Response (an EAP identity ``remote.eap_id``
    does not allow)."""

    def __init__(self, eap_type: int, identity: bytes) -> None:
        self.eap_type = eap_type
        self.failure_reason: str | None = None
        self._identity = identity

    def start(self) -> bytes:
        return b"\x20"  # the TLS-based methods' Start flag

    def receive(self, type_data: bytes) -> Any:
        from ike.eap.method import Decision, Step

        self.failure_reason = f"EAP identity {self._identity!r} not allowed by remote.eap_id"
        log.info("%s", self.failure_reason)
        return Step(None, Decision.FAILURE)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None


def _table(passwords: dict[str, str]) -> dict[bytes | str, str]:
    return {k: v for k, v in passwords.items()}


def _simple_methods(names: Sequence[str], passwords: dict[str, str]) -> list[tuple[int, Any]]:
    from ike.eap.methods.credentials import StaticPasswords, password_check
    from ike.eap.methods.gtc import gtc_server_factory
    from ike.eap.methods.md5 import md5_server_factory
    from ike.eap.methods.mschapv2 import mschapv2_server_factory

    lookup = StaticPasswords(_table(passwords))
    out: list[tuple[int, Any]] = []
    for n in names:
        if n == "md5":
            out.append((EapType.MD5_CHALLENGE, md5_server_factory(lookup)))
        elif n == "mschapv2":
            out.append((EapType.MSCHAPV2, mschapv2_server_factory(lookup)))
        elif n == "gtc":
            out.append((EapType.GTC, gtc_server_factory(password_check(lookup))))
    return out


def _eap_factory(
    spec: ConnectionSpec,
    config: GatewayConfig,
    chain: list[x509.Certificate],
    key: PrivateKey | None,
    anchors: list[x509.Certificate],
    router: AccessRouter,
    nea: _Nea | None,
    posture_counter: Callable[[PostureSession], None],
    keyrings: dict[str, Any],
) -> Callable[[Identity], Any]:
    """``factory(ike_identity) -> EapServer`` for the connection's ``remote.auth``."""
    from ike.eap.server import EapServer

    auth = spec.remote.auth
    source = config.source
    where = f"connections.{spec.name}.remote.auth"
    passwords = _passwords(config.secrets)
    if spec.remote.eap_id not in (None, "%any"):
        passwords = {k: v for k, v in passwords.items() if k == spec.remote.eap_id}
    tls_config: Any = None
    if auth in ("eap-tls", "eap-ttls", "eap-peap", "eap-fast"):
        from ike.eap_tls.tls import TlsServerConfig

        if key is None:
            raise ConfigError(source, where, f"{auth} needs local.certs and its private key")
        if auth == "eap-tls" and not anchors:
            raise ConfigError(source, where, "eap-tls needs [authorities] to verify clients")
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tls_config = TlsServerConfig(
            cert_chain_pem=_pem(chain),
            key_pem=key_pem,
            ca_pems=tuple(_pem([a]) for a in anchors),
            require_client_cert=auth == "eap-tls",
            crl_pems=_crls(config),
            fragment_size=1024,
        )
    elif not passwords:
        raise ConfigError(source, where, f"{auth} needs [secrets.eap-*] with id and secret")

    fast_base: Any = None
    if auth == "eap-fast":
        from ike.eap.methods.credentials import StaticPasswords
        from ike.eap_fast.method import FastServerConfig, Provisioning

        keyring = _fast_keyring(config, spec.name, int(spec.remote.fast_pac_lifetime), keyrings)
        try:
            fast_base = FastServerConfig(
                tls=tls_config,
                a_id=spec.remote.fast_a_id.encode(),
                eap_methods=tuple(_simple_methods(spec.remote.eap_inner, passwords)),
                provisioning=Provisioning(spec.remote.fast_provisioning),
                password_lookup=StaticPasswords(_table(passwords)) if passwords else None,
                keyring=keyring,
            )
        except ValueError as exc:
            raise ConfigError(source, where, f"eap-fast: {exc}") from None

    posture_type = EAP_TNC_TYPE if spec.posture.method == "eap-tnc" else PT_EAP_TYPE
    assess = spec.posture.assess
    name = spec.name

    def make_posture(identity: bytes) -> Any:
        """The posture method for the IKE_SA being processed (fails closed without one)."""
        from nea.pt_eap import EapTncServer, PtEapServer

        session = router.session()
        if session is None or nea is None:
            raise RuntimeError("posture method outside an IKE_SA's EAP conversation")
        tncs = nea.make_tncs(identity, session, pt_eap=posture_type == PT_EAP_TYPE)
        method = EapTncServer(tncs) if posture_type == EAP_TNC_TYPE else PtEapServer(tncs)
        session.method = method
        posture_counter(session)
        return method

    posture: tuple[tuple[int, Any], ...] = (
        ((posture_type, make_posture),) if assess and nea is not None else ()
    )
    # Method configurations are built once per connection: the TLS context they share may
    # not be changed once a conversation used it.
    methods: list[tuple[int, Any]]
    if auth == "eap-tls":
        from ike.eap_tls.method import EapTlsServer

        allowed = spec.remote.eap_id
        if allowed in (None, "%any"):
            methods = [(EapType.TLS, lambda i: EapTlsServer(tls_config, i))]
        else:
            want = str(allowed).encode()

            def tls_method(i: bytes) -> Any:
                return EapTlsServer(tls_config, i) if i == want else _Refuse(EapType.TLS, i)

            methods = [(EapType.TLS, tls_method)]
    elif auth == "eap-ttls":
        from ike.eap.methods.credentials import StaticPasswords
        from ike.eap_ttls.method import TtlsServerConfig, ttls_server_factory

        ttls = TtlsServerConfig(
            tls=tls_config,
            eap_methods=tuple(_simple_methods(spec.remote.eap_inner, passwords)),
            password_lookup=StaticPasswords(_table(passwords)) if passwords else None,
            posture=posture,
        )
        methods = [(EapType.TTLS, ttls_server_factory(ttls))]
    elif auth == "eap-peap":
        from ike.eap_peap.method import PeapServerConfig, peap_server_factory

        peap = PeapServerConfig(
            tls=tls_config,
            eap_methods=tuple(_simple_methods(spec.remote.eap_inner, passwords)),
            posture=posture,
        )
        methods = [(EapType.PEAP, peap_server_factory(peap))]
    elif auth == "eap-fast":
        import dataclasses

        from ike.eap_fast.method import fast_server_factory

        fast = dataclasses.replace(fast_base, posture=posture) if posture else fast_base
        methods = [(EapType.FAST, fast_server_factory(fast))]
    else:
        methods = _simple_methods([auth.removeprefix("eap-")], passwords)

    def factory(identity: Identity) -> Any:
        ike_sa = router.current or b""
        session = PostureSession(ike_sa, name, assess)
        router.sessions[ike_sa] = session
        server = EapServer(methods)
        session.eap_server = server
        return server

    return factory


def _child_config(spec: ChildSpec, where: str, source: str) -> ChildConfig:
    try:
        esp = tuple(EspProposal.parse(p) for p in spec.esp_proposals) or DEFAULT_ESP_PROPOSALS
        child = ChildConfig(
            spec.name,
            tuple(TrafficSelector.from_network(t) for t in spec.local_ts),
            tuple(TrafficSelector.from_network(t) for t in spec.remote_ts),
            esp,
        )
    except (IkeError, ValueError) as exc:
        raise ConfigError(source, where, str(exc)) from None
    if spec.rekey_time is not None:
        import dataclasses

        child = dataclasses.replace(child, rekey_time=spec.rekey_time)
    return child


def _fast_keyring(
    config: GatewayConfig, name: str, lifetime: int, keyrings: dict[str, Any]
) -> Any:
    """The PAC-Opaque keyring of connection ``name``: the ``[secrets.pac-*]`` keys (PACs then
    survive a restart), else a random key that lives as long as the process.  A reload keeps
    the keyring while its keys and the PAC lifetime are unchanged; rotated keys (the old
    current one now among ``previous``) keep opening PACs for one PAC lifetime."""
    from ike.eap_fast.pac import PacKeyring

    pac = next((s for s in config.secrets if s.kind == "pac"), None)
    configured = (pac.secret, *pac.previous) if pac is not None else ()
    entry = keyrings.get(name)
    if entry is not None and entry[1] == (lifetime, configured):
        return entry[0]
    if pac is not None:
        keyring = PacKeyring(
            pac.secret, pac_lifetime=lifetime, previous=pac.previous, now=time.time()
        )
    else:
        keyring = PacKeyring(pac_lifetime=lifetime)
    keyrings[name] = (keyring, (lifetime, configured))
    return keyring


def _peer(
    spec: ConnectionSpec,
    config: GatewayConfig,
    keys: list[PrivateKey],
    pools: MemoryPools,
    router: AccessRouter,
    nea: _Nea | None,
    posture_counter: Callable[[PostureSession], None],
    keyrings: dict[str, Any],
    sql: Any = None,
) -> PeerConfig:
    source = config.source
    w = f"connections.{spec.name}"
    chain, key = _local_credentials(spec, config, keys)
    anchors = _anchors(spec, config)
    if spec.local.id is not None:
        local_id = Identity.parse(spec.local.id)
    elif chain:
        san = _first_san(chain[0])
        local_id = Identity.parse(san) if san else Identity.from_name(chain[0].subject)
    else:
        local_id = Identity.parse(config.ike.listen)
    remote_auth = {
        "pubkey": AuthClass.PUBKEY,
        "psk": AuthClass.PSK,
    }.get(spec.remote.auth, AuthClass.EAP)
    local_auth = AuthClass.PSK if spec.local.auth == "psk" else AuthClass.PUBKEY
    psk = _psk_for(spec, config.secrets)
    if AuthClass.PSK in (local_auth, remote_auth) and psk is None:
        raise ConfigError(source, f"{w}.local.auth", "psk needs a matching [secrets.ike-*]")
    if remote_auth is AuthClass.PUBKEY and not anchors:
        raise ConfigError(source, f"{w}.remote.auth", "pubkey needs [authorities] (cacert)")
    eap_server = None
    if remote_auth is AuthClass.EAP:
        eap_server = _eap_factory(
            spec, config, chain, key, anchors, router, nea, posture_counter, keyrings
        )
    children = [_child_config(c, f"{w}.children.{c.name}", source) for c in spec.children]
    by_verdict: dict[str, tuple[str, ...]] = {}
    grants: dict[str, Authorization] = {}
    for v in ("allow", "isolate"):
        child_pools = next(
            (c.pools for c in spec.children if v in c.verdict and c.pools is not None), None
        )
        by_verdict[v] = child_pools if child_pools is not None else spec.pools
        grants[v] = Authorization(
            tuple(c for c, cs in zip(children, spec.children, strict=True) if v in cs.verdict),
            RoutedPool(pools, by_verdict[v], v, sql, router) if by_verdict[v] else None,
        )

    def authorize(ctx: AuthContext) -> Authorization | None:
        """The children and pool of the IKE_SA's verdict; no access refuses the IKE_SA."""
        verdict = router.verdict(ctx.ike_sa)
        if verdict is Verdict.NONE:
            log.info("%s: %s refused: posture verdict none", spec.name, ctx.remote_id)
            return None
        return grants[verdict.value]

    dns: list[IpAddress] = []
    for pname in dict.fromkeys(p for names in by_verdict.values() for p in names):
        for d in _strings(config.pools.get(pname, {}).get("dns", ())):
            try:
                dns.append(ipaddress.ip_address(d))
            except ValueError:
                raise ConfigError(
                    source, f"pools.{pname}.dns", f"{d!r} is not an address"
                ) from None
    try:
        return PeerConfig(
            name=spec.name,
            local_id=local_id,
            remote_id=Identity.parse(spec.remote.id) if spec.remote.id else None,
            local_auth=local_auth,
            remote_auth=remote_auth,
            psk=psk if AuthClass.PSK in (local_auth, remote_auth) else None,
            certificate=chain[0] if chain else None,
            private_key=key,
            intermediates=tuple(chain[1:]),
            trust_anchors=tuple(anchors),
            eap_server=eap_server,
            ike_proposals=tuple(IkeProposal.parse(p) for p in spec.proposals)
            or DEFAULT_IKE_PROPOSALS,
            children=tuple(children),
            pool=grants["allow"].pool,
            authorize=authorize,
            dns=tuple(dict.fromkeys(dns)),
            remote_addrs=spec.remote_addrs,
            request_vips=tuple(ipaddress.ip_address(v) for v in spec.vips),
            fragmentation=spec.fragmentation,
            send_certreq=spec.send_certreq,
            rekey_time=spec.rekey_time,
            reauth_time=None if spec.reauth_time is None else int(spec.reauth_time),
            # swanctl: 0 turns dead peer detection off.
            dpd_delay=spec.dpd_delay or None,
        )
    except IkeError as exc:
        raise ConfigError(source, w, str(exc)) from None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _first_san(cert: x509.Certificate) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in ext:
        if isinstance(name, x509.DNSName | x509.RFC822Name):
            return str(name.value)
        if isinstance(name, x509.IPAddress):
            return str(name.value)
    return None


def compose(
    config: GatewayConfig,
    *,
    router: AccessRouter | None = None,
    pools: MemoryPools | None = None,
    wall_clock: Callable[[], _dt.datetime] | None = None,
    evidence_sink: Any = None,
    nea_state: Any = None,
    posture_counter: Callable[[PostureSession], None] = lambda s: None,
    fast_keyrings: dict[str, Any] | None = None,
    sql_backend: Any = None,
) -> Composition:
    """Build the engines for ``config``.  ``pools`` / ``router`` / ``nea_state`` carry state
    over from the previous composition on reload (leases, sessions, validators);
    ``fast_keyrings`` the EAP-FAST PAC keyrings per connection, with the settings each was
    made from (PACs stay valid over a reload)."""
    keyrings: dict[str, Any] = fast_keyrings if fast_keyrings is not None else {}
    router = router if router is not None else AccessRouter()
    clock = wall_clock or (lambda: _dt.datetime.now(_dt.UTC))
    if pools is None:
        try:
            pools = MemoryPools.from_config(memory_pools(config.pools))
        except PoolError as exc:
            raise ConfigError(config.source, "pools", str(exc)) from None
    from gateway.daemon.sqlpool import SqlPoolBackend

    specs = sql_pools(config.pools)
    if sql_backend is None or dict(sql_backend.specs) != specs:
        sql_backend = SqlPoolBackend(specs)
    sql = sql_backend if specs else None
    keys = [_load_key(s, config.source) for s in config.secrets if s.kind == "private"]
    nea: _Nea | None = None
    reload_policy = False
    needs_nea = (
        any(c.posture.assess for c in config.connections)
        or (config.radius is not None and config.radius.posture)
        or config.pt_tls is not None
    )
    if config.nea is not None and needs_nea:
        if isinstance(nea_state, _Nea) and nea_state.config.nea == config.nea:
            nea = nea_state
            nea.config = config
            reload_policy = True
        else:
            nea = _Nea(config, clock)
            nea.start(evidence_sink)
    peers = {}
    for spec in config.connections:
        peers[spec.name] = ConnectionRuntime(
            spec,
            _peer(spec, config, keys, pools, router, nea, posture_counter, keyrings, sql),
        )
    affected: set[int] = set()
    if reload_policy and nea is not None:
        affected = nea.reload_policy()  # last: a configuration error above leaves the old policy
    ike = config.ike
    engine_config = EngineConfig(
        peers=tuple(r.peer for r in peers.values()),
        cookie_threshold=ike.cookie_threshold,
        half_open_timeout=ike.half_open_timeout,
        auth_timeout=ike.auth_timeout,
        retransmit_timeout=ike.retransmit_timeout,
        retransmit_base=ike.retransmit_base,
        retransmit_tries=ike.retransmit_tries,
        fragment_size=ike.fragment_size,
        wall_clock=clock,
    )
    comp = Composition(
        config=config,
        engine_config=engine_config,
        connections=peers,
        pools=pools,
        router=router,
        policy_engine=nea.engine if nea is not None else None,
        evidence_sink=evidence_sink,
    )
    comp.nea_state = nea
    comp.fast_keyrings = keyrings
    comp.sql_pools = sql_backend
    comp.affected = affected
    comp.policy_changed = bool(reload_policy and nea is not None and nea.policy_changed)
    comp.notes.append(
        f"{len(peers)} connection(s), {len(pools.pools)} pool(s)"
        + (f", {len(specs)} SQL pool(s)" if specs else "")
    )
    return comp
