"""Twisted adapter for PT-TLS (RFC 6876): a TLS server on TCP 271 and a TLS client.

Thin on purpose (the h2-on-Twisted shape): each connection owns one sans-I/O
:class:`nea.pt_tls.PtTlsServer` / :class:`nea.pt_tls.PtTlsClient`; ``dataReceived`` feeds it,
whatever it has to send is written, its events go to ``on_event`` and the connection is closed
once the engine says the session is over.  TLS itself is Twisted's (pyOpenSSL):

* the server presents its certificate chain and asks for a client certificate, verified
  against the configured CA(s) (none is asked for without a CA); with
  ``require_client_cert`` a client without one fails the handshake.  The engine is created
  when the handshake completes, with the identity from the verified client certificate (or
  None), which PT-TLS client authentication uses (``ClientAuth.TLS`` / ``TLS_OR_SASL`` /
  ``TLS_AND_SASL``).
* the client verifies the server's chain against its CA(s) and its name (service_identity),
  optionally presenting a client certificate (with its intermediates), and starts the PT-TLS
  session (Version Request) once the handshake is done.

Usage::

    factory = PtTlsServerFactory(lambda: Tncs(validators, config=PbTncConfig(full_duplex=True)),
                                 PtTlsServerConfig(ClientAuth.TLS_OR_SASL, {"PLAIN": ...}),
                                 on_event=handle)
    listen_pt_tls(reactor, factory, server_tls_options(cert_pem, key_pem, [ca_pem]))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.internet import defer, protocol
from twisted.internet import ssl as _twisted_ssl
from twisted.internet.interfaces import IHandshakeListener, IListeningPort
from twisted.python.failure import Failure
from zope.interface import implementer

from nea.pb_tnc import Tncc, Tncs
from nea.pt_tls import (
    PT_TLS_PORT,
    Event,
    PtTlsClient,
    PtTlsClientConfig,
    PtTlsServer,
    PtTlsServerConfig,
)

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "PT_TLS_PORT",
    "PtTlsClientFactory",
    "PtTlsClientProtocol",
    "PtTlsServerFactory",
    "PtTlsServerProtocol",
    "certificate_identity",
    "client_tls_options",
    "connect_pt_tls",
    "listen_pt_tls",
    "server_tls_options",
]

log = logging.getLogger("gateway.pt_tls")

ssl: Any = _twisted_ssl
"""twisted.internet.ssl, untyped for mypy (its loaders carry no annotations)."""

EventHandler = Callable[[Any, Event], None]
"""``on_event(protocol, event)``: the protocol gives access to the engine and the peer."""


def certificate_identity(cert: x509.Certificate) -> str:
    """The identity a client certificate asserts: its first e-mail or DNS subjectAltName,
    else its subject CN, else the whole subject DN (RFC 4514)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for kind in (x509.RFC822Name, x509.DNSName):
            names = san.get_values_for_type(kind)
            if names:
                return str(names[0])
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return str(cns[0].value)
    return cert.subject.rfc4514_string()


def _peer_identity(transport: Any) -> str | None:
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    cert = get()
    if cert is None:
        return None
    return certificate_identity(cert.to_cryptography())


DEFAULT_IDLE_TIMEOUT = 120.0
"""Seconds without a byte from the peer before the connection is dropped."""


