"""RADIUS accounting (RFC 2866, Interim-Update RFC 2869) as sessions.

The engine (:class:`radius.RadiusServer`) answers every Accounting-Request that verifies and
hands an :class:`radius.AccountingRecord` up.  :class:`AccountingRecorder` turns those events
into calls on an :class:`AccountingSink`:

=====================  ===================================================================
Acct-Status-Type       sink call
=====================  ===================================================================
Start                  ``session_started``  (a repeated Start of an open session is ignored)
Interim-Update         ``session_updated``  (opens the session first if its Start was lost)
Stop                   ``session_stopped``  (opens it first if its Start was lost; a Stop
                       of a session already stopped is ignored)
Accounting-On / -Off   every open session of that NAS is stopped with Terminate-Cause
                       NAS-Reboot (RFC 2866 section 5.1: the NAS (re)started or is going
                       down, so none of its sessions lives on)
=====================  ===================================================================

A session is keyed by its NAS and Acct-Session-Id (RFC 2866 section 5.5: the id is unique
per NAS).  The NAS is named by NAS-Identifier, else NAS-IP-Address / NAS-IPv6-Address, else
the address the request came from.  Event times are the wall clock at arrival less
Acct-Delay-Time (RFC 2866 section 5.2); octet counts include the Gigawords attributes
(RFC 2869 section 5.1/5.2).

Sinks: :class:`MemoryAccountingSink` (kept in memory, for tests and the control socket) and
:class:`EvidenceAccountingSink`, which writes every session onto the evidence database
(:class:`gateway.db.SqlEvidenceSink`, table ``nea_accounting``: NAS, Acct-Session-Id,
octets, packets, duration, terminate cause) and, for sessions the gateway can tie to a
posture connection, the session's address (Framed-IP-Address, else Calling-Station-Id) and
its end.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from gateway.db.store import AccountingUpdate
from radius import (
    AccessAccepted,
    AccountingRecord,
    AcctStatusType,
    AddressAttribute,
    AttributeType,
    Code,
    Event,
    Ipv6AddressAttribute,
    Packet,
)

__all__ = [
    "AccountingRecorder",
    "AccountingSession",
    "AccountingSink",
    "EvidenceAccountingSink",
    "EvidenceWriter",
    "MemoryAccountingSink",
    "SessionKey",
    "TerminateCause",
    "nas_name",
]

log = logging.getLogger(__name__)

_T = AttributeType
_GIGAWORD = 1 << 32
_V = TypeVar("_V")


class TerminateCause(enum.IntEnum):
    """RFC 2866 section 5.10 Acct-Terminate-Cause (the values a NAS commonly sends)."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    LOST_SERVICE = 3
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_ERROR = 9
    NAS_REQUEST = 10
    NAS_REBOOT = 11
    PORT_UNNEEDED = 12
    PORT_PREEMPTED = 13
    PORT_SUSPENDED = 14
    SERVICE_UNAVAILABLE = 15
    CALLBACK = 16
    USER_ERROR = 17
    HOST_REQUEST = 18


@dataclass(frozen=True, slots=True)
class SessionKey:
    """A NAS (NAS-Identifier, else its IP address) and the Acct-Session-Id it gave."""

    nas: str
    session_id: str


@dataclass(frozen=True, slots=True)
class AccountingSession:
    """What accounting says about one session, as of its latest record."""

    key: SessionKey
    client: str
    """The RADIUS client entry (configuration name) the NAS matched."""
    nas_address: str
    """The address the Accounting-Request came from."""
    nas_identifier: str | None
    user_name: str | None
    calling_station_id: str | None
    framed_ip: str | None
    started_at: _dt.datetime
    updated_at: _dt.datetime
    stopped_at: _dt.datetime | None = None
    session_time: int | None = None
    """Acct-Session-Time, seconds (RFC 2866 section 5.7)."""
    input_octets: int | None = None
    output_octets: int | None = None
    input_packets: int | None = None
    output_packets: int | None = None
    terminate_cause: TerminateCause | int | None = None
    identity: str | None = None
    """The identity authenticated inside the tunnel method of the session's
    authentication, when the recorder saw its Access-Accept (``user_name`` is the outer
    User-Name the NAS reports, often ``anonymous@realm``)."""

    @property
    def report_name(self) -> str | None:
        """Who the session belongs to: the inner identity when known, else the User-Name."""
        return self.identity or self.user_name

    @property
    def open(self) -> bool:
        return self.stopped_at is None

    @property
    def duration(self) -> int | None:
        """Acct-Session-Time when the NAS sent it, else the span between the records."""
        if self.session_time is not None:
            return self.session_time
        end = self.stopped_at or self.updated_at
        return int((end - self.started_at).total_seconds())


