"""Sans-I/O PT-TLS sessions (RFC 6876): :class:`PtTlsServer` (NEA Server) and
:class:`PtTlsClient` (NEA Client).

The TLS layer belongs to the adapter (``gateway.pt_tls``): it hands decrypted bytes to
``receive_data()``, writes ``data_to_send()`` into TLS, reads ``next_event()`` and closes the
connection once :attr:`closed` is true (after writing what is left).  The server learns of a
client certificate through ``tls_peer_identity`` (the adapter creates it after the handshake).

Phases (RFC 6876 3.3): version negotiation (the client's Version Request, the server's
Version Response), client authentication (SASL Mechanisms, Mechanism Selection, Authentication
Data, Result; an *empty* SASL Mechanisms message ends it, as strongSwan does, also when no
SASL was needed), then data transport (PB-TNC Batch messages between the TNCC and TNCS the
caller handed in).  The session ends when the PB-TNC exchange ends (a CLOSE batch either
way), on a fatal PT-TLS error (sent or received), or when authentication fails.

Errors: a header that breaks the framing, a malformed value, a message in the wrong phase
(Invalid Message), no common version, no usable SASL mechanism: PT-TLS Error, then close.  A
type we do not implement (vendor-specific, Experimental, unassigned): "Type Not Supported",
the message is ignored and the session goes on.

Each side's transitions live in one table keyed by ``(state, message class)``; a pair that is
not there is an Invalid Message.

Use ``PbTncConfig(full_duplex=True)`` for the engines: PT-TLS is full duplex, so a retry
(:meth:`PtTlsServer.request_retry`, SRETRY) goes out at once, which strongSwan cannot do.
"""

from __future__ import annotations

import collections
import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentDecided,
    AssessmentResult,
    PbReasonString,
    PbTncState,
    ResultReceived,
    Tncc,
    Tncs,
)
from nea.pb_tnc import Event as PbTncEvent
from nea.pt_tls.errors import (
    InvalidMessage,
    InvalidParameter,
    PtTlsError,
    PtTlsErrorCode,
    PtTlsUsageError,
    SaslMechanismError,
    TypeNotSupported,
    VersionNotSupported,
)
from nea.pt_tls.messages import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    ERROR_COPY_LIMIT,
    HEADER_SIZE,
    PT_TLS_VERSION,
    Frame,
    FrameParser,
    Message,
    PbTncBatchMessage,
    PtTlsErrorMessage,
    PtTlsExperimental,
    SaslAuthenticationData,
    SaslMechanisms,
    SaslMechanismSelection,
    SaslResult,
    SaslResultCode,
    UnknownMessage,
    VersionRequest,
    VersionResponse,
    decode_value,
    encode_message,
)
from nea.pt_tls.sasl import SaslClientMechanism, SaslOutcome, SaslServerMechanism, SaslStep

__all__ = [
    "AuthenticationComplete",
    "AuthenticationFailed",
    "ClientAuth",
    "ClientAuthenticated",
    "ErrorReceived",
    "ErrorSent",
    "Event",
    "PbTncEventOccurred",
    "PtTlsClient",
    "PtTlsClientConfig",
    "PtTlsServer",
    "PtTlsServerConfig",
    "SaslAttemptFailed",
    "SessionClosed",
    "SessionState",
    "VersionNegotiated",
]

log = logging.getLogger("nea.pt_tls")


class ClientAuth(enum.Enum):
    """How the server authenticates the client (strongSwan's pt-tls auth modes)."""

    NONE = "none"
    TLS = "tls"
    """A TLS client certificate is required; no SASL."""
    SASL = "sasl"
    """SASL whatever the TLS layer did."""
    TLS_OR_SASL = "tls-or-sasl"
    """SASL unless the client authenticated with a certificate."""
    TLS_AND_SASL = "tls-and-sasl"


class SessionState(enum.Enum):
    INIT = "init"
    AWAIT_VERSION = "await-version"
    AWAIT_MECHANISMS = "await-mechanisms"
    """Client: waiting for a SASL Mechanisms message (empty: authentication is over)."""
    AWAIT_SELECTION = "await-selection"
    """Server: mechanisms offered, waiting for the client's choice."""
    SASL = "sasl"
    """A SASL exchange runs (Authentication Data / Result)."""
    DATA = "data"
    """Data transport: PB-TNC batches."""
    CLOSED = "closed"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class VersionNegotiated:
    version: int