class _EngineProtocol(protocol.Protocol):
    engine: PtTlsServer | PtTlsClient | None = None
    on_event: EventHandler | None = None
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    clock: Any = None
    """An ``IReactorTime`` (the global reactor when None; tests pass a ``Clock``)."""
    _idle_call: Any = None

    def connectionMade(self) -> None:
        self._arm()

    def _arm(self) -> None:
        if self.idle_timeout is None:
            return
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.idle_timeout)
            return
        clock = self.clock
        if clock is None:
            from twisted.internet import reactor as clock
        self._idle_call = clock.callLater(self.idle_timeout, self.timeoutConnection)

    def _disarm(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

    def timeoutConnection(self) -> None:
        log.info("PT-TLS %s idle for %s s: closing", self._peer_text(), self.idle_timeout)
        if self.engine is not None:
            self.engine.connection_lost("idle timeout")
            self._deliver_events()
        transport: Any = self.transport
        transport.abortConnection()

    def _deliver_events(self) -> None:
        if self.engine is None:
            return
        for event in self.engine.events():
            log.debug("PT-TLS %s: %s", self._peer_text(), type(event).__name__)
            if self.on_event is not None:
                self.on_event(self, event)

    def _flush(self) -> None:
        engine = self.engine
        transport: Any = self.transport
        if engine is None or transport is None:
            return
        out = engine.data_to_send()
        if out:
            transport.write(out)
        self._deliver_events()
        if engine.closed:
            transport.loseConnection()

    def _peer_text(self) -> str:
        transport: Any = self.transport
        peer = transport.getPeer() if transport is not None else None
        return str(peer) if peer is not None else "?"

    def dataReceived(self, data: bytes) -> None:
        self._arm()
        if self.engine is None:
            self._handshake_done()
        assert self.engine is not None
        self.engine.receive_data(data)
        self._flush()

    def _handshake_done(self) -> None:
        raise NotImplementedError

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._disarm()
        if self.engine is not None:
            self.engine.connection_lost(f"connection lost: {reason.getErrorMessage()}")
            self._deliver_events()


@implementer(IHandshakeListener)
class PtTlsServerProtocol(_EngineProtocol):
    """One PT-TLS connection, server side."""

    def __init__(self, factory: PtTlsServerFactory) -> None:
        self.factory = factory
        self.on_event = factory.on_event
        self.idle_timeout = factory.idle_timeout
        self.clock = factory.clock

    def handshakeCompleted(self) -> None:
        if self.engine is None:
            self._handshake_done()

    def _handshake_done(self) -> None:
        identity = _peer_identity(self.transport)
        self.engine = PtTlsServer(
            self.factory.make_tncs(), self.factory.config, tls_peer_identity=identity
        )
        log.info("PT-TLS connection from %s, client certificate %r", self._peer_text(), identity)


class PtTlsServerFactory(protocol.Factory):
    """Builds a :class:`PtTlsServerProtocol` (and a fresh TNCS) per connection."""

    protocol = PtTlsServerProtocol

    def __init__(
        self,
        make_tncs: Callable[[], Tncs],
        config: PtTlsServerConfig,
        *,
        on_event: EventHandler | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        clock: Any = None,
    ) -> None:
        self.make_tncs = make_tncs
        self.config = config
        self.on_event = on_event
        self.idle_timeout = idle_timeout
        self.clock = clock

    def buildProtocol(self, addr: Any) -> PtTlsServerProtocol:
        return PtTlsServerProtocol(self)


@implementer(IHandshakeListener)
class PtTlsClientProtocol(_EngineProtocol):
    """One PT-TLS connection, client side: starts the session after the TLS handshake."""

    def __init__(self, factory: PtTlsClientFactory) -> None:
        self.factory = factory
        self.on_event = factory.on_event
        self.idle_timeout = factory.idle_timeout
        self.clock = factory.clock

    def handshakeCompleted(self) -> None:
        if self.engine is None:
            self._handshake_done()
            self._flush()

    def _handshake_done(self) -> None:
        self.engine = PtTlsClient(self.factory.make_tncc(), self.factory.config)
        self.engine.start()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        super().connectionLost(reason)
        if self.engine is not None:
            self.factory.finished(self.engine)
        else:
            self.factory.failed(reason)


class PtTlsClientFactory(protocol.ClientFactory):
    """Connects once; :attr:`done` fires with the :class:`PtTlsClient` engine when the
    connection ends (read its ``result`` / ``recommendation``), or errs if none was made."""

    protocol = PtTlsClientProtocol

    def __init__(
        self,
        make_tncc: Callable[[], Tncc],
        config: PtTlsClientConfig | None = None,
        *,
        on_event: EventHandler | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        clock: Any = None,
    ) -> None:
        self.make_tncc = make_tncc
        self.config = config if config is not None else PtTlsClientConfig()
        self.on_event = on_event
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.done: defer.Deferred[PtTlsClient] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> PtTlsClientProtocol:
        return PtTlsClientProtocol(self)

    def finished(self, engine: PtTlsClient) -> None:
        if not self.done.called:
            self.done.callback(engine)

    def failed(self, reason: Failure) -> None:
        if not self.done.called:
            self.done.errback(reason)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed(reason)


# --------------------------------------------------------------------------- TLS options


def server_tls_options(
    cert_pem: bytes,
    key_pem: bytes,
    ca_pems: Sequence[bytes],
    *,
    require_client_cert: bool = False,
) -> Any:
    """Server context: ``cert_pem`` may hold the chain (leaf first); client certificates are
    requested and verified against ``ca_pems`` (required with ``require_client_cert``).
    Without any CA no client certificate is asked for (``require_client_cert`` then is an
    error: nothing could verify it)."""
    leaf, *chain = _split_pem(cert_pem)
    private = ssl.PrivateCertificate.loadPEM(leaf + key_pem)
    cas = [ssl.Certificate.loadPEM(c).original for c in ca_pems]
    if require_client_cert and not cas:
        raise ValueError("requiring a client certificate needs CA certificates to verify it")
    return ssl.CertificateOptions(
        privateKey=private.privateKey.original,
        certificate=private.original,
        extraCertChain=[ssl.Certificate.loadPEM(c).original for c in chain],
        verify=bool(cas),
        caCerts=cas or None,
        requireCertificate=require_client_cert,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )


def client_tls_options(
    server_name: str,
    ca_pems: Sequence[bytes],
    *,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
) -> Any:
    """Client context verifying the server's chain and name; optional client certificate
    (``cert_pem`` may hold its chain, leaf first: the intermediates are sent along)."""
    client_cert = None
    extra: dict[str, Any] = {}
    if cert_pem is not None and key_pem is not None:
        leaf, *chain = _split_pem(cert_pem)
        client_cert = ssl.PrivateCertificate.loadPEM(leaf + key_pem)
        if chain:
            extra["extraCertChain"] = [ssl.Certificate.loadPEM(c).original for c in chain]
    return ssl.optionsForClientTLS(
        server_name,
        trustRoot=ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(c) for c in ca_pems]),
        clientCertificate=client_cert,
        extraCertificateOptions=extra,
    )


def _split_pem(pem: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() + b"\n" + marker + b"\n" for p in pem.split(marker) if p.strip()]
    if not parts:
        raise ValueError("no certificate in PEM data")
    return parts


def listen_pt_tls(
    reactor: Any,
    factory: PtTlsServerFactory,
    options: Any,
    *,
    port: int = PT_TLS_PORT,
    interface: str = "",
) -> IListeningPort:
    """Listen for PT-TLS (TCP 271 unless ``port`` says otherwise; 0 picks a free port)."""
    listening: IListeningPort = reactor.listenSSL(port, factory, options, interface=interface)
    return listening


def connect_pt_tls(
    reactor: Any,
    host: str,
    factory: PtTlsClientFactory,
    options: Any,
    *,
    port: int = PT_TLS_PORT,
) -> defer.Deferred[PtTlsClient]:
    reactor.connectSSL(host, port, factory, options)
    return factory.done