class AccountingSink(Protocol):
    """Where accounting sessions go (the evidence database, memory, a log)."""

    def session_started(self, session: AccountingSession) -> None: ...

    def session_updated(self, session: AccountingSession) -> None: ...

    def session_stopped(self, session: AccountingSession) -> None: ...


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True, slots=True)
class _Usage:
    session_time: int | None
    input_octets: int | None
    output_octets: int | None
    input_packets: int | None
    output_packets: int | None
    framed_ip: str | None
    terminate_cause: TerminateCause | int | None


def _octets(low: int | None, gigawords: int | None) -> int | None:
    if low is None:
        return None
    return low + (gigawords or 0) * _GIGAWORD


def _address(packet: Packet, attribute_type: int) -> str | None:
    attribute = packet.get(attribute_type)
    if isinstance(attribute, AddressAttribute | Ipv6AddressAttribute):
        return str(attribute.value)
    return None


def nas_name(record: AccountingRecord) -> str:
    """NAS-Identifier, else NAS-IP-Address / NAS-IPv6-Address, else the source address."""
    packet = Packet(Code.ACCOUNTING_REQUEST, 0, attributes=record.attributes)
    return (
        packet.text(_T.NAS_IDENTIFIER)
        or _address(packet, _T.NAS_IP_ADDRESS)
        or _address(packet, _T.NAS_IPV6_ADDRESS)
        or record.source[0]
    )