@dataclass(frozen=True, slots=True)
class ClientAuthenticated:
    """Server: authentication is over; ``method`` is "none", "tls" or "sasl:<MECH>"."""

    identity: str | None
    method: str


@dataclass(frozen=True, slots=True)
class AuthenticationComplete:
    """Client: the server's empty SASL Mechanisms message; data transport begins."""


@dataclass(frozen=True, slots=True)
class SaslAttemptFailed:
    mechanism: str
    reason: str
    retry: bool
    """Whether the server offers the mechanisms again."""


@dataclass(frozen=True, slots=True)
class AuthenticationFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class ErrorSent:
    error: PtTlsError


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    message: PtTlsErrorMessage

    @property
    def code(self) -> PtTlsErrorCode | None:
        try:
            return PtTlsErrorCode(self.message.error_code) if self.message.vendor_id == 0 else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class PbTncEventOccurred:
    """An event of the PB-TNC engine the session runs (the session drains that engine)."""

    event: PbTncEvent


@dataclass(frozen=True, slots=True)
class SessionClosed:
    reason: str
    clean: bool
    """True when the PB-TNC exchange ended normally."""


Event = (
    VersionNegotiated
    | ClientAuthenticated
    | AuthenticationComplete
    | SaslAttemptFailed
    | AuthenticationFailed
    | ErrorSent
    | ErrorReceived
    | PbTncEventOccurred
    | SessionClosed
)


# --------------------------------------------------------------------------- configs


def _check_versions(versions: Sequence[int]) -> None:
    if not versions or any(not 1 <= v <= 0xFF for v in versions):
        raise PtTlsUsageError("versions must be a non-empty set of 1..255")


@dataclass(frozen=True)
class PtTlsServerConfig:
    """Server knobs.

    ``sasl``: mechanism name -> factory of a fresh :class:`SaslServerMechanism`, offered in
    this order (e.g. ``{"PLAIN": lambda: PlainServer(verifier)}``).  ``max_sasl_attempts``:
    after that many failures the server sends SASL Result "abort" and closes (strongSwan
    aborts after the first).  ``short_sasl_result``: send the one-octet SASL Result strongSwan
    sends (its client reads one octet; the RFC's two-octet form works with it as well).
    """

    client_auth: ClientAuth = ClientAuth.TLS_OR_SASL
    sasl: Mapping[str, Callable[[], SaslServerMechanism]] = field(default_factory=dict)
    max_sasl_attempts: int = 1
    versions: tuple[int, ...] = (PT_TLS_VERSION,)
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    short_sasl_result: bool = False
    initial_identifier: int = 0

    def __post_init__(self) -> None:
        _check_versions(self.versions)
        needs_sasl = self.client_auth in (
            ClientAuth.SASL,
            ClientAuth.TLS_OR_SASL,
            ClientAuth.TLS_AND_SASL,
        )
        if needs_sasl and not self.sasl:
            raise PtTlsUsageError(f"client_auth {self.client_auth.value} needs SASL mechanisms")
        if self.max_sasl_attempts < 1:
            raise PtTlsUsageError("max_sasl_attempts must be at least 1")


@dataclass(frozen=True)
class PtTlsClientConfig:
    """Client knobs: ``mechanisms`` in order of preference (a fresh one per attempt)."""

    mechanisms: tuple[Callable[[], SaslClientMechanism], ...] = ()
    versions: tuple[int, ...] = (PT_TLS_VERSION,)
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    initial_identifier: int = 0

    def __post_init__(self) -> None:
        _check_versions(self.versions)


# --------------------------------------------------------------------------- common part

_Handler = Callable[[Any, Any, Frame], None]
"""A transition: (session, typed message, frame)."""


