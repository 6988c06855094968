"""The ``[pt_tls]`` front-end of the daemon: a PT-TLS (RFC 6876) listener whose TNCS runs the
validators of ``[nea]`` (the same :class:`nea.imv.PolicyEngine` and evidence sink as PT-EAP
inside IKEv2).

* Client authentication: ``client_auth`` none / tls / sasl / tls-or-sasl / tls-and-sasl;
  SASL PLAIN users are the ``[secrets.eap-*]`` entries (id and secret), client certificates
  are verified against ``cacerts`` and ``[authorities]``.
* PB-TNC runs full duplex: a policy reload that affects a live session sends SRETRY on it at
  once (:meth:`DaemonPtTls.reassess`), and a client may send CRETRY whenever it likes.
* Every verdict is handed to the gateway (``Gateway.pt_tls_verdict``), which ties the session
  to the IKE_SA whose virtual IP the connection comes from (the endpoint reaches us through its
  tunnel) and moves that IKE_SA between its allow and isolate children.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.daemon.config import ConfigError, GatewayConfig, PtTlsSpec

__all__ = ["DaemonPtTls", "PtTlsSession", "pt_tls_credentials", "start_pt_tls"]

log = logging.getLogger("gateway.daemon.tnc")


@dataclass
class PtTlsSession:
    """One live PT-TLS connection of the daemon."""

    connection_id: int
    proto: Any
    peer: str
    """The client's address as we see it (its virtual IP when it comes through a tunnel)."""
    identity: str | None = None
    verdicts: list[str] = field(default_factory=list)
    """``allow`` / ``isolate`` / ``none`` per assessment, oldest first."""

    @property
    def live(self) -> bool:
        engine = getattr(self.proto, "engine", None)
        return engine is not None and not engine.closed


def _verdict_name(recommendation: Any) -> str:
    from nea.pb_tnc import AccessRecommendation

    if recommendation is AccessRecommendation.ALLOWED:
        return "allow"
    if recommendation is AccessRecommendation.QUARANTINED:
        return "isolate"
    return "none"


