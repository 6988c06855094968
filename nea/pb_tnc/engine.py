"""Sans-I/O PB-TNC engines: :class:`Tncs` (Posture Broker Server) and :class:`Tncc` (Client).

A transport (PT-EAP, PT-TLS) feeds every received batch to ``receive_batch(data)``, which
returns the batches to send now (zero or one in half duplex; a fatal error gives a CLOSE
batch holding the PB-Error).  Things worth knowing upward (state changes, the verdict, PB-Error
messages from the peer) come out of ``next_event()``.  Nothing here does I/O or keeps time.

Rules implemented (RFC 5793):

* the state table of :mod:`nea.pb_tnc.state`; a batch type it does not allow gets PB-Error
  "Unexpected Batch Type" and CLOSE; a batch whose D bit names the wrong side gets "Invalid
  Parameter" at offset 1; a version other than 2 gets "Version Not Supported" with our range;
* an unknown message (or one we decode but do not implement, ITA Noskip-Test) with NOSKIP set
  gets "Unsupported Mandatory Message" at the message's offset; without NOSKIP it is skipped;
* every error we detect is fatal: PB-Error in a CLOSE batch, then End;
* batch size limits: outgoing messages are queued and sent in as many batches as the limit
  needs; the peer's (possibly empty) CDATA/SDATA batches let the sender continue (half duplex);
* the server answers with an empty SDATA while validators are still working, and with RESULT
  once every validator has decided, or when the client's CDATA was empty (then it solicits
  the undecided validators), as strongSwan's tnccs-20 does.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

from nea.pb_tnc.batch import (
    BATCH_HEADER_SIZE,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    PT_EAP_MAX_BATCH_SIZE,
    PT_EAP_MAX_MESSAGE_SIZE,
    Batch,
    BatchType,
    decode_batch,
    message_offsets,
)
from nea.pb_tnc.errors import (
    InvalidParameter,
    PbTncError,
    PbTncUsageError,
    UnexpectedBatchType,
    UnsupportedMandatoryMessage,
)
from nea.pb_tnc.imv import (
    ActionRecommendation,
    ConnectionState,
    OutboundPa,
    PostureCollector,
    PostureValidator,
    RecommendationPolicy,
    ValidatorRecommendation,
    combine_recommendations,
    subscribed,
    to_access_recommendation,
)
from nea.pb_tnc.messages import (
    KNOWN_MESSAGE_TYPES,
    MESSAGE_HEADER_SIZE,
    PA_FLAG_EXCL,
    AccessRecommendation,
    AssessmentResult,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbError,
    PbLanguagePreference,
    PbMessage,
    PbNoskipTest,
    PbPa,
    PbPdpReferral,
    PbReasonString,
    PbRemediationParameters,
    encode_message,
    message_key,
)
from nea.pb_tnc.state import PbTncState, Role, next_state

__all__ = [
    "AssessmentDecided",
    "ConnectionClosed",
    "Event",
    "FatalErrorSent",
    "HandshakeStarted",
    "MessageDropped",
    "PbErrorReceived",
    "PbTncConfig",
    "PdpReferralReceived",
    "ResultReceived",
    "StateChanged",
    "Tncc",
    "Tncs",
]

_PA_OVERHEAD = BATCH_HEADER_SIZE + MESSAGE_HEADER_SIZE + PbPa.HEADER_SIZE


@dataclass(frozen=True, slots=True)
class PbTncConfig:
    """Knobs of both engines.

    ``max_batch_size``/``max_message_size``: strongSwan's ``max_batch_size`` /
    ``max_message_size`` (defaults 65522 / 65490; :meth:`for_pt_eap` gives 32754 / 32722).
    ``max_message_size`` bounds a PA message body.  ``full_duplex`` lets CRETRY/SRETRY go out
    at once even when it is not our turn (PT-TLS); in half duplex (PT-EAP) a retry asked for
    mid-handshake waits for our next turn.
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    full_duplex: bool = False
    recommendation_policy: RecommendationPolicy = RecommendationPolicy.DEFAULT
    """Server: how validator recommendations combine."""
    accept_language: str = "en"
    """Client: the PB-Language-Preference it sends (``Accept-Language: en``)."""
    default_language: str = "en"
    """Server: reason-string language used when none of the client's preferences is offered."""
    close_after_result: bool = True
    """Client: answer RESULT with CLOSE (strongSwan); False keeps the connection in Decided."""
    pdp_referral: PbPdpReferral | None = None
    """Server: a PB-PDP-Referral to put in the first SDATA of each handshake."""

    def __post_init__(self) -> None:
        if not _PA_OVERHEAD + 1 <= self.max_batch_size <= 0xFFFFFFFF:
            raise PbTncUsageError(f"max_batch_size {self.max_batch_size} out of range")
        if not 1 <= self.max_message_size <= self.max_batch_size - _PA_OVERHEAD:
            raise PbTncUsageError(
                f"max_message_size {self.max_message_size} does not fit max_batch_size "
                f"{self.max_batch_size} (at most {self.max_batch_size - _PA_OVERHEAD})"
            )

    @classmethod
    def for_pt_eap(cls, **kwargs: object) -> PbTncConfig:
        """The limits strongSwan recommends inside EAP."""
        return cls(
            max_batch_size=PT_EAP_MAX_BATCH_SIZE,
            max_message_size=PT_EAP_MAX_MESSAGE_SIZE,
            **kwargs,  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: PbTncState
    new: PbTncState
    batch_type: BatchType
    sent: bool
    """True when our own batch caused the transition, False for a received one."""


@dataclass(frozen=True, slots=True)
class HandshakeStarted:
    retry: bool
    """False for the first handshake, True for one started by CRETRY/SRETRY."""


@dataclass(frozen=True, slots=True)
class PbErrorReceived:
    error: PbError


@dataclass(frozen=True, slots=True)
class FatalErrorSent:
    """We detected ``error`` in the peer's batch and sent its PB-Error in a CLOSE batch."""

    error: PbTncError


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A message of ours was not sent (``reason`` says why, e.g. larger than the limit)."""

    message: PbMessage
    reason: str


@dataclass(frozen=True, slots=True)
class AssessmentDecided:
    """Server: the RESULT batch went out with this verdict."""

    recommendation: AccessRecommendation
    evaluation: AssessmentResult
    action: ActionRecommendation
    reasons: tuple[PbReasonString, ...]
    per_validator: tuple[tuple[int, ValidatorRecommendation], ...]


@dataclass(frozen=True, slots=True)
class ResultReceived:
    """Client: the server's RESULT batch."""

    evaluation: AssessmentResult
    recommendation: AccessRecommendation | None
    reasons: tuple[PbReasonString, ...]
    remediation: tuple[PbRemediationParameters, ...]


@dataclass(frozen=True, slots=True)
class PdpReferralReceived:
    referral: PbPdpReferral


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    by_peer: bool
    errors: tuple[PbError, ...] = ()
    """PB-Error messages the CLOSE batch carried (ours or the peer's)."""


Event = (
    StateChanged
    | HandshakeStarted
    | PbErrorReceived
    | FatalErrorSent
    | MessageDropped
    | AssessmentDecided
    | ResultReceived
    | PdpReferralReceived
    | ConnectionClosed
)

_IMPLEMENTED = frozenset(KNOWN_MESSAGE_TYPES) - {
    (PbNoskipTest.VENDOR_ID, int(PbNoskipTest.MESSAGE_TYPE))
}
"""Message types we act on; NOSKIP messages of any other type are refused."""

_RESULT_ONLY = (
    PbAssessmentResult,
    PbAccessRecommendation,
    PbRemediationParameters,
    PbReasonString,
)
"""RFC 5793 4.6-4.8, 4.11: sent only by the server, only in RESULT batches."""


# --------------------------------------------------------------------------- common part


class _Endpoint:
    _role: Role

    def __init__(self, connection_id: int, config: PbTncConfig | None) -> None:
        self.connection_id = connection_id
        self.config = config if config is not None else PbTncConfig()
        self._state = PbTncState.INIT
        self._events: collections.deque[Event] = collections.deque()
        self._queue: list[PbMessage] = []
        self._retry_requested = False

    @property
    def state(self) -> PbTncState:
        return self._state

    @property
    def is_server(self) -> bool:
        return self._role is Role.SERVER

    @property
    def pending_messages(self) -> int:
        """Messages queued for our next batches (more than one batch holds)."""
        return len(self._queue)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        """Drain all pending events."""
        out = list(self._events)
        self._events.clear()
        return out

    # ---- transitions: every state change goes through here

    def _set_state(self, new: PbTncState, batch_type: BatchType, *, sent: bool) -> None:
        old = self._state
        self._state = new
        if new is not old:
            self._events.append(StateChanged(old, new, batch_type, sent))
        if new is PbTncState.END and old is not PbTncState.END:
            self._on_end()

    def _on_end(self) -> None:
        """Hook: tell validators/collectors the connection is gone."""

    def _send(self, batch_type: BatchType, messages: Sequence[PbMessage]) -> bytes:
        new = next_state(self._state, batch_type, self._role)
        if new is None:
            raise PbTncUsageError(f"cannot send {batch_type.name} in state {self._state.value}")
        data = Batch(batch_type, self.is_server, tuple(messages)).encode()
        self._set_state(new, batch_type, sent=True)
        return data

    def _send_queued(self, batch_type: BatchType) -> bytes:
        """Send ``batch_type`` with as many queued messages as the size limit allows."""
        return self._send(batch_type, self._take(self._queue))

    def _take(self, queue: list[PbMessage], reserve: int = 0) -> list[PbMessage]:
        room = self.config.max_batch_size - BATCH_HEADER_SIZE - reserve
        taken: list[PbMessage] = []
        while queue:
            size = len(encode_message(queue[0]))
            if size > room:
                break
            room -= size
            taken.append(queue.pop(0))
        return taken

    def _enqueue(self, message: PbMessage) -> None:
        if isinstance(message, PbPa) and len(message.body) > self.config.max_message_size:
            self._events.append(
                MessageDropped(
                    message,
                    f"PA message of {len(message.body)} bytes exceeds max_message_size "
                    f"{self.config.max_message_size}",
                )
            )
            return
        if len(encode_message(message)) > self.config.max_batch_size - BATCH_HEADER_SIZE:
            self._events.append(MessageDropped(message, "message larger than a batch"))
            return
        self._queue.append(message)

    # ---- receiving

    def receive_batch(self, data: bytes) -> list[bytes]:
        """Consume one batch from the peer; return the batches to send now."""
        if self._state is PbTncState.END:
            return []
        try:
            batch = decode_batch(data)
            self._check_batch(batch)
            return self._handle(batch)
        except PbTncError as exc:
            return self._fatal(exc)

    def _check_batch(self, batch: Batch) -> None:
        peer = Role.CLIENT if self.is_server else Role.SERVER
        if batch.from_server != (peer is Role.SERVER):
            raise InvalidParameter("batch has the wrong directionality (D) bit", offset=1)
        if next_state(self._state, batch.batch_type, peer) is None:
            raise UnexpectedBatchType(
                f"{batch.batch_type.name} not allowed in state {self._state.value}", offset=0
            )
        for offset, message in message_offsets(batch.messages):
            if message.noskip and message_key(message) not in _IMPLEMENTED:
                vendor, mtype = message_key(message)
                raise UnsupportedMandatoryMessage(
                    f"message type 0x{vendor:06x}/0x{mtype:08x} has NOSKIP", offset=offset
                )

    def _receive_transition(self, batch: Batch) -> PbTncState:
        old = self._state
        peer = Role.CLIENT if self.is_server else Role.SERVER
        new = next_state(old, batch.batch_type, peer)
        if new is None:  # checked already; kept for the type checker
            raise UnexpectedBatchType("unexpected batch type", offset=0)
        self._set_state(new, batch.batch_type, sent=False)
        return old

    def _fatal(self, error: PbTncError) -> list[bytes]:
        if self._state is PbTncState.END:
            return []
        message = error.to_message()
        data = self._send(BatchType.CLOSE, [message])
        self._queue.clear()
        self._events.append(FatalErrorSent(error))
        self._events.append(ConnectionClosed(by_peer=False, errors=(message,)))
        return [data]

    def _peer_closed(self, batch: Batch) -> list[bytes]:
        errors = tuple(m for m in batch.messages if isinstance(m, PbError))
        for err in errors:
            self._events.append(PbErrorReceived(err))
        self._queue.clear()
        self._events.append(ConnectionClosed(by_peer=True, errors=errors))
        return []

    def _peer_error(self, error: PbError) -> bool:
        """Record a PB-Error from the peer; True when it is fatal (we then close)."""
        self._events.append(PbErrorReceived(error))
        return error.fatal

    def close(self) -> list[bytes]:
        """End the session with an empty CLOSE batch."""
        if self._state is PbTncState.END:
            return []
        self._queue.clear()
        data = self._send(BatchType.CLOSE, [])
        self._events.append(ConnectionClosed(by_peer=False))
        return [data]

    def _close_after_peer_fatal(self) -> list[bytes]:
        self._queue.clear()
        data = self._send(BatchType.CLOSE, [])
        self._events.append(ConnectionClosed(by_peer=False))
        return [data]

    def _handle(self, batch: Batch) -> list[bytes]:
        raise NotImplementedError


# --------------------------------------------------------------------------- server


class Tncs(_Endpoint):
    """Posture Broker Server (TNCS) for one connection."""

    _role = Role.SERVER

    def __init__(
        self,
        validators: Sequence[PostureValidator],
        *,
        connection_id: int = 1,
        config: PbTncConfig | None = None,
    ) -> None:
        super().__init__(connection_id, config)
        ids = [v.validator_id for v in validators]
        if len(set(ids)) != len(ids):
            raise PbTncUsageError(f"validator ids must be unique: {ids}")
        self._validators = list(validators)
        self._language: PbLanguagePreference | None = None
        self._decisions: dict[int, ValidatorRecommendation] = {}
        self.decision: AssessmentDecided | None = None
        """The verdict of the last RESULT batch sent (None before the first, and again while
        a retried handshake runs)."""
        for v in self._validators:
            v.notify_connection_change(connection_id, ConnectionState.CREATE)

    @property
    def language_preference(self) -> PbLanguagePreference | None:
        return self._language

    def request_retry(self) -> list[bytes]:
        """Ask the client for a new assessment (SRETRY).

        From Decided the SRETRY goes out at once.  While the client works it goes out at once
        in full duplex, else as our answer to the client's next batch.  Returns the batches
        to send now.
        """
        if self._state is PbTncState.END:
            raise PbTncUsageError("connection has ended")
        if self._state is PbTncState.INIT:
            return []  # no assessment yet; the client's first CDATA starts one anyway
        if self._state is PbTncState.DECIDED or (
            self._state is PbTncState.CLIENT_WORKING and self.config.full_duplex
        ):
            self._queue.clear()
            return [self._send(BatchType.SRETRY, [])]
        if self._state is PbTncState.CLIENT_WORKING:
            self._retry_requested = True
        return []

    # ---- receive

    def _handle(self, batch: Batch) -> list[bytes]:
        old = self._receive_transition(batch)
        if batch.batch_type is BatchType.CLOSE:
            return self._peer_closed(batch)
        # CDATA or CRETRY
        if batch.batch_type is BatchType.CRETRY or old is PbTncState.INIT:
            self._begin_handshake(retry=batch.batch_type is BatchType.CRETRY)
        for offset, message in message_offsets(batch.messages):
            if isinstance(message, PbPa):
                self._deliver(message)
            elif isinstance(message, PbLanguagePreference):
                self._language = message
            elif isinstance(message, PbError):
                if self._peer_error(message):
                    return self._close_after_peer_fatal()
            elif isinstance(message, _RESULT_ONLY):
                raise InvalidParameter(
                    f"{type(message).__name__} must not come from a client", offset=offset
                )
            # PB-Experimental, vendor messages and unknown non-NOSKIP messages: nothing to do.
        for v in self._validators:
            self._queue_from(v.validator_id, v.batch_ending(self.connection_id))
        return [self._reply(client_done=not batch.messages)]

    def _begin_handshake(self, *, retry: bool) -> None:
        self._queue.clear()
        self._decisions.clear()
        self.decision = None
        self._retry_requested = False
        self._events.append(HandshakeStarted(retry=retry))
        for v in self._validators:
            v.notify_connection_change(self.connection_id, ConnectionState.HANDSHAKE)
        if self.config.pdp_referral is not None:
            self._enqueue(self.config.pdp_referral)

    def _deliver(self, message: PbPa) -> None:
        for v in self._validators:
            if message.exclusive and v.validator_id != message.validator_id:
                continue
            if not subscribed(v.subscriptions, message.pa_vendor_id, message.pa_subtype):
                continue
            self._queue_from(v.validator_id, v.receive_message(self.connection_id, message))

    def _queue_from(self, validator_id: int, out: Sequence[OutboundPa]) -> None:
        for pa in out:
            self._enqueue(
                PbPa(
                    pa.vendor_id,
                    pa.subtype,
                    collector_id=pa.peer_id,
                    validator_id=validator_id,
                    body=pa.body,
                    pa_flags=PA_FLAG_EXCL if pa.exclusive else 0,
                )
            )

    # ---- decide what to answer

    def _undecided(self) -> list[PostureValidator]:
        waiting = []
        for v in self._validators:
            if v.validator_id in self._decisions:
                continue
            rec = v.provided_recommendation(self.connection_id)
            if rec is None:
                waiting.append(v)
            else:
                self._decisions[v.validator_id] = rec
        return waiting

    def _reply(self, *, client_done: bool) -> bytes:
        if self._retry_requested:
            self._retry_requested = False
            self._queue.clear()
            return self._send(BatchType.SRETRY, [])
        waiting = self._undecided()
        if not waiting:
            result = self._result_messages()
            if len(self._take(list(self._queue), reserve=_size(result))) == len(self._queue):
                return self._send_result(result)
        if self._queue:
            return self._send_queued(BatchType.SDATA)
        if waiting and not client_done:
            return self._send(BatchType.SDATA, [])  # validators still work: empty SDATA
        for v in waiting:
            self._decisions[v.validator_id] = v.solicit_recommendation(self.connection_id)
        return self._send_result(self._result_messages())

    def _result_messages(self) -> list[PbMessage]:
        pairs = [(r.recommendation, r.evaluation) for r in self._decisions_in_order()]
        action, evaluation = combine_recommendations(pairs, self.config.recommendation_policy)
        access, _ = to_access_recommendation(action)
        messages: list[PbMessage] = [PbAssessmentResult(evaluation), PbAccessRecommendation(access)]
        for rec in self._decisions_in_order():
            messages.extend(rec.remediation)
        for rec in self._decisions_in_order():
            reason = self._pick_reason(rec)
            if reason is not None:
                messages.append(reason)
        return messages

    def _decisions_in_order(self) -> list[ValidatorRecommendation]:
        return [
            self._decisions[v.validator_id]
            for v in self._validators
            if v.validator_id in self._decisions
        ]

    def _pick_reason(self, rec: ValidatorRecommendation) -> PbReasonString | None:
        if not rec.reasons:
            return None
        available = {lang.lower(): (lang, text) for lang, text in rec.reasons.items()}
        wanted = self._language.ranked() if self._language is not None else []
        for tag in [*wanted, self.config.default_language.lower()]:
            if tag == "*":
                break
            if tag in available:
                lang, text = available[tag]
                return PbReasonString(text, lang)
            for key, (lang, text) in available.items():
                if key.split("-")[0] == tag.split("-")[0]:
                    return PbReasonString(text, lang)
        lang, text = next(iter(rec.reasons.items()))
        return PbReasonString(text, lang)

    def _send_result(self, result: list[PbMessage]) -> bytes:
        # RFC 5793 4.1: a RESULT batch is one batch; leftover PA messages go first.
        messages = self._queue + result
        self._queue = []
        while _size(messages) > self.config.max_batch_size - BATCH_HEADER_SIZE:
            dropped = messages.pop()  # a reason string or remediation that does not fit
            self._events.append(MessageDropped(dropped, "RESULT batch over the size limit"))
        access = next(m for m in messages if isinstance(m, PbAccessRecommendation))
        evaluation = next(m for m in messages if isinstance(m, PbAssessmentResult))
        pairs = [(r.recommendation, r.evaluation) for r in self._decisions_in_order()]
        action, _ = combine_recommendations(pairs, self.config.recommendation_policy)
        _, conn_state = to_access_recommendation(action)
        data = self._send(BatchType.RESULT, messages)
        self.decision = AssessmentDecided(
            access.recommendation,
            evaluation.result,
            action,
            tuple(m for m in messages if isinstance(m, PbReasonString)),
            tuple(
                (v.validator_id, self._decisions[v.validator_id])
                for v in self._validators
                if v.validator_id in self._decisions
            ),
        )
        self._events.append(self.decision)
        for v in self._validators:
            v.notify_connection_change(self.connection_id, conn_state)
        return data

    def _on_end(self) -> None:
        for v in self._validators:
            v.notify_connection_change(self.connection_id, ConnectionState.DELETE)


def _size(messages: Sequence[PbMessage]) -> int:
    return sum(len(encode_message(m)) for m in messages)


# --------------------------------------------------------------------------- client


class Tncc(_Endpoint):
    """Posture Broker Client (TNCC) for one connection."""

    _role = Role.CLIENT

    def __init__(
        self,
        collectors: Sequence[PostureCollector],
        *,
        connection_id: int = 1,
        config: PbTncConfig | None = None,
    ) -> None:
        super().__init__(connection_id, config)
        ids = [c.collector_id for c in collectors]
        if len(set(ids)) != len(ids):
            raise PbTncUsageError(f"collector ids must be unique: {ids}")
        self._collectors = list(collectors)
        self.result: ResultReceived | None = None
        self.pdp_referral: PbPdpReferral | None = None
        for c in self._collectors:
            c.notify_connection_change(connection_id, ConnectionState.CREATE)

    def start(self) -> list[bytes]:
        """Begin the assessment: the first CDATA (language preference + collectors' data)."""
        if self._state is not PbTncState.INIT:
            raise PbTncUsageError(f"start() in state {self._state.value}")
        self._begin_handshake(retry=False)
        return [self._send_queued(BatchType.CDATA)]

    def request_retry(self) -> list[bytes]:
        """Ask for a new assessment of this live connection (CRETRY).

        From Decided (or when it is our turn) the CRETRY goes out at once; while the server
        works it goes out at once in full duplex, else as our answer to its next batch.
        """
        if self._state is PbTncState.END:
            raise PbTncUsageError("connection has ended")
        if self._state is PbTncState.INIT:
            raise PbTncUsageError("no assessment yet: call start()")
        if self._state is PbTncState.SERVER_WORKING and not self.config.full_duplex:
            self._retry_requested = True
            return []
        return [self._send_retry()]

    def _send_retry(self) -> bytes:
        self._begin_handshake(retry=True)
        return self._send_queued(BatchType.CRETRY)

    def _begin_handshake(self, *, retry: bool) -> None:
        self._queue.clear()
        self._retry_requested = False
        self._events.append(HandshakeStarted(retry=retry))
        if not retry:
            self._enqueue(PbLanguagePreference(self.config.accept_language))
        for c in self._collectors:
            c.notify_connection_change(self.connection_id, ConnectionState.HANDSHAKE)
        for c in self._collectors:
            self._queue_from(c.collector_id, c.begin_handshake(self.connection_id))

    def _queue_from(self, collector_id: int, out: Sequence[OutboundPa]) -> None:
        for pa in out:
            self._enqueue(
                PbPa(
                    pa.vendor_id,
                    pa.subtype,
                    collector_id=collector_id,
                    validator_id=pa.peer_id,
                    body=pa.body,
                    pa_flags=PA_FLAG_EXCL if pa.exclusive else 0,
                )
            )

    def _deliver(self, message: PbPa) -> None:
        for c in self._collectors:
            if message.exclusive and c.collector_id != message.collector_id:
                continue
            if not subscribed(c.subscriptions, message.pa_vendor_id, message.pa_subtype):
                continue
            self._queue_from(c.collector_id, c.receive_message(self.connection_id, message))

    def _handle(self, batch: Batch) -> list[bytes]:
        old = self._receive_transition(batch)
        btype = batch.batch_type
        if btype is BatchType.CLOSE:
            return self._peer_closed(batch)
        if btype is BatchType.SDATA and old is PbTncState.INIT:
            self._begin_handshake(retry=False)  # the server spoke first
        if btype is BatchType.SRETRY:
            self._queue.clear()
        result: list[PbMessage] = []
        for offset, message in message_offsets(batch.messages):
            if isinstance(message, PbPa):
                self._deliver(message)
            elif isinstance(message, PbError):
                if self._peer_error(message):
                    return self._close_after_peer_fatal()
            elif isinstance(message, PbPdpReferral):
                self.pdp_referral = message
                self._events.append(PdpReferralReceived(message))
            elif isinstance(message, _RESULT_ONLY) and btype is BatchType.RESULT:
                if isinstance(message, PbAssessmentResult | PbAccessRecommendation) and any(
                    type(m) is type(message) for m in result
                ):
                    raise InvalidParameter(
                        f"second {type(message).__name__} in a RESULT batch", offset=offset
                    )
                result.append(message)
            # result messages outside RESULT are ignored (as strongSwan does); so are
            # language preferences, PB-Experimental and non-NOSKIP unknown messages.
        for c in self._collectors:
            self._queue_from(c.collector_id, c.batch_ending(self.connection_id))
        if btype is BatchType.SRETRY:
            return [self._send_retry()]
        if btype is BatchType.RESULT:
            return self._on_result(result)
        # SDATA
        if self._retry_requested:
            return [self._send_retry()]
        return [self._send_queued(BatchType.CDATA)]

    def _on_result(self, result: list[PbMessage]) -> list[bytes]:
        evaluation = next((m for m in result if isinstance(m, PbAssessmentResult)), None)
        if evaluation is None:
            raise InvalidParameter("RESULT batch without PB-Assessment-Result", offset=0)
        access = next((m for m in result if isinstance(m, PbAccessRecommendation)), None)
        self._queue.clear()
        self.result = ResultReceived(
            evaluation.result,
            access.recommendation if access is not None else None,
            tuple(m for m in result if isinstance(m, PbReasonString)),
            tuple(m for m in result if isinstance(m, PbRemediationParameters)),
        )
        self._events.append(self.result)
        if access is None or access.recommendation is AccessRecommendation.DENIED:
            conn_state = ConnectionState.ACCESS_NONE
        elif access.recommendation is AccessRecommendation.QUARANTINED:
            conn_state = ConnectionState.ACCESS_ISOLATED
        else:
            conn_state = ConnectionState.ACCESS_ALLOWED
        for c in self._collectors:
            c.notify_connection_change(self.connection_id, conn_state)
        if self._retry_requested:
            return [self._send_retry()]
        if self.config.close_after_result:
            data = self._send(BatchType.CLOSE, [])
            self._events.append(ConnectionClosed(by_peer=False))
            return [data]
        return []

    def _on_end(self) -> None:
        for c in self._collectors:
            c.notify_connection_change(self.connection_id, ConnectionState.DELETE)
