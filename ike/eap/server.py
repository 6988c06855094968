"""EAP authenticator state machine (RFC 3748, in the spirit of RFC 4137 section 5).

Sans-I/O: ``start()`` gives the first packet, ``receive(packet)`` gives the next one (or None
when the packet is discarded), ``next_timeout()`` / ``handle_timeout(now)`` drive
retransmission.  Every transition lives in :data:`EapServer._TRANSITIONS`, keyed by
``(state, input)``; a pair that is not in the table is a packet RFC 3748 tells us to discard.

Retransmission (RFC 3748 4.3) is armed only when ``now`` is passed to ``start`` / ``receive``:
over RADIUS the NAS retransmits (RFC 3579 2.2.1) and over IKEv2 the IKE layer does, so those
callers leave ``now`` out; an EAPOL-style caller passes its monotonic clock.

Method negotiation: the server proposes its configured methods in order.  A legacy Nak (or
Expanded Nak) to a method's first Request moves to the first type the peer listed that the
server also offers and has not tried; if there is none the conversation fails.  After the
authentication method succeeds the ``chain`` methods (e.g. PT-EAP) run in order before
EAP-Success.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable, Sequence

from ike.eap.events import (
    AuthenticationFailed,
    AuthenticationSucceeded,
    EapEvent,
    IdentityReceived,
    MethodCompleted,
    MethodNaked,
    MethodStarted,
    PacketDropped,
    Retransmitted,
)
from ike.eap.method import (
    Decision,
    EapServerMethod,
    ServerMethodFactory,
    Step,
)
from ike.eap.packet import (
    EapError,
    EapFailure,
    EapRequest,
    EapResponse,
    EapStateError,
    EapSuccess,
    EapType,
    parse,
    parse_expanded_nak,
    parse_nak,
    type_name,
)

__all__ = ["EapServer", "ServerState"]

log = logging.getLogger("ike.eap.server")


class ServerState(enum.Enum):
    IDLE = "idle"
    """Nothing sent yet."""
    IDENTITY = "identity"
    """Identity Request sent, waiting for the Identity Response."""
    METHOD = "method"
    """A method Request is outstanding."""
    METHOD_FAILING = "method-failing"
    """The method failed and sent a last Request; its Response ends in EAP-Failure."""
    NOTIFY = "notify"
    """A Notification Request is outstanding; its Response releases the final packet."""
    SUCCESS = "success"
    FAILURE = "failure"


class _Input(enum.Enum):
    IDENTITY = "identity"
    NAK = "nak"
    METHOD = "method"
    """A Response of the current method's type."""
    NOTIFICATION = "notification"
    OTHER = "other"


_FINAL = (ServerState.SUCCESS, ServerState.FAILURE)
_Handler = Callable[["EapServer", EapResponse], "bytes | None"]


