"""One endpoint: IKEv2 initiator + EAP peer + PT-EAP with a TNCC, on a Twisted UDP socket.

:class:`EndpointClient` builds an :class:`ike.sa.IkeEngine` with one initiator connection
from :class:`~gateway.nea_endpoint.options.EndpointOptions`, binds a UDP socket beside it
(the adapter is :class:`gateway.ike_udp.IkeUdpService`), initiates, and resolves
:meth:`EndpointClient.connect`'s Deferred with an :class:`EndpointResult`: the IKE outcome,
the virtual IP, the CHILD_SAs and what the posture assessment told the endpoint (the
PB-TNC verdict, reasons and remediation instructions, :class:`nea.imc.EndpointReport`).

Outcomes and the exit codes of ``nea-endpoint --once``:

=============== ==== ===================================================================
``allow``        0   IKE_SA up; posture Allowed, or the gateway ran no assessment
``isolate``      3   IKE_SA up; posture Quarantined (the gateway's isolate networks/pool)
``denied``       4   the gateway refused after the assessment (Denied / no recommendation)
``auth-failed``  4   authentication failed (EAP-Failure, AUTHENTICATION_FAILED)
``error``        1   no answer, protocol error, no proposal chosen, ...
=============== ==== ===================================================================

Several clients may share one reactor (the demo runs a fleet); each owns its engine and
socket.  With ``dataplane = "none"`` (the default, "plain" mode) the SAs and the virtual IP are
negotiated and reported, not installed.  With ``dataplane = "userspace"`` (root) IKE goes to
the gateway's NAT-T port from the start (non-ESP marker, RFC 3948), so that ESP and IKE share
one UDP socket on both sides; once the IKE_SA is up the virtual IP is put on a TUN device
(``nea-ep0``), the CHILD_SAs are installed in :class:`gateway.dataplane.userspace.
UserspaceDataplane` and the remote selectors are routed through it.

Re-assessment (:meth:`EndpointClient.reauthenticate`): over IKEv2 PT-EAP runs inside
IKE_AUTH, so an endpoint that fixed its problem is assessed again by re-authenticating
(RFC 7296, 2.8.3): the facts are read again, a new IKE_SA comes up on the same socket and
the old one is deleted once it has (make-before-break; if the new one fails the old one is
kept).  The gateway's RFC 4478 AUTH_LIFETIME (:class:`ike.sa.ReauthRequested`, sent in an
INFORMATIONAL by ``nea-gateway reassess``) starts the same.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from twisted.internet import defer

from gateway.ike_udp import IkePort, IkeUdpService
from gateway.nea_endpoint.options import EndpointOptions, OptionsError
from ike.config import AuthClass, ChildConfig, EngineConfig, Identity, PeerConfig
from ike.constants import NotifyType
from ike.sa import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    Event,
    IkeEngine,
    IkeSaClosed,
    IkeSaEstablished,
    ReauthRequested,
)
from nea.imc import EndpointReport, HostCollector, HostFacts, build_collectors, endpoint_report
from nea.pb_tnc import AccessRecommendation, PbTncConfig, Tncc

__all__ = [
    "EXIT_CODES",
    "ChildInfo",
    "EndpointClient",
    "EndpointResult",
    "eap_fast_available",
    "load_facts",
    "run_many",
]

log = logging.getLogger("gateway.nea_endpoint")

EXIT_CODES = {"allow": 0, "isolate": 3, "denied": 4, "auth-failed": 4, "error": 1}
CONNECTION = "nea-endpoint"
PLAIN = "none (plain mode: SAs and virtual IP reported, not installed)"
TUN_NAME = "nea-ep0"


class _NattPort(IkePort):
    """The dataplane's one socket: the engine's NAT-T port (RFC 3948 framing in
    :class:`IkePort`), which also sends the dataplane's ESP as it is."""

    def send_esp(self, data: bytes, remote: tuple[str, int]) -> None:
        if self.transport is not None:
            transport: Any = self.transport
            transport.write(data, remote)


CONN_ID = 1


@dataclass(frozen=True)
class ChildInfo:
    name: str
    spi_in: str
    spi_out: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    udp_encap: bool


