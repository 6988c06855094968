"""Composition root of the RADIUS front-end: EAP methods + EAP server + RADIUS engine + UDP.

The engines never import each other sideways; this module wires them: it builds one
``ike.eap.server.EapServer`` per conversation with the methods the configuration lists
(each method's server factory from ``ike.eap.methods`` / ``ike.eap_tls`` / ...), wrapped in a
:class:`ConversationEap` that records the method and posture instances started inside that
conversation, and hands that factory to :class:`radius.RadiusServer`.  A verdict source
reads the verdict of the conversation's own posture method
(:attr:`ConversationEap.posture_method`): never look a verdict up by User-Name, which PEAP
and TTLS deployments set to the same anonymous outer identity for every user.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from gateway.radius.accounting import AccountingRecorder, AccountingSink
from gateway.radius.adapter import RadiusDatagramProtocol, RadiusService
from gateway.radius.config import RadiusConfig
from gateway.radius.dynauth import listen_dynauth
from ike.eap.packet import EapType
from radius import AccountingRecord, Event, RadiusServer, RequestContext
from radius.server import VerdictSource, verdict_attribute

__all__ = [
    "ConversationEap",
    "available_methods",
    "build_eap_factory",
    "build_server",
    "current_conversation",
    "listen",
]

log = logging.getLogger(__name__)

_MODULES = {
    "md5": "ike.eap.methods.md5",
    "mschapv2": "ike.eap.methods.mschapv2",
    "gtc": "ike.eap.methods.gtc",
    "tls": "ike.eap_tls.method",
    "ttls": "ike.eap_ttls.method",
    "peap": "ike.eap_peap.method",
    "fast": "ike.eap_fast.method",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


_WIRED = frozenset({"md5", "mschapv2", "gtc", "tls", "ttls", "peap", "fast"})
"""Methods this composition root knows how to build."""


def available_methods() -> tuple[str, ...]:
    """The configuration names of the EAP methods this installation has and can offer."""
    return tuple(
        name for name, module in _MODULES.items() if name in _WIRED and _importable(module)
    )


def _tls_server_config(config: RadiusConfig, *, client_cert: bool) -> Any:
    from ike.eap_tls.tls import TlsServerConfig, TlsVersion

    tls = config.tls
    if tls is None:
        raise ValueError("a TLS-based method needs [tls]")
    versions = {"1.2": TlsVersion.TLS1_2, "1.3": TlsVersion.TLS1_3}
    return TlsServerConfig(
        cert_chain_pem=tls.cert.read_bytes(),
        key_pem=tls.key.read_bytes(),
        ca_pems=tuple(p.read_bytes() for p in tls.ca),
        min_version=versions[tls.min_version],
        max_version=versions[tls.max_version],
        fragment_size=tls.fragment_size,
        require_client_cert=client_cert,
        bind_identity=tls.bind_identity,
    )


Methods = Sequence[tuple[int, Callable[[bytes], Any]]]
"""``(eap_type, ServerMethodFactory)`` pairs, the shape ``ike.eap`` takes."""


def _method_factories(
    config: RadiusConfig, posture: Methods = ()
) -> list[tuple[int, Callable[[bytes], Any]]]:
    from ike.eap.methods.credentials import StaticPasswords, password_check

    passwords = StaticPasswords(dict(config.users.items()))
    out: list[tuple[int, Callable[[bytes], Any]]] = []
    missing = [m for m in (*config.methods, *config.inner_methods) if m not in available_methods()]
    if missing:
        raise ValueError(f"EAP methods not available in this installation: {missing}")
    for name in config.methods:
        if name == "md5":
            from ike.eap.methods.md5 import md5_server_factory

            out.append((EapType.MD5_CHALLENGE, md5_server_factory(passwords)))
        elif name == "mschapv2":
            from ike.eap.methods.mschapv2 import mschapv2_server_factory

            out.append((EapType.MSCHAPV2, mschapv2_server_factory(passwords)))
        elif name == "gtc":
            from ike.eap.methods.gtc import gtc_server_factory

            out.append((EapType.GTC, gtc_server_factory(password_check(passwords))))
        elif name == "tls":
            from ike.eap_tls.method import EapTlsServer

            tls_config = _tls_server_config(config, client_cert=True)

            def tls_factory(identity: bytes, _c: Any = tls_config) -> Any:
                return EapTlsServer(_c, identity)

            out.append((EapType.TLS, tls_factory))
        elif name == "ttls":
            from ike.eap_ttls.method import TtlsServerConfig, ttls_server_factory

            inner = _inner_methods(config)
            ttls_config = TtlsServerConfig(
                tls=_tls_server_config(config, client_cert=False),
                eap_methods=tuple(inner),
                password_lookup=passwords,
                posture=tuple(posture),
            )
            out.append((EapType.TTLS, ttls_server_factory(ttls_config)))
        elif name == "peap":
            from ike.eap_peap.method import PeapServerConfig, peap_server_factory

            peap_config = PeapServerConfig(
                tls=_tls_server_config(config, client_cert=False),
                eap_methods=tuple(_inner_methods(config)),
                require_cryptobinding=config.peap_require_cryptobinding,
                posture=tuple(posture),
            )
            out.append((EapType.PEAP, peap_server_factory(peap_config)))
        elif name == "fast":
            from ike.eap_fast.method import FastServerConfig, Provisioning, fast_server_factory
            from ike.eap_fast.pac import PacKeyring

            # One keyring per server process: PACs open in every later conversation (and
            # after a restart when the keys are configured).
            keys = config.fast_pac_keys
            keyring = PacKeyring(
                keys[0] if keys else None,
                pac_lifetime=config.fast_pac_lifetime,
                previous=keys[1:],
                now=time.time(),
            )
            fast_config = FastServerConfig(
                tls=_tls_server_config(config, client_cert=False),
                a_id=config.fast_a_id.encode(),
                eap_methods=tuple(_inner_methods(config)),
                posture=tuple(posture),
                provisioning=Provisioning(config.fast_provisioning),
                password_lookup=passwords,
                keyring=keyring,
                pac_refresh=config.fast_pac_refresh,
            )
            out.append((EapType.FAST, fast_server_factory(fast_config)))
        else:
            raise ValueError(f"EAP method {name!r} is not wired into the RADIUS front-end yet")
    return out


def _inner_methods(config: RadiusConfig) -> list[tuple[int, Callable[[bytes], Any]]]:
    """Inner EAP methods of the tunnel methods: the simple methods in ``inner_methods``."""
    inner = RadiusConfig(clients=config.clients, methods=config.inner_methods, users=config.users)
    return _method_factories(inner)


_CURRENT: ContextVar[ConversationEap | None] = ContextVar("radius_conversation", default=None)


def current_conversation() -> ConversationEap | None:
    """The conversation whose EAP server is running right now: inside a method or posture
    factory this is the conversation the new method belongs to (None outside one)."""
    return _CURRENT.get()


class ConversationEap:
    """The EAP server of one RADIUS conversation, and what was started inside it.

    The RADIUS engine keeps one per conversation (per State); it drives the wrapped
    ``ike.eap.server.EapServer`` and, while it does, :func:`current_conversation` names it,
    so the method factories (built once, shared by every conversation) record their
    instances here: :attr:`methods` (the outer methods, e.g. the TTLS server) and
    :attr:`posture` (``(identity, method)`` of each posture method, PT-EAP / EAP-TNC, with
    the inner identity it was started for).  The verdict of *this* conversation is then
    the :attr:`posture_method`'s, whatever the outer User-Name (``anonymous@realm`` is
    shared by every user of a PEAP/TTLS deployment)."""

    def __init__(self, eap: Any, context: RequestContext) -> None:
        self.eap = eap
        self.context = context
        self.methods: list[Any] = []
        self.posture: list[tuple[bytes, Any]] = []
        self.connection_id: int | None = None
        """The posture (PB-TNC) connection id, set by whoever builds the posture method."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.eap, name)  # state, method_type, events, ... of the EapServer

    # start / receive name this conversation while the EAP server runs (a plain
    # set / reset: a contextmanager generator per packet costs more than the call).
    def start(self) -> bytes:
        token = _CURRENT.set(self)
        try:
            out: bytes = self.eap.start()
            return out
        finally:
            _CURRENT.reset(token)

    def receive(self, packet: bytes) -> bytes | None:
        token = _CURRENT.set(self)
        try:
            out: bytes | None = self.eap.receive(packet)
            return out
        finally:
            _CURRENT.reset(token)

    @property
    def succeeded(self) -> bool:
        return bool(self.eap.succeeded)

    @property
    def failed(self) -> bool:
        return bool(self.eap.failed)

    @property
    def msk(self) -> bytes | None:
        msk: bytes | None = self.eap.msk
        return msk

    @property
    def failure_reason(self) -> str | None:
        reason: str | None = self.eap.failure_reason
        return reason

    @property
    def identity(self) -> bytes | None:
        """The outer EAP identity (Identity Response)."""
        identity: bytes | None = self.eap.identity
        return identity

    @property
    def inner_identity(self) -> bytes | None:
        """The identity authenticated inside the tunnel method, else the one the posture
        method was started for; None for a bare method (only the outer identity exists)."""
        for method in reversed(self.methods):
            value = getattr(method, "inner_identity", None)
            if isinstance(value, bytes) and value:
                return value
        for identity, _method in reversed(self.posture):
            if identity:
                return bytes(identity)
        return None

    @property
    def posture_method(self) -> Any:
        """The last posture method started in this conversation (its ``verdict`` is the
        conversation's), or None when none ran."""
        return self.posture[-1][1] if self.posture else None