class EapServer:
    """One EAP conversation, authenticator side.

    :param methods: authentication methods ``(eap_type, factory)`` in order of preference;
        each factory is called with the peer's identity when its method starts.
    :param chain: methods run after the authentication method succeeded (e.g. PT-EAP), each
        mandatory, in order.
    :param identity: the peer identity when it is already known (skips the Identity
        exchange, e.g. an IKEv2 IDi); ``start()`` then sends the first method's Request.
    :param initial_identifier: the first Identifier (random when None).
    :param retransmit_timeout: seconds before a Request is sent again (when ``now`` is given).
    :param max_retransmits: retransmissions before the conversation fails.
    :param failure_notification: when set, a Notification Request with this text precedes
        EAP-Failure (RFC 3748 5.2).
    :param identity_prompt: displayable text for the Identity Request.
    """

    def __init__(
        self,
        methods: Sequence[tuple[int, ServerMethodFactory]],
        *,
        chain: Sequence[tuple[int, ServerMethodFactory]] = (),
        identity: bytes | None = None,
        initial_identifier: int | None = None,
        retransmit_timeout: float = 3.0,
        max_retransmits: int = 4,
        failure_notification: str | None = None,
        identity_prompt: bytes = b"",
    ) -> None:
        if not methods:
            raise ValueError("EapServer needs at least one authentication method")
        for eap_type, _ in (*methods, *chain):
            if not EapType.MD5_CHALLENGE <= eap_type <= 253:
                raise ValueError(f"cannot offer EAP type {eap_type} as a method")
        for table, what in ((methods, "methods"), (chain, "chain")):
            types = [t for t, _ in table]
            if len(set(types)) != len(types):
                raise ValueError(f"an EAP type appears twice in {what}: {types}")
        if initial_identifier is not None and not 0 <= initial_identifier <= 255:
            raise ValueError("initial_identifier must be 0..255")
        self._methods = list(methods)
        self._chain = list(chain)
        self._identity = identity
        self._preset_identity = identity is not None
        self._retransmit_timeout = retransmit_timeout
        self._max_retransmits = max_retransmits
        self._failure_notification = failure_notification
        self._identity_prompt = identity_prompt

        self._state = ServerState.IDLE
        self._id = secrets.randbelow(256) if initial_identifier is None else initial_identifier
        self._events: list[EapEvent] = []
        self._failure_reason: str | None = None

        self._untried = [t for t, _ in self._methods]
        self._pending_chain = list(self._chain)
        self._method: EapServerMethod | None = None
        self._method_type = 0
        self._method_rounds = 0
        self._in_chain = False
        self._completed: list[int] = []
        self._msk: bytes | None = None
        self._emsk: bytes | None = None

        self._last_sent: bytes | None = None
        self._deadline: float | None = None
        self._retransmits = 0
        self._pending_final: bytes | None = None
        self._now: float | None = None

    # -- results ------------------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def succeeded(self) -> bool:
        return self._state is ServerState.SUCCESS

    @property
    def failed(self) -> bool:
        return self._state is ServerState.FAILURE

    @property
    def done(self) -> bool:
        return self._state in _FINAL

    @property
    def identity(self) -> bytes | None:
        """The peer's EAP identity (Identity Response data), once known."""
        return self._identity

    @property
    def msk(self) -> bytes | None:
        """MSK of the first completed method that exported one, after EAP-Success."""
        return self._msk if self.succeeded else None

    @property
    def emsk(self) -> bytes | None:
        return self._emsk if self.succeeded else None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason

    @property
    def method_type(self) -> int | None:
        """EAP type of the method running now (None outside a method)."""
        return self._method_type if self._method is not None else None

    @property
    def completed_methods(self) -> tuple[int, ...]:
        """Types of the methods that succeeded, in order (authentication, then chain)."""
        return tuple(self._completed)

    @property
    def events(self) -> list[EapEvent]:
        """Everything that happened so far, oldest first (the engine only appends)."""
        return self._events

    # -- driving --------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> bytes:
        """The first packet: Identity Request, or the first method's Request."""
        if self._state is not ServerState.IDLE:
            raise EapStateError(f"start() in state {self._state.value}")
        self._now = now
        if self._preset_identity:
            out = self._begin_methods(now)
        else:
            out = self._send_request(EapType.IDENTITY, self._identity_prompt, now)
            self._set_state(ServerState.IDENTITY)
        return out

    def receive(self, packet: bytes, now: float | None = None) -> bytes | None:
        """Consume one packet from the peer; return the packet to send, or None."""
        self._now = now
        try:
            pkt = parse(packet)
        except EapError as exc:
            return self._drop(f"malformed packet: {exc}")
        if not isinstance(pkt, EapResponse):
            return self._drop(f"{type(pkt).__name__} sent to the authenticator")
        if self._state in _FINAL:
            return self._drop("conversation already finished")
        if self._state is ServerState.IDLE:
            # RADIUS pass-through (RFC 3579 2.1): the NAS did the Identity exchange itself.
            if pkt.eap_type != EapType.IDENTITY:
                return self._drop("first Response is not an Identity Response")
            self._id = pkt.identifier
        elif pkt.identifier != self._id:
            why = "duplicate" if pkt.identifier == (self._id - 1) % 256 else "unexpected"
            return self._drop(f"{why} Response identifier {pkt.identifier} (expected {self._id})")
        handler = self._TRANSITIONS.get((self._state, self._classify(pkt)))
        if handler is None:
            return self._drop(
                f"{type_name(pkt.eap_type)} Response not expected in state {self._state.value}"
            )
        return handler(self, pkt)

    def next_timeout(self) -> float | None:
        """When ``handle_timeout`` wants to be called, or None."""
        return self._deadline

    def handle_timeout(self, now: float) -> bytes | None:
        """Retransmit the outstanding Request, or fail once ``max_retransmits`` are spent."""
        if self._deadline is None or now < self._deadline or self._last_sent is None:
            return None
        if self._retransmits >= self._max_retransmits:
            self._deadline = None
            self._fail_quietly(
                f"no Response after {self._retransmits} retransmissions "
                f"in state {self._state.value}"
            )
            return None
        self._retransmits += 1
        self._deadline = now + self._retransmit_timeout
        self._events.append(Retransmitted(self._id, self._retransmits))
        return self._last_sent

    # -- table ------------------------------------------------------------------------------------

    def _classify(self, pkt: EapResponse) -> _Input:
        if pkt.eap_type == EapType.IDENTITY:
            return _Input.IDENTITY
        if pkt.eap_type == EapType.NOTIFICATION:
            return _Input.NOTIFICATION
        if pkt.eap_type == EapType.NAK:
            return _Input.NAK
        if pkt.eap_type == EapType.EXPANDED and self._method_type != EapType.EXPANDED:
            return _Input.NAK  # an Expanded Nak; parse_expanded_nak checks it
        if self._method is not None and pkt.eap_type == self._method_type:
            return _Input.METHOD
        return _Input.OTHER

    def _on_identity(self, pkt: EapResponse) -> bytes | None:
        # RFC 3748 5.1: the data is the identity; some peers append a NUL and options.
        self._identity = pkt.type_data
        self._events.append(IdentityReceived(pkt.type_data))
        log.debug("EAP identity %r", pkt.type_data)
        return self._begin_methods(None)

    def _on_method(self, pkt: EapResponse) -> bytes | None:
        assert self._method is not None
        self._method_rounds += 1
        try:
            step = self._method.receive(pkt.type_data)
        except Exception as exc:  # a method bug or malformed data must end this conversation only
            log.warning("%s raised on a Response", type_name(self._method_type), exc_info=True)
            return self._fail(f"{type_name(self._method_type)} error: {exc}")
        return self._after_step(step)

    def _on_nak(self, pkt: EapResponse) -> bytes | None:
        name = type_name(self._method_type)
        try:
            if pkt.eap_type == EapType.NAK:
                desired = parse_nak(pkt.type_data)
            else:
                expanded = parse_expanded_nak(pkt.type_data)
                if expanded is None:
                    return self._drop("expanded-type Response that is not an Expanded Nak")
                desired = tuple(e.vendor_type for e in expanded if e.vendor_id == 0)
        except EapError as exc:
            return self._drop(f"malformed Nak: {exc}")
        self._events.append(MethodNaked(self._method_type, desired))
        if self._method_rounds:
            return self._fail(f"peer sent a Nak in the middle of {name}")
        self._method = None
        if self._in_chain:
            return self._fail(f"peer refused the chained method {name}")
        for eap_type in desired:
            if eap_type in self._untried:
                log.info("peer refused %s, moving to %s", name, type_name(eap_type))
                return self._start_method(eap_type, None)
        offered = ", ".join(type_name(t) for t in desired) or "none"
        remaining = ", ".join(type_name(t) for t in self._untried) or "none"
        return self._fail(
            f"peer refused {name}; it proposed {offered}, the server still offers {remaining}"
        )

    def _on_method_failing(self, pkt: EapResponse) -> bytes | None:
        return self._final_failure()

    def _on_notification(self, pkt: EapResponse) -> bytes | None:
        out = self._pending_final
        self._pending_final = None
        self._deadline = None
        self._set_state(ServerState.FAILURE)
        self._last_sent = out
        return out

    _TRANSITIONS: dict[tuple[ServerState, _Input], _Handler] = {
        (ServerState.IDLE, _Input.IDENTITY): _on_identity,
        (ServerState.IDENTITY, _Input.IDENTITY): _on_identity,
        (ServerState.METHOD, _Input.METHOD): _on_method,
        (ServerState.METHOD, _Input.NAK): _on_nak,
        (ServerState.METHOD_FAILING, _Input.METHOD): _on_method_failing,
        (ServerState.METHOD_FAILING, _Input.NAK): _on_method_failing,
        (ServerState.NOTIFY, _Input.NOTIFICATION): _on_notification,
    }

    # -- helpers ----------------------------------------------------------------------------------

    def _set_state(self, new: ServerState) -> None:
        if new is not self._state:
            log.debug("EAP server %s -> %s", self._state.value, new.value)
            self._state = new

    def _drop(self, reason: str) -> bytes | None:
        log.debug("EAP server discards a packet: %s", reason)
        self._events.append(PacketDropped(reason))
        return None

    def _send_request(self, eap_type: int, type_data: bytes, now: float | None) -> bytes:
        self._id = (self._id + 1) % 256
        if self._method is not None:
            # IdentifierAware, tested as a runtime Protocol isinstance does (the member exists
            # and is not None) without that isinstance's walk over the protocol's members.
            set_identifier = getattr(self._method, "set_identifier", None)
            if set_identifier is not None:
                set_identifier(self._id)
        out = EapRequest(self._id, eap_type, type_data).to_bytes()
        self._last_sent = out
        self._retransmits = 0
        if now is None:
            now = self._now
        self._deadline = None if now is None else now + self._retransmit_timeout
        return out

    def _begin_methods(self, now: float | None) -> bytes:
        return self._start_method(self._untried[0], now)

    def _factory(self, eap_type: int) -> ServerMethodFactory:
        table = self._chain if self._in_chain else self._methods
        return next(f for t, f in table if t == eap_type)

    def _start_method(self, eap_type: int, now: float | None) -> bytes:
        if not self._in_chain:
            self._untried.remove(eap_type)
        identity = self._identity if self._identity is not None else b""
        try:
            method = self._factory(eap_type)(identity)
            first = method.start()
        except Exception as exc:  # a broken method must not take the gateway down
            log.warning("could not start %s", type_name(eap_type), exc_info=True)
            self._method = None
            return self._fail(f"could not start {type_name(eap_type)}: {exc}")
        self._method = method
        self._method_type = eap_type
        self._method_rounds = 0
        self._events.append(MethodStarted(eap_type))
        self._set_state(ServerState.METHOD)
        return self._send_request(eap_type, first, now)

    def _after_step(self, step: Step) -> bytes | None:
        assert self._method is not None
        if step.decision is Decision.CONTINUE:
            if step.reply is None:
                name = type_name(self._method_type)
                return self._fail(f"{name} asked to continue without a Request")
            return self._send_request(self._method_type, step.reply, None)
        if step.decision is Decision.FAILURE:
            reason = self._method.failure_reason or f"{type_name(self._method_type)} failed"
            self._events.append(MethodCompleted(self._method_type, False, reason))
            if step.reply is not None:
                self._failure_reason = reason
                self._set_state(ServerState.METHOD_FAILING)
                return self._send_request(self._method_type, step.reply, None)
            return self._fail(reason)
        # SUCCESS
        self._events.append(MethodCompleted(self._method_type, True))
        self._completed.append(self._method_type)
        if self._msk is None:
            self._msk = self._method.msk()
            self._emsk = self._method.emsk()
        self._method = None
        if self._pending_chain:
            self._in_chain = True
            eap_type, _ = self._pending_chain.pop(0)
            return self._start_method(eap_type, None)
        self._set_state(ServerState.SUCCESS)
        self._events.append(AuthenticationSucceeded())
        log.info(
            "EAP authentication of %r succeeded (%s)",
            self._identity,
            ", ".join(type_name(t) for t in self._completed),
        )
        self._deadline = None
        out = EapSuccess(self._id).to_bytes()
        self._last_sent = out
        return out

    def _fail(self, reason: str) -> bytes:
        self._failure_reason = reason
        return self._final_failure()

    def _final_failure(self) -> bytes:
        reason = self._failure_reason or "authentication failed"
        self._method = None
        failure = EapFailure(self._id).to_bytes()
        log.info("EAP authentication of %r failed: %s", self._identity, reason)
        self._events.append(AuthenticationFailed(reason))
        if self._failure_notification is not None:
            self._set_state(ServerState.NOTIFY)
            # The Failure that follows carries the Notification's Identifier (RFC 3748 4.2).
            out = self._send_request(
                EapType.NOTIFICATION, self._failure_notification.encode("utf-8"), None
            )
            self._pending_final = EapFailure(self._id).to_bytes()
            return out
        self._set_state(ServerState.FAILURE)
        self._deadline = None
        self._last_sent = failure
        return failure

    def _fail_quietly(self, reason: str) -> None:
        """Timeout: fail without sending anything (RFC 4137 TIMEOUT_FAILURE)."""
        self._failure_reason = reason
        self._method = None
        log.info("EAP authentication of %r failed: %s", self._identity, reason)
        self._events.append(AuthenticationFailed(reason))
        self._set_state(ServerState.FAILURE)