@dataclass(frozen=True)
class EndpointResult:
    """What one connection attempt came to."""

    outcome: str
    """``allow``, ``isolate``, ``denied``, ``auth-failed`` or ``error``."""
    message: str
    server: tuple[str, int]
    local: tuple[str, int]
    identity: str
    auth: str
    """The EAP method (``eap-ttls``...), ``psk`` or ``pubkey``."""
    duration: float
    ike: dict[str, Any] | None = None
    """Established IKE_SA: SPIs, algorithms, identities (None if it never came up)."""
    virtual_ips: tuple[str, ...] = ()
    children: tuple[ChildInfo, ...] = ()
    child_errors: tuple[str, ...] = ()
    posture: EndpointReport | None = None
    """What the TNCC received, if PT-EAP (or EAP-TNC) ran."""
    posture_ran: bool = False
    dataplane: str = PLAIN
    error: str | None = None
    """The IKE notify that ended the attempt, by name."""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def verdict(self) -> str:
        """The posture verdict in the gateway's words (allow / isolate / no access /
        not assessed)."""
        if self.posture is None or not self.posture_ran:
            return "not assessed"
        return (
            {
                AccessRecommendation.ALLOWED: "allow",
                AccessRecommendation.QUARANTINED: "isolate",
                AccessRecommendation.DENIED: "no access",
            }.get(self.posture.access, "no access")
            if self.posture.access
            else "no access"
        )

    def to_json(self) -> dict[str, Any]:
        posture: dict[str, Any] | None = None
        if self.posture is not None and self.posture_ran:
            p = self.posture
            posture = {
                "recommendation": p.access.name.lower() if p.access is not None else None,
                "evaluation": _enum_name(p.evaluation),
                "reasons": [{"language": lang, "text": text} for lang, text in p.reasons],
                "remediation": [
                    {
                        "collector": r.collector,
                        "validator_id": r.validator_id,
                        "uri": r.uri,
                        "text": r.text,
                        "language": r.language,
                    }
                    for r in p.remediation
                ],
                "assessments": [
                    {"collector": c, "validator_id": v, "result": _assessment_name(value)}
                    for c, v, value in p.assessments
                ],
            }
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "message": self.message,
            "error": self.error,
            "server": f"{self.server[0]}:{self.server[1]}",
            "local": f"{self.local[0]}:{self.local[1]}",
            "identity": self.identity,
            "auth": self.auth,
            "duration": round(self.duration, 3),
            "ike": self.ike,
            "virtual_ips": list(self.virtual_ips),
            "children": [dataclasses.asdict(c) for c in self.children],
            "child_errors": list(self.child_errors),
            "posture": posture,
            "dataplane": self.dataplane,
        }


def _unique_remediation(items: Sequence[Any]) -> tuple[Any, ...]:
    """The same instruction often arrives twice (from the validator in PA-TNC and in
    PB-Remediation-Parameters): keep the first of each text/URI."""
    seen: set[tuple[str | None, str | None]] = set()
    out = []
    for r in items:
        key = (r.text, r.uri)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return tuple(out)


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", None)
    return name.lower() if isinstance(name, str) else str(value)


def _assessment_name(value: int) -> str:
    from nea.pb_tnc import AssessmentResult

    try:
        return AssessmentResult(value).name.lower()
    except ValueError:
        return str(value)


def _notify_name(code: int | None) -> str | None:
    if code is None:
        return None
    try:
        return NotifyType(code).name
    except ValueError:
        return str(code)