class _Session:
    _TRANSITIONS: dict[tuple[SessionState, type], _Handler]
    _engine: Tncs | Tncc

    def __init__(self, max_message_length: int, initial_identifier: int) -> None:
        self._parser = FrameParser(max_message_length)
        self._out = bytearray()
        self._events: collections.deque[Event] = collections.deque()
        self._identifier = initial_identifier & 0xFFFFFFFF
        self._state = SessionState.INIT
        self.version: int | None = None
        self.close_reason: str | None = None

    # ---- public driving

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def closed(self) -> bool:
        """The adapter should write :meth:`data_to_send` and then close the connection."""
        return self._state is SessionState.CLOSED

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            return
        for frame in self._parser.feed(data):
            if self.closed:
                return
            self._handle_frame(frame)
        if self._parser.error is not None and not self.closed:
            self._error(self._parser.error, self._parser.buffered[:HEADER_SIZE])

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        out = list(self._events)
        self._events.clear()
        return out

    def connection_lost(self, reason: str = "connection lost") -> None:
        """The transport went away; nothing more can be sent."""
        if not self.closed:
            self._close(reason, clean=False)

    def close(self) -> None:
        """End the session: an empty PB-TNC CLOSE batch when in data transport."""
        if self.closed:
            return
        if self._state is SessionState.DATA:
            self._send_batches(self._engine.close())
        if not self.closed:
            self._close("closed locally", clean=self._state is SessionState.DATA)

    def request_retry(self) -> None:
        """Ask for a new assessment of this connection (SRETRY / CRETRY)."""
        if self._state is not SessionState.DATA:
            raise PtTlsUsageError(f"no PB-TNC exchange to retry in state {self._state.value}")
        self._send_batches(self._engine.request_retry())

    # ---- sending

    def _send(self, message: Message) -> None:
        self._out += encode_message(message, self._identifier)
        self._identifier = (self._identifier + 1) & 0xFFFFFFFF

    def _error(self, error: PtTlsError, original: bytes) -> None:
        log.info("PT-TLS error %s: %s", error.code.name, error.reason)
        self._send(PtTlsErrorMessage(int(error.code), original[:ERROR_COPY_LIMIT]))
        self._events.append(ErrorSent(error))
        if error.fatal:
            self._close(f"sent PT-TLS error {error.code.name}: {error.reason}", clean=False)

    def _set_state(self, new: SessionState) -> None:
        if new is not self._state:
            log.debug("%s %s -> %s", type(self).__name__, self._state.value, new.value)
            self._state = new

    def _close(self, reason: str, *, clean: bool) -> None:
        self.close_reason = reason
        self._set_state(SessionState.CLOSED)
        self._events.append(SessionClosed(reason, clean))

    # ---- receiving

    def _handle_frame(self, frame: Frame) -> None:
        raw = frame.encode()
        try:
            message = decode_value(frame)
        except PtTlsError as exc:
            self._error(exc, raw)
            return
        if isinstance(message, PtTlsErrorMessage):
            self._on_error_message(message)
            return
        if isinstance(message, UnknownMessage | PtTlsExperimental):
            self._error(TypeNotSupported(f"message type {frame.type_name()} not supported"), raw)
            return
        handler = self._TRANSITIONS.get((self._state, type(message)))
        if handler is None:
            self._error(
                InvalidMessage(
                    f"{frame.type_name()} not allowed in state {self._state.value}", offset=4
                ),
                raw,
            )
            return
        try:
            handler(self, message, frame)
        except PtTlsError as exc:
            self._error(exc, raw)

    def _on_error_message(self, message: PtTlsErrorMessage) -> None:
        event = ErrorReceived(message)
        self._events.append(event)
        name = event.code.name if event.code is not None else str(message.error_code)
        if event.code is PtTlsErrorCode.TYPE_NOT_SUPPORTED:
            log.info("peer does not support a message type we sent")
            return
        self._close(f"peer sent PT-TLS error {name}", clean=False)

    # ---- data transport (both sides)

    def _on_batch(self, message: PbTncBatchMessage, frame: Frame) -> None:
        self._send_batches(self._engine.receive_batch(message.batch))

    def _send_batches(self, batches: Sequence[bytes]) -> None:
        for batch in batches:
            self._send(PbTncBatchMessage(batch))
        self._drain()
        if self._engine.state is PbTncState.END and not self.closed:
            self._close("PB-TNC exchange ended", clean=True)

    def _drain(self) -> None:
        for event in self._engine.events():
            self._observe(event)
            self._events.append(PbTncEventOccurred(event))

    def _observe(self, event: PbTncEvent) -> None:
        """Hook for the verdict."""


# --------------------------------------------------------------------------- server


