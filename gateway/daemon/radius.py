"""The ``[radius]`` front-end of the daemon: :mod:`gateway.radius` built from the gateway's
configuration, with PT-EAP posture inside TTLS/PEAP/FAST when ``radius.posture`` is on.

Each RADIUS conversation's verdict is its own PT-EAP method's (recorded on the
conversation's :class:`gateway.radius.ConversationEap`), so users sharing an anonymous outer
identity never see each other's verdicts.  The posture connection and its evidence session
are opened for the inner identity; accounting finds an endpoint's connection by NAS address
and Calling-Station-Id (what the Access-Accept was for), and dynamic authorization keeps
sending the NAS the outer User-Name and Calling-Station-Id it knows the session by."""

from __future__ import annotations

import logging
from typing import Any

from gateway.daemon.config import ConfigError, GatewayConfig

__all__ = ["DaemonRadius", "radius_config", "start_radius"]

log = logging.getLogger("gateway.daemon.net")

_MAX_STATIONS = 1_000_000
"""Endpoints remembered for tying accounting to their posture connection."""


def radius_config(config: GatewayConfig) -> Any:
    """A :class:`gateway.radius.RadiusConfig` for ``config.radius`` (None without one)."""
    from cryptography.hazmat.primitives import serialization

    from gateway.radius import ConfigError as RadiusConfigError
    from gateway.radius import parse_config

    spec = config.radius
    if spec is None:
        return None
    users: dict[str, str] = {}
    for s in config.secrets:
        if s.kind == "eap" and s.secret is not None:
            for i in s.ids:
                users[i] = s.secret.decode("utf-8", "replace")
    data: dict[str, Any] = {
        "radius": {
            "listen": spec.listen,
            "auth_port": spec.auth_port,
            "acct_port": spec.acct_port,
            "conversation_timeout": spec.conversation_timeout,
            "clients": [
                {
                    "address": c.address,
                    "secret": c.secret,
                    "name": c.name,
                    "require_message_authenticator": c.require_message_authenticator,
                }
                for c in spec.clients
            ],
        },
        "eap": {
            "methods": list(spec.methods),
            "inner_methods": list(spec.inner_methods),
            # EAP-FAST PACs opened across restarts with the [secrets.pac-*] keys
            "fast_pac_keys": [
                k.hex()
                for s in config.secrets
                if s.kind == "pac" and s.secret is not None
                for k in (s.secret, *s.previous)
            ],
        },
        "users": users,
        "vlans": dict(spec.vlans),
    }
    if spec.session_timeout is not None:
        data["radius"]["session_timeout"] = spec.session_timeout
    if spec.dynauth is not None:
        data["dynauth"] = dict(spec.dynauth)
    if spec.certs:
        from cryptography import x509

        try:
            leaf = x509.load_pem_x509_certificates(spec.certs[0].read_bytes())[0]
        except (OSError, ValueError) as exc:
            raise ConfigError(
                config.source, "radius.certs", f"cannot read {spec.certs[0]}: {exc}"
            ) from None
        pub = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_path = None
        for s in config.secrets:
            if s.kind == "private" and s.file is not None:
                k = serialization.load_pem_private_key(s.file.read_bytes(), s.secret)
                kp = k.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                if kp == pub:
                    key_path = s.file
        if key_path is None:
            raise ConfigError(config.source, "radius.certs", "no [secrets.private-*] for it")
        data["tls"] = {
            "cert": str(spec.certs[0]),
            "key": str(key_path),
            "ca": [str(p) for p in spec.cacerts] + [str(a.cacert) for a in config.authorities],
        }
    try:
        return parse_config(data, config.control.socket.parent)
    except RadiusConfigError as exc:
        raise ConfigError(config.source, "radius", str(exc)) from None


