"""``nea-endpoint --pt-tls``: re-assessment over PT-TLS (RFC 6876) inside the tunnel.

Once the IKE_SA is up (isolated or allowed), the endpoint opens a PT-TLS session to the
gateway's PDP (``--pt-tls HOST[:PORT]``, or ``referral``: the PB-PDP-Referral the gateway sent
during PT-EAP) - through its tunnel, since the PDP's address is in the children's networks -
authenticates with SASL PLAIN (the EAP identity and password) and/or its certificate, and is
assessed.  The session stays open (full duplex): a re-assessment (SIGUSR1, a changed
``--watch-profile``) sends CRETRY on it with the facts read again; the gateway may send SRETRY
at any time.  The gateway moves the IKE_SA between its allow and isolate children after each
verdict, without a new IKE_SA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from nea.imc import HostCollector, HostFacts, build_collectors
from nea.pb_tnc import AccessRecommendation, PbTncConfig, Tncc

__all__ = ["PT_TLS_CONN_ID", "EndpointPtTls", "parse_pt_tls"]

log = logging.getLogger("gateway.nea_endpoint")

PT_TLS_CONN_ID = 2
"""The TNCC connection id of the PT-TLS session (PT-EAP's is 1)."""


def parse_pt_tls(text: str) -> tuple[str, int] | None:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT``; None for ``referral``."""
    from gateway.nea_endpoint.options import OptionsError, parse_server

    if text == "referral":
        return None
    host, port = parse_server(text)
    if ":" not in text.rsplit("]", 1)[-1]:
        port = 271
    if not host:
        raise OptionsError("--pt-tls: no host")
    return host, port


class EndpointPtTls:
    """One PT-TLS session of the endpoint; ``on_result(recommendation)`` hears every
    assessment result (the first, CRETRY's and the gateway's SRETRY's)."""

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        *,
        server_name: str,
        ca_pems: list[bytes],
        facts: HostFacts,
        identity: str | None,
        password: str | None,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        on_result: Callable[[AccessRecommendation | None], None] = lambda rec: None,
        on_closed: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.reactor = reactor
        self.host, self.port = host, port
        self.server_name = server_name
        self.ca_pems = ca_pems
        self.facts = facts
        self.identity, self.password = identity, password
        self.cert_pem, self.key_pem = cert_pem, key_pem
        self.on_result = on_result
        self.on_closed = on_closed
        self.collectors: list[HostCollector] = []
        self.tncc: Tncc | None = None
        self.proto: Any = None
        self.results: list[AccessRecommendation | None] = []
        self.closed: str | None = None
        self._first: defer.Deferred[AccessRecommendation | None] = defer.Deferred()

    @property
    def live(self) -> bool:
        engine = getattr(self.proto, "engine", None)
        return self.closed is None and engine is not None and not engine.closed

    def _make_tncc(self) -> Tncc:
        self.collectors = build_collectors(self.facts)
        self.tncc = Tncc(
            self.collectors,
            connection_id=PT_TLS_CONN_ID,
            config=PbTncConfig(full_duplex=True, close_after_result=False),
        )
        return self.tncc

    def _event(self, proto: Any, event: Any) -> None:
        from nea.pb_tnc.engine import ResultReceived
        from nea.pt_tls import AuthenticationFailed, PbTncEventOccurred, SessionClosed

        self.proto = proto
        if isinstance(event, PbTncEventOccurred) and isinstance(event.event, ResultReceived):
            rec = event.event.recommendation
            self.results.append(rec)
            log.info("PT-TLS assessment: %s", rec.name if rec is not None else "none")
            if not self._first.called:
                self._first.callback(rec)
            else:
                self.on_result(rec)
        elif isinstance(event, AuthenticationFailed):
            log.warning("PT-TLS authentication failed: %s", event.reason)
        elif isinstance(event, SessionClosed):
            self.closed = event.reason
            log.info("PT-TLS session closed: %s", event.reason)
            if not self._first.called:
                self._first.errback(RuntimeError(f"PT-TLS: {event.reason}"))
            else:
                self.on_closed(event.reason)

    def start(self) -> defer.Deferred[AccessRecommendation | None]:
        """Connect and run the first assessment; fires with its recommendation."""
        from gateway.pt_tls import PtTlsClientFactory, client_tls_options, connect_pt_tls
        from nea.pt_tls import PlainClient, PtTlsClientConfig

        mechanisms: tuple[Any, ...] = ()
        if self.identity is not None and self.password is not None:
            ident, pw = self.identity, self.password
            mechanisms = (lambda: PlainClient(ident, pw),)
        factory = PtTlsClientFactory(
            self._make_tncc, PtTlsClientConfig(mechanisms), on_event=self._event, idle_timeout=None
        )
        options = client_tls_options(
            self.server_name, self.ca_pems, cert_pem=self.cert_pem, key_pem=self.key_pem
        )
        done = connect_pt_tls(self.reactor, self.host, factory, options, port=self.port)

        def ended(failure: Any) -> None:
            if not self._first.called:
                self._first.errback(failure)

        done.addErrback(ended)
        return self._first

    def retry(self, facts: HostFacts) -> None:
        """CRETRY with ``facts`` (read again by the caller)."""
        if not self.live:
            raise RuntimeError("no live PT-TLS session")
        self.facts = facts
        for col in self.collectors:
            col.facts = facts
        self.proto.engine.request_retry()
        self.proto._flush()

    def close(self) -> None:
        if self.live:
            self.proto.engine.close()
            self.proto._flush()