class PtTlsServer(_Session):
    """The NEA Server side of one PT-TLS connection, running ``tncs``."""

    def __init__(
        self,
        tncs: Tncs,
        config: PtTlsServerConfig | None = None,
        *,
        tls_peer_identity: str | None = None,
    ) -> None:
        self.config = config if config is not None else PtTlsServerConfig(ClientAuth.NONE)
        super().__init__(self.config.max_message_length, self.config.initial_identifier)
        self._engine = tncs
        self.tncs = tncs
        self.tls_peer_identity = tls_peer_identity
        self.client_identity: str | None = None
        self.auth_method: str | None = None
        self._mechanism: SaslServerMechanism | None = None
        self._attempts = 0
        self.decided: AssessmentDecided | None = None
        self._set_state(SessionState.AWAIT_VERSION)

    # ---- verdict

    @property
    def recommendation(self) -> AccessRecommendation | None:
        return self.decided.recommendation if self.decided else None

    @property
    def evaluation(self) -> AssessmentResult | None:
        return self.decided.evaluation if self.decided else None

    @property
    def reasons(self) -> tuple[PbReasonString, ...]:
        return self.decided.reasons if self.decided else ()

    def _observe(self, event: PbTncEvent) -> None:
        if isinstance(event, AssessmentDecided):
            self.decided = event

    # ---- transitions

    def _on_version_request(self, message: VersionRequest, frame: Frame) -> None:
        common = [
            v for v in self.config.versions if message.min_version <= v <= message.max_version
        ]
        if not common:
            raise VersionNotSupported(
                f"client offers versions {message.min_version}-{message.max_version}, "
                f"we support {list(self.config.versions)}",
                offset=17,
            )
        version = message.preferred_version if message.preferred_version in common else max(common)
        self.version = version
        self._send(VersionResponse(version))
        self._events.append(VersionNegotiated(version))
        self._begin_authentication()

    def _begin_authentication(self) -> None:
        mode = self.config.client_auth
        tls_id = self.tls_peer_identity
        if mode is ClientAuth.NONE:
            self._authenticated(None, "none")
        elif mode is ClientAuth.TLS or (mode is ClientAuth.TLS_OR_SASL and tls_id):
            if not tls_id:
                self._auth_failed("a TLS client certificate is required")
            else:
                self._authenticated(tls_id, "tls")
        elif mode is ClientAuth.TLS_AND_SASL and not tls_id:
            self._auth_failed("a TLS client certificate is required before SASL")
        else:
            self._offer()

    def _offer(self) -> None:
        self._send(SaslMechanisms(tuple(self.config.sasl)))
        self._set_state(SessionState.AWAIT_SELECTION)

    def _authenticated(self, identity: str | None, method: str) -> None:
        self.client_identity = identity
        self.auth_method = method
        self._send(SaslMechanisms(()))  # empty: client authentication is over
        self._set_state(SessionState.DATA)
        self._events.append(ClientAuthenticated(identity, method))
        log.info("PT-TLS client authenticated (%s): %r", method, identity)

    def _auth_failed(self, reason: str) -> None:
        self._events.append(AuthenticationFailed(reason))
        self._close(f"client authentication failed: {reason}", clean=False)

    def _on_selection(self, message: SaslMechanismSelection, frame: Frame) -> None:
        factory = self.config.sasl.get(message.mechanism)
        if factory is None:
            raise SaslMechanismError(
                f"client selected {message.mechanism}, which we did not offer", offset=17
            )
        self._mechanism = factory()
        self._sasl_step(self._mechanism.step(message.initial or None))

    def _on_auth_data(self, message: SaslAuthenticationData, frame: Frame) -> None:
        assert self._mechanism is not None
        self._sasl_step(self._mechanism.step(message.data))

    def _sasl_step(self, step: SaslStep) -> None:
        mech = self._mechanism
        assert mech is not None
        if step.outcome is SaslOutcome.CONTINUE:
            self._send(SaslAuthenticationData(step.challenge))
            self._set_state(SessionState.SASL)
            return
        short = self.config.short_sasl_result
        if step.outcome is SaslOutcome.SUCCESS:
            self._send(SaslResult(SaslResultCode.SUCCESS, short=short))
            identity = step.identity
            self._mechanism = None
            self._authenticated(identity, f"sasl:{mech.name}")
            return
        self._attempts += 1
        retry = self._attempts < self.config.max_sasl_attempts
        reason = step.reason or f"SASL {mech.name} failed"
        self._events.append(SaslAttemptFailed(mech.name, reason, retry))
        self._mechanism = None
        if retry:
            self._send(SaslResult(SaslResultCode.FAILURE, short=short))
            self._offer()
        else:
            self._send(SaslResult(SaslResultCode.ABORT, short=short))
            self._auth_failed(reason)

    _TRANSITIONS: dict[tuple[SessionState, type], _Handler] = {
        (SessionState.AWAIT_VERSION, VersionRequest): _on_version_request,
        (SessionState.AWAIT_SELECTION, SaslMechanismSelection): _on_selection,
        (SessionState.SASL, SaslAuthenticationData): _on_auth_data,
        (SessionState.DATA, PbTncBatchMessage): _Session._on_batch,
    }