class DaemonRadius:
    """The running RADIUS front-end: the :class:`gateway.radius.RadiusService` with its
    accounting recorder and dynamic authorization (``service.dynauth``)."""

    def __init__(
        self,
        service: Any,
        identities: dict[str, int],
        stations: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.service = service
        self.identities = identities
        """Identity (the inner one, as the posture method was started for it) -> the posture
        connection id of its last assessment."""
        self.stations: dict[tuple[str, str], int] = stations if stations is not None else {}
        """(NAS address, Calling-Station-Id, else outer User-Name) -> the posture connection
        id of the endpoint's last accepted assessment: what the NAS's accounting names."""

    def connection_for(self, session: Any) -> int | None:
        """The posture connection of an accounting session (:class:`AccountingSession`):
        by its NAS and station, as the Access-Accept was; else by the inner identity the
        recorder learnt for it.  Never by the outer User-Name alone: with an anonymous outer
        identity every session shares it."""
        nas = getattr(session, "nas_address", None)
        # the station as the Access-Accept was keyed: the User-Name only without a MAC
        station = getattr(session, "calling_station_id", None) or getattr(
            session, "user_name", None
        )
        if isinstance(nas, str) and isinstance(station, str):
            cid = self.stations.get((nas, station))
            if cid is not None:
                return cid
        identity = getattr(session, "identity", None)
        return self.identities.get(identity) if isinstance(identity, str) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)  # datagram, accounting, dynauth, ...

    def reassess(self, user_names: set[str]) -> int:
        """A policy change affects these users' assessments.  Posture ran inside their EAP
        conversation, so re-assessing needs a new authentication: each live session gets a
        Disconnect-Request (RFC 5176) and the supplicant authenticates again, under the new
        policy.  Returns how many requests were sent; without ``[radius.dynauth]`` none (the
        sessions keep their VLAN until they re-authenticate by themselves)."""
        from radius import Verdict

        dynauth = getattr(self.service, "dynauth", None)
        if dynauth is None:
            if user_names:
                log.warning(
                    "policy change affects RADIUS sessions of %s; without [radius.dynauth] "
                    "they keep their access until they re-authenticate",
                    ", ".join(sorted(user_names)),
                )
            return 0
        sent = 0
        for name in sorted(user_names):
            # the name is who was assessed: the inner identity when the tunnel told it
            for key in dynauth.find(identity=name):
                log.info(
                    "RADIUS session %s (%s): policy changed, Disconnect-Request to re-assess",
                    key,
                    name,
                )
                dynauth.verdict_changed(key, Verdict.NO_ACCESS)
                sent += 1
        return sent


def start_radius(gateway: Any, reactor: Any) -> DaemonRadius | None:
    """Listen for RADIUS when ``[radius]`` is configured; returns the front-end or None."""
    config = gateway.config
    rc = radius_config(config)
    if rc is None:
        return None
    from gateway.radius import build_server
    from gateway.radius import listen as radius_listen

    posture: list[tuple[int, Any]] = []
    identities: dict[str, int] = {}
    stations: dict[tuple[str, str], int] = {}
    nea = gateway.composition.nea_state
    if config.radius.posture and nea is not None:
        from gateway.radius import current_conversation
        from nea.pt_eap import PtEapServer

        def make(identity: bytes) -> Any:
            # ``identity`` is the inner one (the tunnel's EAP identity / User-Name AVP):
            # the posture connection and its evidence session are that user's.
            tncs = nea.make_tncs(identity, None)
            cid = getattr(tncs, "connection_id", None)
            conversation = current_conversation()
            if isinstance(cid, int):
                identities[identity.decode("utf-8", "replace")] = cid
                if conversation is not None:
                    conversation.connection_id = cid
            return PtEapServer(tncs)

        posture.append((54, make))

    def verdict(conversation: Any) -> Any:
        """This conversation's verdict: its own posture method's (the EAP server of the
        conversation recorded it), never another conversation's with the same User-Name."""
        from nea.pb_tnc import AccessRecommendation
        from radius import Verdict

        eap = conversation.eap
        method = getattr(eap, "posture_method", None)
        if method is None:
            return None  # no posture ran (a bare method): the policy decides
        cid = getattr(eap, "connection_id", None)
        context = conversation.context
        station = context.calling_station_id or context.user_name
        if isinstance(cid, int) and station is not None:
            stations[(context.source[0], station)] = cid
            while len(stations) > _MAX_STATIONS:
                del stations[next(iter(stations))]
        v = getattr(method, "verdict", None)
        if v is None:
            return Verdict.NO_ACCESS  # posture started but gave no verdict: fail closed
        if v.recommendation is AccessRecommendation.ALLOWED:
            return Verdict.ALLOW
        if v.recommendation is AccessRecommendation.QUARANTINED:
            return Verdict.ISOLATE
        return Verdict.NO_ACCESS

    front = DaemonRadius(None, identities, stations)
    accounting: Any = None
    if config.radius.accounting:
        from gateway.radius.accounting import EvidenceAccountingSink, MemoryAccountingSink

        memory = MemoryAccountingSink()
        evidence = gateway.evidence_sink
        if evidence is not None and hasattr(evidence, "accounting"):

            def connection_for(session: Any) -> int | None:
                return front.connection_for(session)

            accounting = EvidenceAccountingSink(evidence, connection_for, also=(memory,))
        else:
            accounting = memory
    server = build_server(rc, posture=posture, verdict=verdict)
    service, _ports = radius_listen(rc, reactor, server=server, accounting=accounting)
    front.service = service
    log.info(
        "RADIUS listening on %s ports %d/%d%s%s",
        rc.listen,
        rc.auth_port,
        rc.acct_port,
        ", accounting recorded" if accounting is not None else "",
        f", dynamic authorization to NAS port {rc.dynauth.port}" if rc.dynauth else "",
    )
    return front