class AccountingRecorder:
    """Feeds a sink from the engine's events; call :meth:`handle` with every event (it is the
    ``on_event`` hook of :func:`gateway.radius.listen` or one part of it)."""

    def __init__(
        self,
        sink: AccountingSink,
        *,
        clock: Callable[[], _dt.datetime] = _utc_now,
        max_open: int = 1_000_000,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.max_open = max_open
        self._open: dict[SessionKey, AccountingSession] = {}
        self._stopped: dict[SessionKey, _dt.datetime] = {}
        self._identities: dict[tuple[str, str], str] = {}
        """(NAS address, station) -> inner identity, from the Access-Accepts."""

    @property
    def sessions(self) -> dict[SessionKey, AccountingSession]:
        """Open sessions (a copy)."""
        return dict(self._open)

    def handle(self, event: Event) -> None:
        if isinstance(event, AccountingRecord):
            self.record(event)
        elif isinstance(event, AccessAccepted):
            self.access_accepted(event)

    def access_accepted(self, event: AccessAccepted) -> None:
        """Remember who an accepted endpoint is inside its tunnel: the NAS's accounting for
        it (same NAS address, same Calling-Station-Id, else User-Name) names that user."""
        station = event.calling_station_id or event.user_name
        if station is None:
            return
        key = (event.source[0], station)
        self._identities.pop(key, None)
        if event.inner_identity is not None:
            self._identities[key] = event.inner_identity
            while len(self._identities) > self.max_open:
                del self._identities[next(iter(self._identities))]

    def identity_for(
        self, nas_address: str, calling_station_id: str | None, user_name: str | None
    ) -> str | None:
        """The inner identity of the last Access-Accept for this NAS and station (the
        Calling-Station-Id; the User-Name only when there is none, as the accept was keyed)."""
        station = calling_station_id or user_name
        return self._identities.get((nas_address, station)) if station is not None else None

    def record(self, record: AccountingRecord) -> None:
        packet = Packet(Code.ACCOUNTING_REQUEST, 0, attributes=record.attributes)
        delay = packet.integer(_T.ACCT_DELAY_TIME) or 0
        at = self.clock() - _dt.timedelta(seconds=delay)
        status = record.status
        if status in (AcctStatusType.ACCOUNTING_ON, AcctStatusType.ACCOUNTING_OFF):
            self._nas_restarted(nas_name(record), at)
            return
        if status not in (
            AcctStatusType.START,
            AcctStatusType.STOP,
            AcctStatusType.INTERIM_UPDATE,
        ):
            log.info("accounting: Acct-Status-Type %r from %s not recorded", status, record.client)
            return
        if not record.session_id:
            log.warning(
                "accounting: %s from %s without Acct-Session-Id not recorded",
                AcctStatusType(status).name,
                record.client,
            )
            return
        key = SessionKey(nas_name(record), record.session_id)
        usage = _Usage(
            record.session_time,
            _octets(record.input_octets, packet.integer(_T.ACCT_INPUT_GIGAWORDS)),
            _octets(record.output_octets, packet.integer(_T.ACCT_OUTPUT_GIGAWORDS)),
            packet.integer(_T.ACCT_INPUT_PACKETS),
            packet.integer(_T.ACCT_OUTPUT_PACKETS),
            _address(packet, _T.FRAMED_IP_ADDRESS),
            _cause(record.terminate_cause),
        )
        if key in self._stopped and status != AcctStatusType.START:
            log.debug("accounting: %s for stopped session %s ignored", status, key)
            return
        session = self._open.get(key)
        if status == AcctStatusType.START:
            if session is not None:
                log.debug("accounting: repeated Start of %s ignored", key)
                return
            self._stopped.pop(key, None)  # the NAS reused an id: a new session
            self._start(record, key, at, usage, packet)
            return
        if session is None:
            # Start lost or sent before we ran: open the session from what this record says.
            started = at - _dt.timedelta(seconds=usage.session_time or 0)
            session = self._start(record, key, started, usage, packet)
        session = _merged(session, record, usage, at)
        if status == AcctStatusType.INTERIM_UPDATE:
            self._open[key] = session
            self._call(self.sink.session_updated, session)
        else:
            self._stop(replace(session, stopped_at=at))

    # -- internals ------------------------------------------------------------------------

    def _start(
        self,
        record: AccountingRecord,
        key: SessionKey,
        at: _dt.datetime,
        usage: _Usage,
        packet: Packet,
    ) -> AccountingSession:
        if len(self._open) >= self.max_open:
            oldest = min(self._open.values(), key=lambda s: s.updated_at)
            log.warning("accounting: %d open sessions, forgetting %s", len(self._open), oldest.key)
            del self._open[oldest.key]
        session = AccountingSession(
            key=key,
            client=record.client,
            nas_address=record.source[0],
            nas_identifier=packet.text(_T.NAS_IDENTIFIER),
            user_name=record.user_name,
            calling_station_id=record.calling_station_id,
            framed_ip=usage.framed_ip,
            started_at=at,
            updated_at=at,
            identity=self.identity_for(
                record.source[0], record.calling_station_id, record.user_name
            ),
        )
        self._open[key] = session
        self._call(self.sink.session_started, session)
        return session

    def _stop(self, session: AccountingSession) -> None:
        self._open.pop(session.key, None)
        assert session.stopped_at is not None
        self._stopped[session.key] = session.stopped_at
        if len(self._stopped) > self.max_open:
            # forget the oldest stop markers (insertion order)
            for old in list(self._stopped)[: len(self._stopped) - self.max_open]:
                del self._stopped[old]
        self._call(self.sink.session_stopped, session)

    def _nas_restarted(self, nas: str, at: _dt.datetime) -> None:
        ended = [s for s in self._open.values() if s.key.nas == nas]
        log.info("accounting: NAS %s restarted or going down, %d sessions ended", nas, len(ended))
        for session in ended:
            self._stop(
                replace(
                    session,
                    stopped_at=at,
                    updated_at=at,
                    terminate_cause=TerminateCause.NAS_REBOOT,
                )
            )

    def _call(
        self, method: Callable[[AccountingSession], None], session: AccountingSession
    ) -> None:
        try:
            method(session)
        except Exception:  # a broken sink must not stop the RADIUS service
            log.exception("accounting sink failed on %s", session.key)


def _cause(value: int | None) -> TerminateCause | int | None:
    if value is not None and value in TerminateCause._value2member_map_:
        return TerminateCause(value)
    return value


def _pick(new: _V | None, old: _V | None) -> _V | None:
    return new if new is not None else old


def _merged(
    session: AccountingSession, record: AccountingRecord, usage: _Usage, at: _dt.datetime
) -> AccountingSession:
    """Later records win field by field; absent attributes keep what earlier ones said."""

    return replace(
        session,
        updated_at=at,
        user_name=_pick(record.user_name, session.user_name),
        calling_station_id=_pick(record.calling_station_id, session.calling_station_id),
        framed_ip=_pick(usage.framed_ip, session.framed_ip),
        session_time=_pick(usage.session_time, session.session_time),
        input_octets=_pick(usage.input_octets, session.input_octets),
        output_octets=_pick(usage.output_octets, session.output_octets),
        input_packets=_pick(usage.input_packets, session.input_packets),
        output_packets=_pick(usage.output_packets, session.output_packets),
        terminate_cause=_pick(usage.terminate_cause, session.terminate_cause),
    )


class MemoryAccountingSink:
    """Keeps the latest state of every open session and of the ``keep_stopped`` most
    recently stopped ones; ``calls`` holds the last ``keep_calls`` sink calls in order."""

    def __init__(self, *, keep_stopped: int = 10_000, keep_calls: int = 1_000) -> None:
        self.keep_stopped = keep_stopped
        self.sessions: dict[SessionKey, AccountingSession] = {}
        self.calls: deque[tuple[str, AccountingSession]] = deque(maxlen=keep_calls)
        self._stopped: deque[SessionKey] = deque()

    def session_started(self, session: AccountingSession) -> None:
        self.sessions[session.key] = session
        self.calls.append(("started", session))

    def session_updated(self, session: AccountingSession) -> None:
        self.sessions[session.key] = session
        self.calls.append(("updated", session))

    def session_stopped(self, session: AccountingSession) -> None:
        self.sessions[session.key] = session
        self.calls.append(("stopped", session))
        self._stopped.append(session.key)
        while len(self._stopped) > self.keep_stopped:
            old = self._stopped.popleft()
            kept = self.sessions.get(old)
            if kept is not None and not kept.open:
                del self.sessions[old]

    def open_sessions(self) -> list[AccountingSession]:
        return [s for s in self.sessions.values() if s.open]


class EvidenceWriter(Protocol):
    """The part of :class:`gateway.db.SqlEvidenceSink` accounting writes through."""

    def accounting(self, acct: AccountingUpdate) -> None: ...

    def bind_address(self, connection_id: int, address: str) -> None: ...

    def session_ended(self, connection_id: int, at: _dt.datetime) -> None: ...


ConnectionLookup = Callable[[AccountingSession], int | None]
"""Maps an accounting session to the posture (PB-TNC) connection id of the evidence DB."""


class EvidenceAccountingSink:
    """Accounting onto the evidence database.

    Every session's latest state (NAS, Acct-Session-Id, user (the inner identity when known,
    else the User-Name), addresses, octets, packets,
    duration, terminate cause) goes to the accounting table with each Start, Interim-Update
    and Stop.  For a session that ``connection_for`` ties to a posture connection, the row
    names that connection's evidence session, the session's address (Framed-IP-Address,
    else Calling-Station-Id) is bound to the connection and a Stop ends it.  ``also`` (e.g.
    a :class:`MemoryAccountingSink`) gets every call too."""

    def __init__(
        self,
        evidence: EvidenceWriter,
        connection_for: ConnectionLookup,
        *,
        also: Iterable[AccountingSink] = (),
    ) -> None:
        self.evidence = evidence
        self.connection_for = connection_for
        self.also = tuple(also)
        self._bound: dict[SessionKey, str] = {}

    def session_started(self, session: AccountingSession) -> None:
        self._record(session, self._bind(session))
        for sink in self.also:
            sink.session_started(session)

    def session_updated(self, session: AccountingSession) -> None:
        self._record(session, self._bind(session))
        for sink in self.also:
            sink.session_updated(session)

    def session_stopped(self, session: AccountingSession) -> None:
        connection = self._bind(session)
        self._bound.pop(session.key, None)
        self._record(session, connection)  # before the end: the row names the live session
        if connection is not None and session.stopped_at is not None:
            self.evidence.session_ended(connection, session.stopped_at)
        for sink in self.also:
            sink.session_stopped(session)

    def _record(self, session: AccountingSession, connection: int | None) -> None:
        cause = session.terminate_cause
        self.evidence.accounting(
            AccountingUpdate(
                nas=session.key.nas,
                acct_session_id=session.key.session_id,
                started_at=session.started_at,
                updated_at=session.updated_at,
                stopped_at=session.stopped_at,
                connection_id=connection,
                nas_address=session.nas_address,
                # the report names the user: the inner identity when the Access-Accept
                # told us one (the outer User-Name is anonymous in PEAP/TTLS deployments)
                user_name=session.report_name,
                calling_station_id=session.calling_station_id,
                framed_ip=session.framed_ip,
                input_octets=session.input_octets,
                output_octets=session.output_octets,
                input_packets=session.input_packets,
                output_packets=session.output_packets,
                duration=session.duration,
                terminate_cause=None if cause is None else int(cause),
            )
        )

    def _bind(self, session: AccountingSession) -> int | None:
        connection = self.connection_for(session)
        if connection is None:
            log.debug("accounting: %s has no posture connection", session.key)
            return None
        address = _session_address(session)
        if address is not None and self._bound.get(session.key) != address:
            self._bound[session.key] = address
            self.evidence.bind_address(connection, address)
        return connection


def _session_address(session: AccountingSession) -> str | None:
    if session.framed_ip is not None:
        try:
            return str(ipaddress.ip_address(session.framed_ip))
        except ValueError:
            return None
    return session.calling_station_id
