"""Dynamic Authorization (RFC 5176): tell a NAS when a live endpoint's verdict changes.

:class:`DynamicAuthorizer` keeps the live 802.1X sessions the RADIUS front-end granted: it
learns them from the engine's :class:`radius.AccessAccepted` events (NAS address, User-Name,
Calling-Station-Id, verdict) and completes them from accounting (Acct-Session-Id,
NAS-Identifier, NAS-IP-Address; a Stop or Accounting-On/Off ends them).  Feed it every engine
event through :meth:`DynamicAuthorizer.handle`.

When posture changes for a live endpoint (a policy reload or a re-assessment),
:meth:`DynamicAuthorizer.verdict_changed` sends the NAS the request that enforces the new
verdict through :class:`gateway.radius.coa.DynamicAuthorizationProtocol` (retransmitted with
back-off by :class:`radius.DynamicAuthorizationClient`):

===============  ============================================================================
new verdict      request
===============  ============================================================================
ALLOW            CoA-Request with the allow VLAN / Filter-Id (RFC 3580 section 3.31)
ISOLATE          CoA-Request with the quarantine VLAN / Filter-Id; Disconnect-Request when no
                 quarantine is configured (fail closed, as the Access-Accept path does)
NO_ACCESS        Disconnect-Request
===============  ============================================================================

Every request identifies the session the RFC 5176 section 3 way: NAS-IP-Address or
NAS-Identifier as the NAS knows itself (when accounting told us), User-Name, Acct-Session-Id
and Calling-Station-Id, plus Event-Timestamp (section 3.4).  The outcome is logged and
returned: ACK updates (CoA) or forgets (Disconnect) the session; a NAK with Error-Cause
Session-Context-Not-Found (503) forgets it too (the NAS has no such session).  A CoA that
*restricts* access (to ISOLATE) but is NAKed or unanswered is followed by a Disconnect-Request
(``fallback_disconnect``): the endpoint must not keep more access than its verdict allows;
after the Disconnect it re-authenticates and gets the quarantine VLAN in its Access-Accept.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.defer import Deferred, succeed

from gateway.radius.adapter import Clock
from gateway.radius.coa import DynamicAuthorizationProtocol
from radius import (
    COA_PORT,
    AccessAccepted,
    AccountingRecord,
    AcctStatusType,
    AddressAttribute,
    Attribute,
    AttributeType,
    AuthorizationPolicy,
    Code,
    DynamicAuthorizationAcked,
    DynamicAuthorizationClient,
    DynamicAuthorizationNaked,
    ErrorCause,
    Event,
    IntegerAttribute,
    Ipv6AddressAttribute,
    Packet,
    TextAttribute,
    Verdict,
    VlanAssignment,
    vlan_attributes,
)

__all__ = [
    "Action",
    "DynamicAuthorizer",
    "EndpointKey",
    "LiveSession",
    "Outcome",
    "Result",
    "SecretLookup",
    "listen_dynauth",
]

log = logging.getLogger(__name__)

_T = AttributeType


@dataclass(frozen=True, slots=True)
class EndpointKey:
    """A live endpoint: the NAS address its RADIUS traffic comes from and its station
    (Calling-Station-Id, the supplicant's MAC on 802.1X; User-Name when the NAS sends none)."""

    nas: str
    station: str


@dataclass(frozen=True, slots=True)
class LiveSession:
    key: EndpointKey
    client: str
    nas_address: str
    user_name: str | None
    calling_station_id: str | None
    verdict: Verdict | None
    assignment: VlanAssignment
    acct_session_id: str | None = None
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    nas_ipv6_address: str | None = None
    identity: str | None = None
    """The identity authenticated inside the tunnel method (reports, re-assessment);
    ``user_name`` is the outer User-Name the NAS knows the session by (often
    ``anonymous@realm``) and is what the requests to the NAS carry."""

    @property
    def report_name(self) -> str | None:
        """Who the endpoint is: the inner identity when known, else the User-Name."""
        return self.identity or self.user_name


class Action(enum.Enum):
    COA = "CoA-Request"
    DISCONNECT = "Disconnect-Request"


class Outcome(enum.Enum):
    ACK = "ACK"
    NAK = "NAK"
    TIMEOUT = "timeout"
    UNCHANGED = "unchanged"
    """The session already has this verdict: nothing sent."""
    UNKNOWN_SESSION = "unknown session"
    """No live session has this key: nothing sent."""
    NO_SECRET = "no secret"  # noqa: S105 - an outcome name, not a secret
    """The NAS is not a configured RADIUS client any more: nothing sent."""


@dataclass(frozen=True, slots=True)
class Result:
    key: EndpointKey
    verdict: Verdict
    action: Action | None
    outcome: Outcome
    error_cause: int | None = None
    fallback: Result | None = None
    """The Disconnect-Request sent after a restricting CoA failed, if any."""


SecretLookup = Callable[[str], bytes | None]
"""NAS address -> the shared secret for Dynamic Authorization (None: not a known NAS)."""


def _address_text(packet: Packet, attribute_type: int) -> str | None:
    attribute = packet.get(attribute_type)
    if isinstance(attribute, AddressAttribute | Ipv6AddressAttribute):
        return str(attribute.value)
    return None


class DynamicAuthorizer:
    """Live sessions and the CoA / Disconnect requests that follow their verdict."""

    def __init__(
        self,
        protocol: DynamicAuthorizationProtocol,
        secret_for: SecretLookup,
        policy: AuthorizationPolicy,
        *,
        port: int = COA_PORT,
        fallback_disconnect: bool = True,
        event_timestamp: Callable[[], float] = time.time,
        max_sessions: int = 1_000_000,
    ) -> None:
        self.protocol = protocol
        self.secret_for = secret_for
        self.policy = policy
        self.port = port
        self.fallback_disconnect = fallback_disconnect
        self.event_timestamp = event_timestamp
        self.max_sessions = max_sessions
        self._sessions: dict[EndpointKey, LiveSession] = {}

    # -- learning sessions ----------------------------------------------------------------

    @property
    def sessions(self) -> dict[EndpointKey, LiveSession]:
        return dict(self._sessions)

    def handle(self, event: Event) -> None:
        """The ``on_event`` hook: Access-Accepts open sessions, accounting completes them."""
        if isinstance(event, AccessAccepted):
            self.access_accepted(event)
        elif isinstance(event, AccountingRecord):
            self.accounting(event)

    def access_accepted(self, event: AccessAccepted) -> EndpointKey | None:
        station = event.calling_station_id or event.user_name
        if station is None:
            log.info("dynauth: Access-Accept from %s names no station; not tracked", event.client)
            return None
        key = EndpointKey(event.source[0], station)
        previous = self._sessions.pop(key, None)
        if previous is None and len(self._sessions) >= self.max_sessions:
            oldest = next(iter(self._sessions))
            log.warning("dynauth: %d live sessions, forgetting %s", len(self._sessions), oldest)
            del self._sessions[oldest]
        self._sessions[key] = LiveSession(
            key=key,
            client=event.client,
            nas_address=event.source[0],
            user_name=event.user_name,
            calling_station_id=event.calling_station_id,
            verdict=event.verdict,
            assignment=VlanAssignment(event.vlan, event.filter_id),
            # a re-authentication keeps what accounting said about the session
            acct_session_id=previous.acct_session_id if previous else None,
            nas_identifier=previous.nas_identifier if previous else None,
            nas_ip_address=previous.nas_ip_address if previous else None,
            nas_ipv6_address=previous.nas_ipv6_address if previous else None,
            identity=event.inner_identity,
        )
        return key

    def accounting(self, record: AccountingRecord) -> None:
        packet = Packet(Code.ACCOUNTING_REQUEST, 0, attributes=record.attributes)
        nas = record.source[0]
        if record.status in (AcctStatusType.ACCOUNTING_ON, AcctStatusType.ACCOUNTING_OFF):
            gone = [k for k in self._sessions if k.nas == nas]
            for gone_key in gone:
                del self._sessions[gone_key]
            if gone:
                log.info("dynauth: NAS %s restarted, %d live sessions forgotten", nas, len(gone))
            return
        key = self._match(nas, record.calling_station_id, record.user_name)
        if key is None:
            return
        if record.status == AcctStatusType.STOP:
            del self._sessions[key]
            return
        session = self._sessions[key]
        self._sessions[key] = replace(
            session,
            acct_session_id=record.session_id or session.acct_session_id,
            nas_identifier=packet.text(_T.NAS_IDENTIFIER) or session.nas_identifier,
            nas_ip_address=_address_text(packet, _T.NAS_IP_ADDRESS) or session.nas_ip_address,
            nas_ipv6_address=(
                _address_text(packet, _T.NAS_IPV6_ADDRESS) or session.nas_ipv6_address
            ),
            user_name=session.user_name or record.user_name,
        )

    def find(
        self,
        *,
        user_name: str | None = None,
        calling_station_id: str | None = None,
        identity: str | None = None,
    ) -> list[EndpointKey]:
        """Live sessions of a user and/or station (what a re-assessment knows).
        ``user_name`` matches the outer User-Name; ``identity`` the user the session is
        reported as (:attr:`LiveSession.report_name`: the inner identity when known)."""
        return [
            key
            for key, s in self._sessions.items()
            if (user_name is None or s.user_name == user_name)
            and (calling_station_id is None or s.calling_station_id == calling_station_id)
            and (identity is None or s.report_name == identity)
        ]

    def _match(self, nas: str, station: str | None, user: str | None) -> EndpointKey | None:
        for candidate in (station, user):
            if candidate is not None:
                key = EndpointKey(nas, candidate)
                if key in self._sessions:
                    return key
        return None

    # -- acting on verdicts ---------------------------------------------------------------

    def verdict_changed(self, session_key: EndpointKey, new_verdict: Verdict) -> Deferred[Result]:
        """Send the request that enforces ``new_verdict``; the Deferred fires with the
        :class:`Result` (never errs: failures are outcomes, and logged)."""
        session = self._sessions.get(session_key)
        if session is None:
            log.warning(
                "dynauth: verdict %s for unknown session %s", new_verdict.value, session_key
            )
            return succeed(Result(session_key, new_verdict, None, Outcome.UNKNOWN_SESSION))
        target = self._assignment(new_verdict)
        current = session.verdict or Verdict.ALLOW
        if new_verdict == current and target == session.assignment:
            return succeed(Result(session_key, new_verdict, None, Outcome.UNCHANGED))
        if target is None:
            return self._send(session, new_verdict, Action.DISCONNECT, None)
        restricting = new_verdict == Verdict.ISOLATE and current == Verdict.ALLOW
        sent = self._send(session, new_verdict, Action.COA, target)
        if not (restricting and self.fallback_disconnect):
            return sent

        def fallback(result: Result) -> Deferred[Result] | Result:
            if result.outcome not in (Outcome.NAK, Outcome.TIMEOUT) or (
                result.error_cause == ErrorCause.SESSION_CONTEXT_NOT_FOUND
            ):
                return result
            log.warning(
                "dynauth: CoA to isolate %s failed (%s); sending Disconnect-Request",
                session_key,
                result.outcome.value,
            )
            still = self._sessions.get(session_key, session)
            second = self._send(still, new_verdict, Action.DISCONNECT, None)
            return second.addCallback(lambda d: replace(result, fallback=d))

        return sent.addCallback(fallback)

    def _assignment(self, verdict: Verdict) -> VlanAssignment | None:
        """The VLAN / Filter-Id for ``verdict``; None means the NAS must drop the session."""
        if verdict == Verdict.ALLOW:
            return self.policy.allow
        if verdict == Verdict.ISOLATE:
            return self.policy.isolate
        return None

    def request_attributes(
        self, session: LiveSession, action: Action, assignment: VlanAssignment | None
    ) -> list[Attribute]:
        """RFC 5176 section 3: NAS identification, session identification, then changes."""
        out: list[Attribute] = []
        if session.nas_ip_address is not None:
            out.append(
                AddressAttribute(_T.NAS_IP_ADDRESS, ipaddress.IPv4Address(session.nas_ip_address))
            )
        if session.nas_ipv6_address is not None:
            out.append(
                Ipv6AddressAttribute(
                    _T.NAS_IPV6_ADDRESS, ipaddress.IPv6Address(session.nas_ipv6_address)
                )
            )
        if session.nas_identifier is not None:
            out.append(TextAttribute(_T.NAS_IDENTIFIER, session.nas_identifier))
        if session.user_name is not None:
            out.append(TextAttribute(_T.USER_NAME, session.user_name))
        if session.acct_session_id is not None:
            out.append(TextAttribute(_T.ACCT_SESSION_ID, session.acct_session_id))
        if session.calling_station_id is not None:
            out.append(TextAttribute(_T.CALLING_STATION_ID, session.calling_station_id))
        if action is Action.COA and assignment is not None:
            out.extend(vlan_attributes(assignment))
        out.append(IntegerAttribute(_T.EVENT_TIMESTAMP, int(self.event_timestamp())))
        return out

    def _send(
        self,
        session: LiveSession,
        verdict: Verdict,
        action: Action,
        assignment: VlanAssignment | None,
    ) -> Deferred[Result]:
        key = session.key
        secret = self.secret_for(session.nas_address)
        if secret is None:
            log.error(
                "dynauth: no shared secret for NAS %s; %s for %s not sent",
                session.nas_address,
                action.value,
                key,
            )
            return succeed(Result(key, verdict, action, Outcome.NO_SECRET))
        code = Code.COA_REQUEST if action is Action.COA else Code.DISCONNECT_REQUEST
        log.info(
            "dynauth: %s to %s for %s (user %r, verdict %s -> %s, VLAN %s)",
            action.value,
            session.nas_address,
            key.station,
            session.report_name,
            session.verdict.value if session.verdict else "none",
            verdict.value,
            assignment.vlan if assignment else "-",
        )
        sent = self.protocol.send(
            code,
            self.request_attributes(session, action, assignment),
            (session.nas_address, self.port),
            secret,
        )

        def answered(event: Event) -> Result:
            if isinstance(event, DynamicAuthorizationAcked):
                log.info(
                    "dynauth: %s ACKed by %s for %s", action.value, session.nas_address, key.station
                )
                if action is Action.DISCONNECT:
                    self._sessions.pop(key, None)
                elif key in self._sessions:
                    self._sessions[key] = replace(
                        self._sessions[key],
                        verdict=verdict,
                        assignment=assignment or VlanAssignment(),
                    )
                return Result(key, verdict, action, Outcome.ACK)
            if isinstance(event, DynamicAuthorizationNaked):
                cause = event.error_cause
                log.warning(
                    "dynauth: %s NAKed by %s for %s (Error-Cause %s)",
                    action.value,
                    session.nas_address,
                    key.station,
                    _cause_name(cause),
                )
                if cause == ErrorCause.SESSION_CONTEXT_NOT_FOUND:
                    self._sessions.pop(key, None)
                return Result(key, verdict, action, Outcome.NAK, cause)
            log.warning(
                "dynauth: %s to %s for %s: no answer",
                action.value,
                session.nas_address,
                key.station,
            )
            return Result(key, verdict, action, Outcome.TIMEOUT)

        def failed(failure: Any) -> Result:
            log.error("dynauth: %s for %s failed: %s", action.value, key, failure.getErrorMessage())
            return Result(key, verdict, action, Outcome.TIMEOUT)

        return sent.addCallbacks(answered, failed)


def _cause_name(cause: int | None) -> str:
    if cause is None:
        return "none"
    if cause in ErrorCause._value2member_map_:
        return f"{cause} {ErrorCause(cause).name}"
    return str(cause)


def listen_dynauth(
    reactor: Any,
    secret_for: SecretLookup,
    policy: AuthorizationPolicy,
    *,
    interface: str = "0.0.0.0",  # noqa: S104 - any local address may reach a NAS
    port: int = COA_PORT,
    initial_timeout: float = 2.0,
    max_transmissions: int = 3,
    fallback_disconnect: bool = True,
    clock: Clock | None = None,
) -> tuple[DynamicAuthorizer, Any]:
    """A :class:`DynamicAuthorizer` on its own UDP socket (an ephemeral source port);
    returns it and the listening port."""
    protocol = DynamicAuthorizationProtocol(
        clock or reactor,
        DynamicAuthorizationClient(
            initial_timeout=initial_timeout, max_transmissions=max_transmissions
        ),
    )
    udp = reactor.listenUDP(0, protocol, interface=interface)
    authorizer = DynamicAuthorizer(
        protocol, secret_for, policy, port=port, fallback_disconnect=fallback_disconnect
    )
    return authorizer, udp