def eap_fast_available() -> bool:
    """Whether this installation has an EAP-FAST peer method (``ike.eap_fast.method``)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ike.eap_fast.method") is not None
    except ImportError:
        return False


def load_facts(options: EndpointOptions) -> HostFacts | None:
    """The facts the collectors report: the profile, this host, or None (posture off)."""
    if not options.posture:
        return None
    if options.profile is not None:
        from gateway.endpoint import ProfileError, load_profile

        try:
            return load_profile(options.profile)
        except ProfileError as exc:
            raise OptionsError(f"--profile: {exc}") from None
    from gateway.endpoint import read_host

    return read_host()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OptionsError(f"--{what}: {path}: {exc.strerror}") from None


def _certs(path: Path, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(path, what))
    except ValueError as exc:
        raise OptionsError(f"--{what}: {path}: not PEM certificates ({exc})") from None
    return certs


class _Posture:
    """The collectors and TNCC of the current posture conversation (the gateway may run
    PT-EAP or EAP-TNC; each new method instance starts a fresh TNCC)."""

    def __init__(self, facts: HostFacts) -> None:
        self.facts = facts
        self.tncc: Tncc | None = None
        self.collectors: list[HostCollector] = []

    def make_tncc(self) -> Tncc:
        self.collectors = build_collectors(self.facts)
        self.tncc = Tncc(self.collectors, connection_id=CONN_ID, config=PbTncConfig.for_pt_eap())
        return self.tncc

    def pt_eap(self) -> Any:
        from nea.pt_eap import PtEapPeer

        return PtEapPeer(self.make_tncc())

    def eap_tnc(self) -> Any:
        from nea.pt_eap import EapTncPeer

        return EapTncPeer(self.make_tncc())

    @property
    def ran(self) -> bool:
        return self.tncc is not None

    def report(self) -> EndpointReport | None:
        if self.tncc is None:
            return None
        report = endpoint_report(self.tncc.result, self.collectors, CONN_ID)
        return dataclasses.replace(report, remediation=_unique_remediation(report.remediation))


def build_peer_config(options: EndpointOptions, facts: HostFacts | None) -> tuple[PeerConfig, Any]:
    """The initiator connection for ``options``; also the posture holder (or None)."""
    from ike.eap.packet import EapType

    identity = options.eap_identity.encode()
    password = options.password or ""
    ca_certs = [c for p in options.ca for c in _certs(p, "ca")]
    ca_pems = tuple(_read(p, "ca") for p in options.ca)
    cert_pem = _read(options.cert, "cert") if options.cert else None
    key_pem = _read(options.key, "key") if options.key else None
    posture = _Posture(facts) if facts is not None else None

    def inner_methods() -> tuple[tuple[int, Any], ...]:
        from ike.eap.methods.gtc import GtcPeerMethod
        from ike.eap.methods.md5 import Md5PeerMethod
        from ike.eap.methods.mschapv2 import MsChapV2PeerMethod

        known: dict[str, tuple[int, Any]] = {
            "md5": (EapType.MD5_CHALLENGE, lambda: Md5PeerMethod(password)),
            "mschapv2": (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(identity, password)),
            "gtc": (EapType.GTC, lambda: GtcPeerMethod(password)),
        }
        order = [options.inner] + [m for m in known if m != options.inner]
        return tuple(known[m] for m in order)

    def posture_methods() -> tuple[tuple[int, Any], ...]:
        if posture is None:
            return ()
        return ((EapType.PT_EAP, posture.pt_eap), (EapType.TNC, posture.eap_tnc))

    def tls_config() -> Any:
        from ike.eap_tls.tls import TlsPeerConfig

        try:
            # charon's libtls as EAP server sends no RFC 5746 renegotiation_info; see
            # TlsPeerConfig.allow_legacy_server_connect for why accepting it is safe.
            return TlsPeerConfig(
                ca_pems=ca_pems,
                cert_chain_pem=cert_pem,
                key_pem=key_pem,
                server_name=options.server_id if options.server_id else None,
                allow_legacy_server_connect=True,
            )
        except Exception as exc:  # pyOpenSSL errors name the problem
            raise OptionsError(f"TLS settings: {exc}") from None

    methods: list[tuple[int, Any]]
    eap = options.eap
    if eap is None:
        methods = []
    elif eap == "eap-tls":
        from ike.eap_tls.method import EapTlsPeer

        tls = tls_config()
        methods = [(EapType.TLS, lambda: EapTlsPeer(tls))]
    elif eap == "eap-ttls":
        from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig

        ttls = TtlsPeerConfig(
            tls=tls_config(),
            identity=identity,
            inner=InnerAuth.EAP,
            password=password,
            eap_methods=inner_methods() + posture_methods(),
        )
        methods = [(EapType.TTLS, lambda: EapTtlsPeer(ttls))]
    elif eap == "eap-peap":
        from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig

        peap = PeapPeerConfig(
            tls=tls_config(), identity=identity, eap_methods=inner_methods() + posture_methods()
        )
        methods = [(EapType.PEAP, lambda: EapPeapPeer(peap))]
    elif eap == "eap-fast":
        if not eap_fast_available():
            raise OptionsError(
                "--eap eap-fast: this installation has no EAP-FAST peer method "
                "(ike.eap_fast.method is missing)"
            )
        from ike.eap_fast.method import EapFastPeer, FastPeerConfig, Provisioning

        fast = FastPeerConfig(
            tls=tls_config(),
            identity=identity,
            eap_methods=inner_methods() + posture_methods(),
            provisioning=Provisioning.AUTHENTICATED,
            password=password,
        )
        methods = [(EapType.FAST, lambda: EapFastPeer(fast))]
    else:
        methods = [m for m in inner_methods() if _METHOD_NAMES[m[0]] == eap]

    eap_peer: Callable[[], Any] | None = None
    if methods:
        from ike.eap.peer import EapPeer

        def eap_peer() -> Any:
            return EapPeer(identity, methods)

    certificate = key = None
    intermediates: tuple[x509.Certificate, ...] = ()
    if eap is None and options.cert is not None and options.key is not None:
        chain = _certs(options.cert, "cert")
        certificate, intermediates = chain[0], tuple(chain[1:])
        try:
            key = load_pem_private_key(_read(options.key, "key"), None)
        except (ValueError, TypeError) as exc:
            raise OptionsError(f"--key: {options.key}: {exc}") from None

    if eap is not None:
        local_auth = AuthClass.EAP
    elif options.psk is not None:
        local_auth = AuthClass.PSK
    else:
        local_auth = AuthClass.PUBKEY
    remote_auth = AuthClass.PSK if options.psk is not None else AuthClass.PUBKEY
    try:
        config = PeerConfig(
            name=CONNECTION,
            local_id=Identity.parse(options.id),
            remote_id=Identity.parse(options.server_id) if options.server_id else None,
            local_auth=local_auth,
            remote_auth=remote_auth,
            psk=options.psk.encode() if options.psk is not None else None,
            certificate=certificate,
            private_key=key,  # type: ignore[arg-type]
            intermediates=intermediates,
            trust_anchors=tuple(ca_certs),
            eap_peer=eap_peer,
            children=(ChildConfig.make("home", remote_ts=["0.0.0.0/0"]),),
            request_vips=(ipaddress.ip_address("0.0.0.0"),),  # noqa: S104 - "any VIP"
            remote_natt_port=options.natt_port,
        )
    except Exception as exc:  # LocalProtocolError / ValueError from identities
        raise OptionsError(f"connection settings: {exc}") from None
    return config, posture


_METHOD_NAMES = {4: "eap-md5", 26: "eap-mschapv2", 6: "eap-gtc"}


@dataclass
class _State:
    ike_sa: bytes | None = None
    established: IkeSaEstablished | None = None
    children: list[ChildSaInstalled] = field(default_factory=list)
    child_errors: list[str] = field(default_factory=list)
    closed: IkeSaClosed | None = None


class EndpointClient:
    """Connect one endpoint; ``connect()`` fires with an :class:`EndpointResult`.

    ``facts`` overrides what :func:`load_facts` would read (the demo passes profiles it has
    loaded once).  ``on_progress`` hears short status lines ("IKE_SA_INIT", "EAP", ...).
    """

    def __init__(
        self,
        options: EndpointOptions,
        reactor: Any,
        *,
        facts: HostFacts | None = None,
        on_progress: Callable[[str], None] = lambda text: None,
        on_closed: Callable[[str], None] = lambda reason: None,
        on_reassessed: Callable[[EndpointResult], None] = lambda result: None,
    ) -> None:
        self.options = options
        self.reactor = reactor
        self._facts_given = facts is not None
        self.facts = facts if facts is not None else load_facts(options)
        self.on_progress = on_progress
        self.on_closed = on_closed
        self.on_reassessed = on_reassessed
        """Hears the result of every re-authentication that :meth:`reauthenticate` or the
        gateway's AUTH_LIFETIME started."""
        self.config, self._posture = build_peer_config(options, self.facts)
        self.engine = IkeEngine(EngineConfig(peers=(self.config,)))
        self.remote_ip = options.resolve()
        self.local_ip = options.local_address(self.remote_ip)
        # One port, bound in _bind().
        self.service = IkeUdpService(self.engine, reactor, self.local_ip, self._event, ports=(0,))
        self._ports: list[Any] = []
        self._state = _State()
        self._started = 0.0
        self._done: defer.Deferred[EndpointResult] | None = None
        self._closed: defer.Deferred[None] | None = None
        self._timeout: Any = None
        self._settle: Any = None
        self._natt: _NattPort | None = None
        self._dataplane: Any = None
        self._dataplane_text = PLAIN
        self._previous: _State | None = None
        """During a re-authentication: the IKE_SA being replaced (kept until the new one
        is up: make-before-break)."""
        self._reauth_timer: Any = None
        self.reauthentications = 0
        self._dp_ready = False
        """The dataplane took the IKE_AUTH children: later ones are installed as they come."""
        self.pt_tls: Any = None
        """The :class:`gateway.nea_endpoint.pt_tls.EndpointPtTls` session (``--pt-tls``)."""
        self._pt_pending: defer.Deferred[EndpointResult] | None = None
        self._pt_verdict: AccessRecommendation | None = None
        self.pt_tls_reassessments = 0

    # -- socket ---------------------------------------------------------------------------

    def _bind(self) -> None:
        """One UDP socket on an ephemeral port; as root towards port 500 also 500 + 4500
        when they are free (then the engine's switch to 4500 behind a NAT works).  With a
        dataplane: one RFC 3948 socket (4500 when free) for IKE and ESP."""
        from twisted.internet.error import CannotListenError

        port_obj = self.service.ports.pop(0)
        if self.options.dataplane != "none":
            natt = _NattPort(self.service, self.local_ip, 0)
            for number in (4500, 0):
                try:
                    lp = self.reactor.listenUDP(number, natt, interface=self.local_ip)
                except CannotListenError:
                    continue
                natt.port = lp.getHost().port
                self._use_natt_port(natt.port)
                self.service.ports = {natt.port: natt}
                self._ports = [lp]
                self._natt = natt
                return
        if self.options.port == 500 and os.geteuid() == 0:
            pair = {500: port_obj}
            pair[4500] = IkePort(self.service, self.local_ip, 4500)
            listening = []
            try:
                for number, proto in pair.items():
                    proto.port = number
                    listening.append(self.reactor.listenUDP(number, proto, interface=self.local_ip))
            except CannotListenError:
                for lp in listening:
                    lp.stopListening()
                # Twisted clears a stopped listener's protocol.transport one reactor turn
                # later: the fallback socket needs a protocol object of its own.
                port_obj = IkePort(self.service, self.local_ip, 0)
            else:
                self.service.ports = pair
                self._ports = listening
                return
        lp = self.reactor.listenUDP(0, port_obj, interface=self.local_ip)
        port_obj.port = lp.getHost().port
        self.service.ports = {port_obj.port: port_obj}
        self._ports = [lp]

    def _use_natt_port(self, port: int) -> None:
        """The engine's own NAT-T port is the bound socket (nothing is initiated yet)."""
        self.engine = IkeEngine(dataclasses.replace(self.engine.config, natt_port=port))
        self.service.engine = self.engine
        self.service.natt_port = port

    @property
    def local_port(self) -> int:
        return self.service.bound_ike_port() if self.service.ports else 0

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> defer.Deferred[EndpointResult]:
        """Bind, initiate and wait for the outcome (never errbacks: failures are results)."""
        self._done = defer.Deferred()
        self._started = time.monotonic()
        try:
            self._bind()
        except Exception as exc:
            self._finish("error", f"cannot open a UDP socket on {self.local_ip}: {exc}")
            return self._done
        return self._initiate()

    def _initiate(self) -> defer.Deferred[EndpointResult]:
        assert self._done is not None
        self.on_progress("IKE_SA_INIT")
        now = self.service.now()
        try:
            self._state.ike_sa = self.engine.initiate(
                CONNECTION,
                now,
                local=(self.local_ip, self.local_port),
                remote=(
                    self.remote_ip,
                    self.options.natt_port if self._natt is not None else self.options.port,
                ),
            )
        except Exception as exc:
            self._finish("error", f"cannot initiate: {exc}")
            return self._done
        self.service.flush()
        self._timeout = self.reactor.callLater(self.options.timeout, self._timed_out)
        return self._done

    @property
    def connected(self) -> bool:
        """An IKE_SA is up (the first, or the one a re-authentication brought up)."""
        st = self._state
        return st.established is not None and st.closed is None

    def reauthenticate(
        self, reason: str = "re-assessment", *, ike: bool = False
    ) -> defer.Deferred[EndpointResult]:
        """Re-assess: read the profile / host facts again and re-authenticate with a new
        IKE_SA (RFC 7296, 2.8.3), in which the gateway runs PT-EAP again; make-before-break:
        the old IKE_SA is deleted once the new one is up.  Fires with the new
        :class:`EndpointResult` (also given to ``on_reassessed``); if the new IKE_SA fails,
        the old one stays (the gateway may still delete it).  Called again while one is under
        way, returns that one's Deferred.

        With ``--pt-tls`` and a live PT-TLS session this sends CRETRY there instead (the
        gateway moves the IKE_SA's children); ``ike`` forces the re-authentication (the
        gateway's AUTH_LIFETIME asks for one)."""
        if not ike and self.pt_tls is not None and self.pt_tls.live and self.connected:
            # --pt-tls: CRETRY on the open session; the gateway moves our children
            return self._pt_tls_reassess(reason)
        if self._previous is not None and self._done is not None and not self._done.called:
            return self._done
        if self._reauth_timer is not None and self._reauth_timer.active():
            self._reauth_timer.cancel()
        self._reauth_timer = None
        if not self.connected or (self._done is not None and not self._done.called):
            d: defer.Deferred[EndpointResult] = defer.Deferred()
            d.errback(RuntimeError("not connected: nothing to re-authenticate"))
            return d
        log.info("re-authenticating (%s)", reason)
        self.on_progress(f"re-authenticating ({reason})")
        self._previous, self._state = self._state, _State()
        self._done = defer.Deferred()
        self._started = time.monotonic()
        try:
            self._reload_facts()
        except OptionsError as exc:
            self._finish("error", f"re-assessment: {exc}")
            return self._done
        return self._initiate()

    def _reload_facts(self) -> None:
        if self._posture is None or self._facts_given:
            return
        facts = load_facts(self.options)
        if facts is not None:
            self.facts = facts
            self._posture.facts = facts

    def _reauth_requested(self, event: ReauthRequested) -> None:
        """RFC 4478: re-authenticate before ``lifetime`` runs out (at once for 0; else
        a tenth of it, at most 30 s, before)."""
        life = float(event.lifetime)
        delay = max(0.0, life - min(30.0, life / 10))
        log.info("the gateway asks to re-authenticate within %d s", event.lifetime)
        if self._reauth_timer is not None and self._reauth_timer.active():
            if self._reauth_timer.getTime() <= self.reactor.seconds() + delay:
                return
            self._reauth_timer.cancel()

        def go() -> None:
            self._reauth_timer = None
            d = self.reauthenticate("the gateway's AUTH_LIFETIME", ike=True)
            d.addErrback(lambda f: log.info("re-authentication: %s", f.getErrorMessage()))

        self._reauth_timer = self.reactor.callLater(delay, go)

    def disconnect(self, timeout: float = 3.0) -> defer.Deferred[None]:
        """Delete the IKE_SA (INFORMATIONAL Delete), wait for the answer up to ``timeout``
        seconds, close the socket."""
        d: defer.Deferred[None] = defer.Deferred()
        if self._reauth_timer is not None and self._reauth_timer.active():
            self._reauth_timer.cancel()
        self._reauth_timer = None
        if self.pt_tls is not None:
            self.pt_tls.close()
        if self._previous is not None:
            self._finish("error", "re-authentication interrupted by a disconnect")
        sa = self._state.ike_sa
        if (
            sa is not None
            and self._state.established is not None
            and self._state.closed is None
            and self.engine.ike_sa_state(sa) is not None
        ):
            self._closed = d
            self.on_progress("deleting IKE_SA")
            try:
                self.service.delete(sa)
            except Exception:
                log.exception("delete failed")
                self._closed = None
                self._close_ports()
                d.callback(None)
                return d

            def give_up() -> None:
                if self._closed is not None and not self._closed.called:
                    self._closed = None
                    self._close_ports()
                    d.callback(None)

            self.reactor.callLater(timeout, give_up)
        else:
            self._close_ports()
            d.callback(None)
        return d

    def _close_ports(self) -> None:
        for lp in self._ports:
            try:
                lp.stopListening()
            except Exception:  # pragma: no cover - already closed
                log.debug("closing the UDP port failed", exc_info=True)
        self._ports = []
        self.service.stop_timer()
        dp, self._dataplane = self._dataplane, None
        if dp is not None:
            self.service.esp_handler = None
            d = dp.stop()
            d.addErrback(lambda f: log.error("dataplane stop: %s", f.getErrorMessage()))

    # -- engine events ---------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        st = self._state
        old = self._previous
        if old is not None and getattr(event, "ike_sa", None) == old.ike_sa:
            self._previous_event(old, event)
            return
        if isinstance(event, ReauthRequested) and event.ike_sa == st.ike_sa:
            self._reauth_requested(event)
        elif isinstance(event, IkeSaEstablished) and event.ike_sa == st.ike_sa:
            st.established = event
            # The CHILD_SA events of the same IKE_AUTH answer follow in this flush.
            self._settle = self.reactor.callLater(0, self._on_established)
        elif isinstance(event, ChildSaInstalled) and event.ike_sa == st.ike_sa:
            st.children = [c for c in st.children if c.spi_in != event.replaces]
            st.children.append(event)
            if self._dp_ready and self._dataplane is not None:
                # a CHILD_SA after IKE_AUTH (a rekey, or the gateway moving us to the
                # children of a new verdict): install it and route its selectors
                from gateway.dataplane.base import spec_from_event

                self._dataplane.install_child_sa(spec_from_event(event)).addErrback(
                    lambda f: log.error("dataplane install: %s", f.getErrorMessage())
                )
        elif isinstance(event, ChildSaDeleted) and event.ike_sa == st.ike_sa:
            st.children = [c for c in st.children if c.spi_in != event.spi_in]
            if self._dataplane is not None:
                self._dataplane.delete_child_sa(event.spi_in).addErrback(
                    lambda f: log.error("dataplane delete: %s", f.getErrorMessage())
                )
        elif isinstance(event, ChildSaFailed) and event.ike_sa == st.ike_sa:
            st.child_errors.append(f"{event.name}: {_notify_name(event.error)}")
        elif isinstance(event, IkeSaClosed) and event.ike_sa == st.ike_sa:
            st.closed = event
            ours = self._closed is not None
            if self._closed is not None:
                d, self._closed = self._closed, None
                self._close_ports()
                d.callback(None)
            if self._done is not None and not self._done.called:
                self._on_closed(event)
            elif self._done is not None and not ours:
                self._close_ports()
                self.on_closed(event.reason)

    def _previous_event(self, old: _State, event: Event) -> None:
        """An event of the IKE_SA a re-authentication replaces."""
        if isinstance(event, IkeSaClosed):
            old.closed = event  # the gateway deleted it (or it failed) meanwhile
        elif isinstance(event, ReauthRequested):
            pass  # the re-authentication is under way

    def _retire_previous(self) -> None:
        """The new IKE_SA is up: delete the one it replaces (its IkeSaClosed is ours)."""
        old, self._previous = self._previous, None
        if old is None or old.ike_sa is None or old.closed is not None:
            return
        if self.engine.ike_sa_state(old.ike_sa) is None:
            return
        self.on_progress("deleting the replaced IKE_SA")
        try:
            self.service.delete(old.ike_sa)
        except Exception:
            log.exception("deleting the replaced IKE_SA failed")

    def _abandon_reauth(self) -> None:
        """The new IKE_SA did not come up: go on with the old one, if it still is."""
        old, self._previous = self._previous, None
        new = self._state
        if old is None:
            return
        self._state = old  # first: the new IKE_SA's own events no longer concern us
        if new.ike_sa is not None and new.closed is None:
            if self.engine.ike_sa_state(new.ike_sa) is not None:
                try:
                    self.service.delete(new.ike_sa)
                except Exception:
                    log.debug("dropping the failed IKE_SA", exc_info=True)
        if old.closed is not None:
            self._close_ports()
            self.on_closed(old.closed.reason)

    def _on_established(self) -> None:
        self.on_progress("established")
        if self._natt is not None and self._dataplane is not None and self._previous is not None:
            # Re-authenticated: the new SAs (and maybe a new virtual IP) replace the old
            # ones on a fresh TUN device.
            old_dp, self._dataplane = self._dataplane, None
            self._dp_ready = False
            self.service.esp_handler = None
            stopped = old_dp.stop()
            stopped.addErrback(lambda f: log.error("dataplane stop: %s", f.getErrorMessage()))
            stopped.addCallback(lambda _: self._on_established())
            return
        if self._natt is not None and self._dataplane is None:
            d = defer.ensureDeferred(self._install())
            d.addErrback(lambda f: log.error("dataplane: %s", f.getErrorMessage()))
            d.addBoth(lambda _: self._decide())
            return
        self._decide()

    async def _install(self) -> None:
        """Userspace ESP: the virtual IP on a TUN device, the CHILD_SAs, routes for the
        remote selectors (sourced from the virtual IP)."""
        from gateway.dataplane.base import spec_from_event
        from gateway.dataplane.userspace import UserspaceDataplane

        st = self._state
        assert self._natt is not None and st.established is not None
        natt = self._natt
        vips = [f"{v}/{v.max_prefixlen}" for v in st.established.virtual_ips]
        self.on_progress("installing SAs")
        dp = UserspaceDataplane(
            self.reactor,
            natt.send_esp,
            ifname=TUN_NAME,
            addresses=vips,
            reason="nea-endpoint --dataplane userspace",
        )
        try:
            await dp.start()
        except Exception as exc:
            self._dataplane_text = f"userspace: not installed ({exc})"
            raise
        self._dataplane = dp
        self.service.esp_handler = dp.esp_received
        for child in st.children:
            await dp.install_child_sa(spec_from_event(child))
        self._dp_ready = True
        routes = sorted({t.text() for c in st.children for t in c.remote_ts})
        self._dataplane_text = (
            f"userspace ESP on {dp.ifname}: {', '.join(vips) or 'no virtual IP'}; "
            f"routes {', '.join(routes) or 'none'}"
        )

    def _decide(self) -> None:
        report = self._posture.report() if self._posture is not None else None
        access = report.access if report is not None else None
        if self._posture is not None and self._posture.ran:
            if access is AccessRecommendation.QUARANTINED:
                self._finish("isolate", "connected; the posture assessment isolated this endpoint")
                return
            if access is not AccessRecommendation.ALLOWED:
                name = access.name.lower() if access is not None else "no recommendation"
                self._finish("denied", f"connected although the recommendation is {name}")
                return
            self._finish("allow", "connected; the posture assessment allowed this endpoint")
            return
        self._finish("allow", "connected (the gateway ran no posture assessment)")

    def _on_closed(self, event: IkeSaClosed) -> None:
        report = self._posture.report() if self._posture is not None else None
        if self._posture is not None and self._posture.ran and report is not None:
            tncc = self._posture.tncc
            got_result = tncc is not None and tncc.result is not None
            if got_result and report.access is not AccessRecommendation.ALLOWED:
                self._finish(
                    "denied",
                    f"refused after the posture assessment ({event.reason})",
                    error=_notify_name(event.error),
                )
                return
        if event.error == NotifyType.AUTHENTICATION_FAILED or "EAP" in event.reason:
            self._finish("auth-failed", event.reason, error=_notify_name(event.error))
            return
        self._finish("error", event.reason, error=_notify_name(event.error))

    def _timed_out(self) -> None:
        self._timeout = None
        if self._done is None or self._done.called:
            return
        self._finish(
            "error",
            f"no answer from {self.remote_ip}:{self.options.port} "
            f"within {self.options.timeout:g} s",
        )

    def _finish(self, outcome: str, message: str, *, error: str | None = None) -> None:
        if self._done is None or self._done.called:
            return
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        result = self._result(outcome, message, error=error)
        est = self._state.established
        reauth = self._previous is not None
        if reauth:
            self.reauthentications += 1
            if est is not None:
                self._retire_previous()
            else:
                self._abandon_reauth()
        elif est is None:
            self._close_ports()
        self._done.callback(result)
        if reauth:
            try:
                self.on_reassessed(result)
            except Exception:
                log.exception("on_reassessed failed")
        elif est is not None and self.options.pt_tls is not None and self._posture is not None:
            self.reactor.callLater(0, self._start_pt_tls)

    def _result(
        self, outcome: str, message: str, *, error: str | None = None, posture: Any = None
    ) -> EndpointResult:
        st = self._state
        est = st.established
        ike: dict[str, Any] | None = None
        if est is not None:
            ike = {
                "spi_i": est.spi_i.hex(),
                "spi_r": est.spi_r.hex(),
                "local_id": str(est.local_id),
                "remote_id": str(est.remote_id),
                "proposal": f"{est.encr}/{est.integ}/{est.prf}/{est.dh}",
                "nat": est.nat_detected,
                "eap_identity": est.eap_identity.decode("utf-8", "replace")
                if est.eap_identity
                else None,
            }
        children = tuple(
            ChildInfo(
                name=c.name,
                spi_in=f"{c.spi_in:08x}",
                spi_out=f"{c.spi_out:08x}",
                local_ts=tuple(t.text() for t in c.local_ts),
                remote_ts=tuple(t.text() for t in c.remote_ts),
                udp_encap=c.udp_encap,
            )
            for c in st.children
        )
        result = EndpointResult(
            outcome=outcome,
            message=message,
            server=(self.remote_ip, self.options.port),
            local=(self.local_ip, self.local_port),
            identity=self.options.id,
            auth=self.options.eap or ("psk" if self.options.psk is not None else "pubkey"),
            duration=time.monotonic() - self._started,
            ike=ike,
            virtual_ips=tuple(str(v) for v in est.virtual_ips) if est else (),
            children=children,
            child_errors=tuple(st.child_errors),
            posture=posture
            if posture is not None
            else (self._posture.report() if self._posture is not None else None),
            posture_ran=self._posture is not None and self._posture.ran,
            error=error,
            dataplane=self._dataplane_text,
        )
        return result

    # -- re-assessment over PT-TLS (--pt-tls) -----------------------------------------------

    PT_TLS_SETTLE = 10.0
    """Seconds to wait, after a verdict that changes our access, for the gateway to move the
    IKE_SA to the new verdict's children (CREATE_CHILD_SA, then Delete)."""

    def _start_pt_tls(self) -> None:
        from gateway.nea_endpoint.pt_tls import EndpointPtTls, parse_pt_tls

        spec = self.options.pt_tls
        if spec is None or self.pt_tls is not None or self.facts is None or not self.connected:
            return
        where = parse_pt_tls(spec)
        if where is None:  # the PB-PDP-Referral of the IKEv2 assessment
            tncc = self._posture.tncc if self._posture is not None else None
            referral = getattr(tncc, "pdp_referral", None)
            fqdn = referral.fqdn if referral is not None else None
            if fqdn is None or fqdn[2] != 0:
                log.warning("--pt-tls referral: the gateway named no PT-TLS PDP")
                self.on_progress("PT-TLS: no PDP referral from the gateway")
                return
            where = (fqdn[0], fqdn[1])
        host, port = where
        opts = self.options
        cert_pem = _read(opts.cert, "cert") if opts.cert is not None else None
        key_pem = _read(opts.key, "key") if opts.key is not None else None
        first_report = self._posture.report() if self._posture is not None else None
        self._pt_verdict = first_report.access if first_report is not None else None
        self.pt_tls = EndpointPtTls(
            self.reactor,
            host,
            port,
            server_name=opts.server_id or opts.server,
            ca_pems=[_read(p, "ca") for p in opts.ca],
            facts=self.facts,
            identity=opts.eap_identity if opts.password is not None else None,
            password=opts.password,
            cert_pem=cert_pem,
            key_pem=key_pem,
            on_result=self._pt_tls_result,
            on_closed=lambda reason: self.on_progress(f"PT-TLS session closed: {reason}"),
        )
        self.on_progress(f"PT-TLS to {host}:{port}")

        def first(rec: AccessRecommendation | None) -> None:
            self.on_progress(f"PT-TLS session open ({rec.name if rec else 'no verdict'})")
            self._pt_tls_result(rec)

        def failed(f: Any) -> None:
            log.warning("PT-TLS: %s", f.getErrorMessage())
            self.on_progress(f"PT-TLS unavailable: {f.getErrorMessage()}")
            self.pt_tls = None

        self.pt_tls.start().addCallbacks(first, failed)

    def _pt_tls_reassess(self, reason: str) -> defer.Deferred[EndpointResult]:
        """CRETRY on the PT-TLS session with the facts read again; fires once the verdict is
        in and the gateway has moved our children (or :attr:`PT_TLS_SETTLE` passed)."""
        if self._pt_pending is not None and not self._pt_pending.called:
            return self._pt_pending
        d: defer.Deferred[EndpointResult] = defer.Deferred()
        try:
            self._reload_facts()
        except OptionsError as exc:
            d.errback(exc)
            return d
        log.info("re-assessing over PT-TLS (%s)", reason)
        self.on_progress(f"re-assessing over PT-TLS ({reason})")
        self._pt_pending = d
        assert self.pt_tls is not None and self.facts is not None
        try:
            self.pt_tls.retry(self.facts)
        except Exception as exc:
            self._pt_pending = None
            d.errback(exc)
            return d

        def expire() -> None:
            if self._pt_pending is d and not d.called:
                self._pt_pending = None
                d.errback(TimeoutError(f"no PT-TLS result within {self.options.timeout:g} s"))

        self.reactor.callLater(self.options.timeout, expire)
        return d

    def _pt_tls_result(self, rec: AccessRecommendation | None) -> None:
        """A PT-TLS verdict (ours after CRETRY, or the gateway's SRETRY)."""
        before = {c.spi_in for c in self._state.children}
        changed = rec is not self._pt_verdict
        self._pt_verdict = rec
        waited = [0.0]

        def report() -> None:
            # the move is over once none of the children we had before is left
            left = before & {c.spi_in for c in self._state.children}
            if changed and left and waited[0] < self.PT_TLS_SETTLE and self.connected:
                waited[0] += 0.1
                self.reactor.callLater(0.1, report)
                return
            self._pt_tls_report(rec)

        report()

    def _pt_tls_report(self, rec: AccessRecommendation | None) -> None:
        from gateway.nea_endpoint.pt_tls import PT_TLS_CONN_ID

        pt = self.pt_tls
        posture = None
        if pt is not None and pt.tncc is not None and pt.tncc.result is not None:
            posture = endpoint_report(pt.tncc.result, pt.collectors, PT_TLS_CONN_ID)
            posture = dataclasses.replace(
                posture, remediation=_unique_remediation(posture.remediation)
            )
        if rec is AccessRecommendation.ALLOWED:
            outcome, message = "allow", "re-assessed over PT-TLS: allowed (same IKE_SA)"
        elif rec is AccessRecommendation.QUARANTINED:
            outcome, message = "isolate", "re-assessed over PT-TLS: isolated (same IKE_SA)"
        else:
            outcome, message = "denied", "re-assessed over PT-TLS: no access"
        result = self._result(outcome, message, posture=posture)
        self.pt_tls_reassessments += 1
        d, self._pt_pending = self._pt_pending, None
        if d is not None and not d.called:
            d.callback(result)
        try:
            self.on_reassessed(result)
        except Exception:
            log.exception("on_reassessed failed")


def run_many(
    reactor: Any, clients: Sequence[EndpointClient], *, parallel: int = 4
) -> defer.Deferred[list[EndpointResult]]:
    """Connect ``clients`` with at most ``parallel`` at a time; each is disconnected once
    its result is in.  Fires with the results in order."""
    sem = defer.DeferredSemaphore(parallel)

    def one(client: EndpointClient) -> defer.Deferred[EndpointResult]:
        d = client.connect()

        def done(result: EndpointResult) -> defer.Deferred[EndpointResult]:
            dd: defer.Deferred[Any] = client.disconnect()
            dd.addCallback(lambda _: result)
            return cast("defer.Deferred[EndpointResult]", dd)

        d.addCallback(done)
        return d

    ds: list[defer.Deferred[EndpointResult]] = [sem.run(one, c) for c in clients]
    return defer.gatherResults(ds, consumeErrors=True)