def _recorded(factory: Callable[[bytes], Any], *, posture: bool) -> Callable[[bytes], Any]:
    def make(identity: bytes) -> Any:
        method = factory(identity)
        conversation = _CURRENT.get()
        if conversation is not None:
            if posture:
                conversation.posture.append((identity, method))
            else:
                conversation.methods.append(method)
        return method

    return make


def build_eap_factory(
    config: RadiusConfig, *, posture: Methods = ()
) -> Callable[[RequestContext], Any]:
    """``factory(context) -> ConversationEap`` (an ``EapServer`` with the configured methods,
    in the configured order, and the record of what ran in it).

    ``posture``: methods run after authentication (PT-EAP, handed in by the gateway).  They
    run inside TTLS, PEAP and FAST only: RFC 7171 section 1 carries PT-EAP inside a tunnel
    method, so a peer that authenticates with a bare method gets no posture assessment (the
    verdict source then sees none and the policy decides).  Each posture method instance is
    recorded on the conversation it runs in (:attr:`ConversationEap.posture_method`); a
    posture factory may call :func:`current_conversation` for the conversation's
    :class:`radius.RequestContext`.
    """
    from ike.eap.server import EapServer

    scoped = [(t, _recorded(f, posture=True)) for t, f in posture]
    methods = [(t, _recorded(f, posture=False)) for t, f in _method_factories(config, scoped)]

    def factory(context: RequestContext) -> Any:
        return ConversationEap(EapServer(methods), context)

    return factory