# --------------------------------------------------------------------------- client


class PtTlsClient(_Session):
    """The NEA Client side of one PT-TLS connection, running ``tncc``."""

    def __init__(self, tncc: Tncc, config: PtTlsClientConfig | None = None) -> None:
        self.config = config if config is not None else PtTlsClientConfig()
        super().__init__(self.config.max_message_length, self.config.initial_identifier)
        self._engine = tncc
        self.tncc = tncc
        self._mechanism: SaslClientMechanism | None = None
        self.result: ResultReceived | None = None
        self.authenticated = False

    @property
    def recommendation(self) -> AccessRecommendation | None:
        return self.result.recommendation if self.result else None

    @property
    def evaluation(self) -> AssessmentResult | None:
        return self.result.evaluation if self.result else None

    def _observe(self, event: PbTncEvent) -> None:
        if isinstance(event, ResultReceived):
            self.result = event

    def start(self) -> None:
        """Send the Version Request (call once the TLS handshake is done)."""
        if self._state is not SessionState.INIT:
            raise PtTlsUsageError(f"start() in state {self._state.value}")
        versions = self.config.versions
        self._send(VersionRequest(min(versions), max(versions), max(versions)))
        self._set_state(SessionState.AWAIT_VERSION)

    def _on_version(self, message: VersionResponse, frame: Frame) -> None:
        versions = self.config.versions
        if message.version not in versions:
            raise VersionNotSupported(
                f"server selected version {message.version}, we offered {list(versions)}",
                offset=19,
            )
        self.version = message.version
        self._events.append(VersionNegotiated(message.version))
        self._set_state(SessionState.AWAIT_MECHANISMS)

    def _on_mechanisms(self, message: SaslMechanisms, frame: Frame) -> None:
        if not message.mechanisms:
            self.authenticated = True
            self._set_state(SessionState.DATA)
            self._events.append(AuthenticationComplete())
            self._send_batches(self.tncc.start())
            return
        for factory in self.config.mechanisms:
            mech = factory()
            if mech.name in message.mechanisms:
                self._mechanism = mech
                self._send(SaslMechanismSelection(mech.name, mech.initial()))
                self._set_state(SessionState.SASL)
                return
        self._events.append(AuthenticationFailed("no SASL mechanism in common"))
        raise SaslMechanismError(
            f"server offers {list(message.mechanisms)}, we support none of them", offset=16
        )

    def _on_challenge(self, message: SaslAuthenticationData, frame: Frame) -> None:
        assert self._mechanism is not None
        self._send(SaslAuthenticationData(self._mechanism.challenge(message.data)))

    def _on_result(self, message: SaslResult, frame: Frame) -> None:
        mech = self._mechanism
        assert mech is not None
        self._mechanism = None
        code = message.code
        if code is SaslResultCode.SUCCESS:
            self._set_state(SessionState.AWAIT_MECHANISMS)
        elif code is SaslResultCode.ABORT:
            self._events.append(AuthenticationFailed(f"server aborted SASL {mech.name}"))
            self._close(f"server aborted SASL {mech.name}", clean=False)
        elif code in (SaslResultCode.FAILURE, SaslResultCode.MECHANISM_FAILURE):
            assert code is not None
            self._events.append(
                SaslAttemptFailed(mech.name, f"server answered {code.name}", retry=True)
            )
            self._set_state(SessionState.AWAIT_MECHANISMS)
        else:  # pragma: no cover - decode_value refuses unknown codes
            raise InvalidParameter(f"SASL result {message.result}", offset=16)

    _TRANSITIONS: dict[tuple[SessionState, type], _Handler] = {
        (SessionState.AWAIT_VERSION, VersionResponse): _on_version,
        (SessionState.AWAIT_MECHANISMS, SaslMechanisms): _on_mechanisms,
        (SessionState.SASL, SaslAuthenticationData): _on_challenge,
        (SessionState.SASL, SaslResult): _on_result,
        (SessionState.DATA, PbTncBatchMessage): _Session._on_batch,
    }