def pt_tls_credentials(config: GatewayConfig) -> tuple[bytes, bytes, list[bytes]]:
    """``(certificate chain PEM, private key PEM, [CA PEM, ...])`` for ``[pt_tls]``: its
    ``certs`` or else the first connection's ``local.certs``; the key is the
    ``[secrets.private-*]`` entry whose public key matches; CAs are ``cacerts`` and
    ``[authorities]``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spec = config.pt_tls
    assert spec is not None
    src = config.source
    certs = spec.certs or next((c.local.certs for c in config.connections if c.local.certs), ())
    if not certs:
        raise ConfigError(src, "pt_tls.certs", "needs the server certificate (or local.certs)")
    try:
        chain_pem = b"".join(p.read_bytes() for p in certs)
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except (OSError, ValueError) as exc:
        raise ConfigError(src, "pt_tls.certs", f"cannot read {certs[0]}: {exc}") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    pub = leaf.public_key().public_bytes(*spki)
    key_pem: bytes | None = None
    for s in config.secrets:
        if s.kind != "private" or s.file is None:
            continue
        try:
            data = s.file.read_bytes()
            key = (
                serialization.load_pem_private_key(data, s.secret)
                if b"-----BEGIN" in data
                else serialization.load_der_private_key(data, s.secret)
            )
        except (OSError, ValueError, TypeError):
            continue
        if key.public_key().public_bytes(*spki) == pub:
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            break
    if key_pem is None:
        raise ConfigError(src, "pt_tls.certs", "no [secrets.private-*] for its certificate")
    cas: list[bytes] = []
    for path in (*spec.cacerts, *(a.cacert for a in config.authorities)):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(src, "pt_tls.cacerts", f"cannot read {path}: {exc}") from None
        if b"-----BEGIN" not in data:
            data = x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM)
        cas.append(data)
    if spec.client_auth in ("tls", "tls-and-sasl") and not cas:
        raise ConfigError(src, "pt_tls.client_auth", f"{spec.client_auth} needs CAs")
    return chain_pem, key_pem, cas


def _users(config: GatewayConfig) -> dict[str, str]:
    users: dict[str, str] = {}
    for s in config.secrets:
        if s.kind == "eap" and s.secret is not None:
            for i in s.ids:
                users[i] = s.secret.decode("utf-8", "replace")
    return users


class _LiveUsers(Mapping[str, str]):
    """``{user: password}`` as the front-end has it now (reloads replace the table)."""

    def __init__(self, owner: DaemonPtTls) -> None:
        self.owner = owner

    def __getitem__(self, key: str) -> str:
        return self.owner.users[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.owner.users)

    def __len__(self) -> int:
        return len(self.owner.users)


class DaemonPtTls:
    """The running PT-TLS listener and its sessions (by posture connection id)."""

    def __init__(
        self,
        spec: PtTlsSpec,
        nea: Any,
        users: dict[str, str],
        *,
        evidence_sink: Any = None,
        on_verdict: Callable[[PtTlsSession, str], None] | None = None,
        clock: Any = None,
    ) -> None:
        from gateway.pt_tls import PtTlsServerFactory
        from nea.pt_tls import ClientAuth, PlainServer, PtTlsServerConfig, plain_verifier

        self.spec = spec
        self.nea = nea
        self.users = users
        self.sink = evidence_sink
        self.on_verdict = on_verdict
        self.sessions: dict[int, PtTlsSession] = {}
        self.port: Any = None
        verifier = plain_verifier(self._lookup())
        mode = ClientAuth(spec.client_auth)
        sasl = {"PLAIN": lambda: PlainServer(verifier)} if mode is not ClientAuth.TLS else {}
        if mode in (ClientAuth.SASL, ClientAuth.TLS_OR_SASL, ClientAuth.TLS_AND_SASL) and not users:
            log.warning("[pt_tls] client_auth %s without [secrets.eap-*] users", spec.client_auth)
        self.factory = PtTlsServerFactory(
            self._make_tncs,
            PtTlsServerConfig(
                mode,
                sasl if mode is not ClientAuth.NONE else {},
                max_sasl_attempts=spec.max_sasl_attempts,
            ),
            on_event=self._event,
            idle_timeout=spec.idle_timeout,
            clock=clock,
        )

    def _lookup(self) -> Mapping[str, str]:
        """A live view of the users (a reload replaces :attr:`users`)."""
        return _LiveUsers(self)

    def set_users(self, users: dict[str, str]) -> None:
        self.users = users

    def _make_tncs(self) -> Any:
        from nea.pb_tnc import PbTncConfig, Tncs

        cid = self.nea.next_id()
        return Tncs(
            self.nea.validators,
            connection_id=cid,
            config=PbTncConfig(full_duplex=True),
        )

    def _event(self, proto: Any, event: Any) -> None:
        from nea.pb_tnc.engine import AssessmentDecided
        from nea.pt_tls import (
            AuthenticationFailed,
            ClientAuthenticated,
            PbTncEventOccurred,
            SessionClosed,
        )

        engine = proto.engine
        cid = engine.tncs.connection_id
        if isinstance(event, ClientAuthenticated):
            peer = proto.transport.getPeer()
            host = str(getattr(peer, "host", "?"))
            session = PtTlsSession(cid, proto, host, event.identity)
            self.sessions[cid] = session
            self.nea.engine.open_connection(cid, identity=event.identity or host)
            bind = getattr(self.sink, "bind_address", None)
            if bind is not None:
                try:
                    bind(cid, host)
                except Exception:
                    log.exception("evidence sink failed")
            log.info(
                "PT-TLS %s: client %r authenticated (%s), connection %d",
                host,
                event.identity,
                event.method,
                cid,
            )
        elif isinstance(event, AuthenticationFailed):
            log.warning("PT-TLS client authentication failed: %s", event.reason)
        elif isinstance(event, PbTncEventOccurred) and isinstance(event.event, AssessmentDecided):
            s = self.sessions.get(cid)
            if s is None:
                return
            verdict = _verdict_name(event.event.recommendation)
            s.verdicts.append(verdict)
            log.info(
                "PT-TLS %s (%r): assessment %d -> %s", s.peer, s.identity, len(s.verdicts), verdict
            )
            if self.on_verdict is not None:
                try:
                    self.on_verdict(s, verdict)
                except Exception:
                    log.exception("PT-TLS verdict consumer failed")
        elif isinstance(event, SessionClosed):
            s = self.sessions.pop(cid, None)
            self._end(cid)
            log.info(
                "PT-TLS connection %d (%r) closed: %s",
                cid,
                s.identity if s is not None else None,
                event.reason,
            )

    def _end(self, cid: int) -> None:
        try:
            from nea.pb_tnc.imv import ConnectionState

            for v in self.nea.validators:
                v.notify_connection_change(cid, ConnectionState.DELETE)
        except Exception:
            log.debug("posture teardown failed", exc_info=True)

    def listen(self, reactor: Any, options: Any) -> Any:
        from gateway.pt_tls import listen_pt_tls

        self.port = listen_pt_tls(
            reactor, self.factory, options, port=self.spec.port, interface=self.spec.listen
        )
        return self.port

    def retry(self, session: PtTlsSession) -> bool:
        """SRETRY on one live session (full duplex: at once, whatever the state)."""
        from nea.pt_tls import PtTlsError, PtTlsUsageError

        if not session.live:
            return False
        try:
            session.proto.engine.request_retry()
        except (PtTlsUsageError, PtTlsError) as exc:
            log.info("SRETRY to connection %d: %s", session.connection_id, exc)
            return False
        except Exception as exc:  # PB-TNC usage errors (e.g. no handshake to retry)
            log.info("SRETRY to connection %d: %s", session.connection_id, exc)
            return False
        session.proto._flush()
        log.info("PT-TLS %s (%r): SRETRY", session.peer, session.identity)
        return True

    def reassess(self, affected: set[int]) -> list[dict[str, Any]]:
        """SRETRY to every live session among ``affected`` connection ids."""
        out = []
        for cid in sorted(affected):
            s = self.sessions.get(cid)
            if s is not None and self.retry(s):
                out.append({"connection": cid, "identity": s.identity, "peer": s.peer})
        return out

    def find(self, address: str) -> list[PtTlsSession]:
        return [s for s in self.sessions.values() if s.peer == address and s.live]

    def status(self) -> dict[str, Any]:
        host = self.port.getHost() if self.port is not None else None
        return {
            "listen": self.spec.listen,
            "port": getattr(host, "port", self.spec.port),
            "client_auth": self.spec.client_auth,
            "sessions": [
                {
                    "connection": s.connection_id,
                    "peer": s.peer,
                    "identity": s.identity,
                    "verdicts": list(s.verdicts),
                }
                for s in sorted(self.sessions.values(), key=lambda s: s.connection_id)
            ],
        }

    def close(self) -> None:
        for s in list(self.sessions.values()):
            engine = getattr(s.proto, "engine", None)
            if engine is not None and not engine.closed:
                engine.close()
                s.proto._flush()
        if self.port is not None:
            self.port.stopListening()
            self.port = None


def start_pt_tls(gateway: Any, reactor: Any) -> DaemonPtTls | None:
    """Listen for PT-TLS when ``[pt_tls]`` is configured; returns the front-end or None."""
    config: GatewayConfig = gateway.config
    spec = config.pt_tls
    nea = gateway.composition.nea_state
    if spec is None or nea is None:
        return None
    from gateway.pt_tls import server_tls_options

    chain, key, cas = pt_tls_credentials(config)
    if spec.client_auth in ("none", "sasl"):
        cas = []  # a certificate would not be used: none is asked for
    try:
        options = server_tls_options(
            chain, key, cas, require_client_cert=spec.client_auth in ("tls", "tls-and-sasl")
        )
    except Exception as exc:
        raise ConfigError(config.source, "pt_tls.certs", f"TLS context: {exc}") from None
    front = DaemonPtTls(
        spec,
        nea,
        _users(config),
        evidence_sink=gateway.evidence_sink,
        on_verdict=getattr(gateway, "pt_tls_verdict", None),
    )
    try:
        port = front.listen(reactor, options)
    except Exception as exc:
        raise ConfigError(
            config.source, "pt_tls.port", f"cannot listen on {spec.listen}:{spec.port}: {exc}"
        ) from None
    log.info(
        "PT-TLS listening on %s port %d (client auth %s)%s",
        spec.listen,
        port.getHost().port,
        spec.client_auth,
        ", advertised as PDP in IKEv2 assessments" if spec.referral else "",
    )
    return front