def build_server(
    config: RadiusConfig,
    *,
    posture: Methods = (),
    verdict: VerdictSource = verdict_attribute,
) -> RadiusServer:
    """The RADIUS engine for ``config``; ``verdict`` maps a finished conversation to the NEA
    verdict (default: a ``verdict`` attribute on the EAP server, else none)."""
    return RadiusServer(
        config.clients,
        build_eap_factory(config, posture=posture),
        policy=config.policy,
        verdict=verdict,
        conversation_timeout=config.conversation_timeout,
    )


def _log_event(event: Event) -> None:
    """Default event sink: one line per event (the engine already logs drops and decisions;
    this is the record a supervisor or an accounting pipeline would consume)."""
    if isinstance(event, AccountingRecord):
        status = event.status.name if isinstance(event.status, enum.Enum) else event.status
        log.info(
            "accounting %s session=%r user=%r station=%r time=%s in=%s out=%s",
            status,
            event.session_id,
            event.user_name,
            event.calling_station_id,
            event.session_time,
            event.input_octets,
            event.output_octets,
        )
    else:
        log.debug("RADIUS event: %r", event)


def listen(
    config: RadiusConfig,
    reactor: Any,
    *,
    on_event: Callable[[Event], None] | None = _log_event,
    server: RadiusServer | None = None,
    accounting: AccountingSink | None = None,
) -> tuple[RadiusService, Sequence[Any]]:
    """Listen on the auth and accounting ports; return the service and the two ports.

    ``accounting``: where accounting sessions go (``service.accounting`` records them).
    With ``[dynauth]`` a CoA / Disconnect socket is opened too (``service.dynauth_port``)
    and ``service.dynauth`` follows the live sessions; the caller tells it verdict changes."""
    engine = server if server is not None else build_server(config)
    handlers: list[Callable[[Event], None]] = []
    recorder = AccountingRecorder(accounting) if accounting is not None else None
    if recorder is not None:
        handlers.append(recorder.handle)
    authorizer = None
    coa_port = None
    if config.dynauth is not None:
        settings = config.dynauth

        def secret_for(host: str) -> bytes | None:
            client = engine.client_for(host)
            return client.secret if client is not None else None

        authorizer, coa_port = listen_dynauth(
            reactor,
            secret_for,
            config.policy,
            interface=settings.listen,
            port=settings.port,
            initial_timeout=settings.timeout,
            max_transmissions=settings.tries,
            fallback_disconnect=settings.fallback_disconnect,
        )
        handlers.append(authorizer.handle)
    if on_event is not None:
        handlers.append(on_event)
    service = RadiusService(engine, reactor, _fan_out(handlers) if handlers else None)
    service.accounting = recorder
    service.dynauth = authorizer
    service.dynauth_port = coa_port
    ports = [
        reactor.listenUDP(port, RadiusDatagramProtocol(service), interface=config.listen)
        for port in (config.auth_port, config.acct_port)
    ]
    return service, ports


def _fan_out(handlers: Sequence[Callable[[Event], None]]) -> Callable[[Event], None]:
    """One ``on_event`` calling each handler; one failing does not starve the others."""
    if len(handlers) == 1:
        return handlers[0]

    def handle(event: Event) -> None:
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("RADIUS event handler %r failed", handler)

    return handle
