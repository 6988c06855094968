"""EAP peer state machine (RFC 3748, in the spirit of RFC 4137 section 4).

Sans-I/O: ``receive(packet)`` gives the Response to send (or None).  The peer never
retransmits on its own (RFC 3748 4.3: the authenticator does); a retransmitted Request (same
Identifier, same bytes) is answered with the cached Response without involving the method.
A Request with the last Identifier but other content is treated as new (wpa_supplicant does
the same for authenticators that reuse Identifiers), and a late copy of an older Request
(a retransmission overtaken by the conversation) is discarded.
``next_timeout()`` / ``handle_timeout(now)`` implement the idle timeout (RFC 4137
``ClientTimeout``) when ``now`` is passed to ``receive``.

Every transition is in :data:`EapPeer._TRANSITIONS`, keyed by ``(state, input)``; anything
else is discarded with a :class:`~ike.eap.events.PacketDropped` event.

Security: EAP-Success is accepted only after a method said SUCCESS on this side (a method
with mutual authentication, such as MS-CHAPv2, says so only after checking the server), so
an authenticator cannot skip the method.
"""

from __future__ import annotations

import collections
import enum
import logging
from collections.abc import Callable, Sequence

from ike.eap.events import (
    AuthenticationFailed,
    AuthenticationSucceeded,
    EapEvent,
    MethodCompleted,
    MethodNaked,
    MethodStarted,
    NotificationReceived,
    PacketDropped,
    Retransmitted,
)
from ike.eap.method import Decision, EapPeerMethod, IdentifierAware, PeerMethodFactory
from ike.eap.packet import (
    EapError,
    EapFailure,
    EapRequest,
    EapResponse,
    EapSuccess,
    EapType,
    ExpandedType,
    encode_expanded_nak,
    encode_nak,
    parse,
    type_name,
)

__all__ = ["EapPeer", "PeerState"]

log = logging.getLogger("ike.eap.peer")


class PeerState(enum.Enum):
    IDLE = "idle"
    """No Request answered yet, or only Identity / Notification / Nak so far."""
    METHOD = "method"
    """A method is running and has not decided."""
    METHOD_DONE = "method-done"
    """The last method succeeded on this side: EAP-Success or a chained method may follow."""
    METHOD_FAILED = "method-failed"
    """The method failed: only EAP-Failure (or a Notification) can follow."""
    SUCCESS = "success"
    FAILURE = "failure"


class _Input(enum.Enum):
    IDENTITY = "identity"
    NOTIFICATION = "notification"
    SAME_METHOD = "same-method"
    NEW_METHOD = "new-method"
    SUCCESS = "success"
    FAILURE = "failure"


_FINAL = (PeerState.SUCCESS, PeerState.FAILURE)
_HISTORY = 16
"""Answered Requests remembered to recognise late copies of them."""
_Handler = Callable[["EapPeer", "EapRequest | EapSuccess | EapFailure"], "bytes | None"]


class EapPeer:
    """One EAP conversation, peer side.

    :param identity: the Identity Response data (RFC 3748 5.1).
    :param methods: acceptable methods ``(eap_type, factory)`` in order of preference; the
        order is the one a Nak proposes.
    :param idle_timeout: seconds without a new Request (after a Response, with ``now``
        given) before the peer gives up; None disables it.
    """

    def __init__(
        self,
        identity: bytes,
        methods: Sequence[tuple[int, PeerMethodFactory]],
        *,
        idle_timeout: float | None = 60.0,
    ) -> None:
        self._identity_data = identity
        self._methods = list(methods)
        self._idle_timeout = idle_timeout
        self._state = PeerState.IDLE
        self._events: list[EapEvent] = []
        self._failure_reason: str | None = None

        self._method: EapPeerMethod | None = None
        self._method_type = 0
        self._completed: list[int] = []
        self._msk: bytes | None = None
        self._emsk: bytes | None = None

        self._last_id: int | None = None
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None
        self._deadline: float | None = None
        self._duplicates = 0
        self._answered: collections.deque[bytes] = collections.deque(maxlen=_HISTORY)

    # -- results ------------------------------------------------------------------------------

    @property
    def state(self) -> PeerState:
        return self._state

    @property
    def succeeded(self) -> bool:
        return self._state is PeerState.SUCCESS

    @property
    def failed(self) -> bool:
        return self._state is PeerState.FAILURE

    @property
    def done(self) -> bool:
        return self._state in _FINAL

    @property
    def identity(self) -> bytes:
        return self._identity_data

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
        return self._method_type if self._method is not None else None

    @property
    def completed_methods(self) -> tuple[int, ...]:
        return tuple(self._completed)

    @property
    def events(self) -> list[EapEvent]:
        return self._events

    # -- driving --------------------------------------------------------------------------------

    def receive(self, packet: bytes, now: float | None = None) -> bytes | None:
        """Consume one packet from the authenticator; return the Response to send, or None."""
        try:
            pkt = parse(packet)
        except EapError as exc:
            return self._drop(f"malformed packet: {exc}")
        if isinstance(pkt, EapResponse):
            return self._drop("Response sent to the peer")
        if self._state in _FINAL:
            return self._drop("conversation already finished")
        if isinstance(pkt, EapRequest):
            if (
                pkt.identifier == self._last_id
                and packet == self._last_request
                and self._last_response is not None
            ):
                # RFC 3748 4.1: a retransmitted Request gets the same Response again.
                self._duplicates += 1
                self._events.append(Retransmitted(pkt.identifier, self._duplicates))
                self._arm(now)
                return self._last_response
            if packet in self._answered:
                # A late copy of an older Request (the authenticator retransmitted it and has
                # moved on since): answering it again would restart a finished method.
                return self._drop(
                    f"late copy of an earlier {type_name(pkt.eap_type)} Request "
                    f"(identifier {pkt.identifier})"
                )
        elif self._last_id is not None and pkt.identifier not in (
            self._last_id,
            (self._last_id + 1) % 256,
        ):
            # RFC 3748 4.2: Success/Failure carry the Identifier of the Response they answer
            # (some authenticators increment it; accept that too).
            return self._drop(
                f"{type(pkt).__name__} identifier {pkt.identifier} does not follow {self._last_id}"
            )
        handler = self._TRANSITIONS.get((self._state, self._classify(pkt)))
        if handler is None:
            what = (
                f"{type_name(pkt.eap_type)} Request"
                if isinstance(pkt, EapRequest)
                else type(pkt).__name__
            )
            return self._drop(f"{what} not expected in state {self._state.value}")
        out = handler(self, pkt)
        if isinstance(pkt, EapRequest) and out is not None:
            self._last_id = pkt.identifier
            self._last_request = packet
            self._answered.append(packet)
            self._last_response = out
            self._duplicates = 0
            self._arm(now)
        return out

    def next_timeout(self) -> float | None:
        return self._deadline

    def handle_timeout(self, now: float) -> bytes | None:
        """Give up when no Request came within ``idle_timeout``; never sends anything."""
        if self._deadline is None or now < self._deadline or self._state in _FINAL:
            return None
        self._deadline = None
        self._fail(f"no Request from the authenticator for {self._idle_timeout} s")
        return None

    # -- table --------------------------------------------------------------------------------

    def _classify(self, pkt: EapRequest | EapSuccess | EapFailure) -> _Input:
        if isinstance(pkt, EapSuccess):
            return _Input.SUCCESS
        if isinstance(pkt, EapFailure):
            return _Input.FAILURE
        if pkt.eap_type == EapType.IDENTITY:
            return _Input.IDENTITY
        if pkt.eap_type == EapType.NOTIFICATION:
            return _Input.NOTIFICATION
        if self._method is not None and pkt.eap_type == self._method_type:
            return _Input.SAME_METHOD
        return _Input.NEW_METHOD

    def _on_identity(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        assert isinstance(pkt, EapRequest)
        return EapResponse(pkt.identifier, EapType.IDENTITY, self._identity_data).to_bytes()

    def _on_notification(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        assert isinstance(pkt, EapRequest)
        # RFC 3748 5.2: show the message (here: an event), answer with an empty Response.
        self._events.append(NotificationReceived(pkt.type_data))
        log.info("EAP notification: %r", pkt.type_data)
        return EapResponse(pkt.identifier, EapType.NOTIFICATION).to_bytes()

    def _on_new_method(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        assert isinstance(pkt, EapRequest)
        factory = next((f for t, f in self._methods if t == pkt.eap_type), None)
        if factory is None:
            return self._nak(pkt)
        try:
            method = factory()
        except Exception as exc:  # a broken method must not take the caller down
            log.warning("could not start %s", type_name(pkt.eap_type), exc_info=True)
            self._fail(f"could not start {type_name(pkt.eap_type)}: {exc}")
            return None
        self._method = method
        self._method_type = pkt.eap_type
        self._events.append(MethodStarted(pkt.eap_type))
        self._set_state(PeerState.METHOD)
        return self._run_method(pkt)

    def _on_same_method(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        assert isinstance(pkt, EapRequest)
        return self._run_method(pkt)

    def _on_same_method_after_done(
        self, pkt: EapRequest | EapSuccess | EapFailure
    ) -> bytes | None:
        # RFC 4137 methodState MAY_CONT: a tunnel method that has authenticated may still take
        # Requests (the server chains a posture method inside the tunnel). Keep feeding the
        # running instance, staying ready for EAP-Success; any other method starts afresh.
        assert isinstance(pkt, EapRequest)
        if getattr(self._method, "may_continue", False):
            return self._run_method(pkt)
        return self._on_new_method(pkt)

    def _on_success(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        self._set_state(PeerState.SUCCESS)
        self._deadline = None
        self._events.append(AuthenticationSucceeded())
        log.info(
            "EAP authentication succeeded (%s)", ", ".join(type_name(t) for t in self._completed)
        )
        return None

    def _on_early_success(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        if self._state is PeerState.METHOD_FAILED:
            self._fail(self._failure_reason or "EAP-Success after the method failed")
        else:
            self._fail("EAP-Success before any method completed on this side")
        return None

    def _on_failure(self, pkt: EapRequest | EapSuccess | EapFailure) -> bytes | None:
        reason = "EAP-Failure received"
        if self._method is not None:
            reason += f" in {type_name(self._method_type)}"
        if self._method is not None and self._method.failure_reason:
            reason += f" ({self._method.failure_reason})"
        elif self._failure_reason:
            reason += f" ({self._failure_reason})"
        self._fail(reason)
        return None

    _TRANSITIONS: dict[tuple[PeerState, _Input], _Handler] = {
        (PeerState.IDLE, _Input.IDENTITY): _on_identity,
        (PeerState.METHOD_DONE, _Input.IDENTITY): _on_identity,
        (PeerState.IDLE, _Input.NOTIFICATION): _on_notification,
        (PeerState.METHOD, _Input.NOTIFICATION): _on_notification,
        (PeerState.METHOD_DONE, _Input.NOTIFICATION): _on_notification,
        (PeerState.METHOD_FAILED, _Input.NOTIFICATION): _on_notification,
        (PeerState.IDLE, _Input.NEW_METHOD): _on_new_method,
        (PeerState.METHOD_DONE, _Input.NEW_METHOD): _on_new_method,
        (PeerState.METHOD_DONE, _Input.SAME_METHOD): _on_same_method_after_done,
        (PeerState.METHOD, _Input.SAME_METHOD): _on_same_method,
        (PeerState.METHOD_DONE, _Input.SUCCESS): _on_success,
        (PeerState.IDLE, _Input.SUCCESS): _on_early_success,
        (PeerState.METHOD, _Input.SUCCESS): _on_early_success,
        (PeerState.METHOD_FAILED, _Input.SUCCESS): _on_early_success,
        (PeerState.IDLE, _Input.FAILURE): _on_failure,
        (PeerState.METHOD, _Input.FAILURE): _on_failure,
        (PeerState.METHOD_DONE, _Input.FAILURE): _on_failure,
        (PeerState.METHOD_FAILED, _Input.FAILURE): _on_failure,
    }

    # -- helpers ----------------------------------------------------------------------------------

    def _set_state(self, new: PeerState) -> None:
        if new is not self._state:
            log.debug("EAP peer %s -> %s", self._state.value, new.value)
            self._state = new

    def _drop(self, reason: str) -> bytes | None:
        log.debug("EAP peer discards a packet: %s", reason)
        self._events.append(PacketDropped(reason))
        return None

    def _arm(self, now: float | None) -> None:
        if now is not None and self._idle_timeout is not None:
            self._deadline = now + self._idle_timeout

    def _nak(self, pkt: EapRequest) -> bytes:
        desired = [t for t, _ in self._methods if t != pkt.eap_type]
        self._events.append(MethodNaked(pkt.eap_type, tuple(desired)))
        log.info(
            "refusing %s, proposing %s",
            type_name(pkt.eap_type),
            ", ".join(type_name(t) for t in desired) or "nothing",
        )
        if pkt.eap_type == EapType.EXPANDED:
            # RFC 3748 5.3.2: an Expanded Request is refused with an Expanded Nak.
            data = encode_expanded_nak([ExpandedType(0, t) for t in desired])
            return EapResponse(pkt.identifier, EapType.EXPANDED, data).to_bytes()
        return EapResponse(pkt.identifier, EapType.NAK, encode_nak(desired)).to_bytes()

    def _run_method(self, pkt: EapRequest) -> bytes | None:
        method = self._method
        assert method is not None
        name = type_name(self._method_type)
        if isinstance(method, IdentifierAware):
            method.set_identifier(pkt.identifier)
        try:
            step = method.receive(pkt.type_data)
        except Exception as exc:  # malformed method data or a method bug
            log.warning("%s raised on a Request", name, exc_info=True)
            self._fail(f"{name} error: {exc}")
            return None
        if step.decision is Decision.SUCCESS:
            self._events.append(MethodCompleted(self._method_type, True))
            if not (self._completed and self._completed[-1] == self._method_type
                    and self._state is PeerState.METHOD_DONE):
                self._completed.append(self._method_type)
            if self._msk is None:
                self._msk = method.msk()
                self._emsk = method.emsk()
            self._set_state(PeerState.METHOD_DONE)
        elif step.decision is Decision.FAILURE:
            reason = method.failure_reason or f"{name} failed"
            self._failure_reason = reason
            self._events.append(MethodCompleted(self._method_type, False, reason))
            if step.reply is None:
                # Nothing left to say: no EAP-Success can be accepted any more.
                self._fail(reason)
                return None
            self._set_state(PeerState.METHOD_FAILED)
        if step.reply is None:
            return None
        return EapResponse(pkt.identifier, self._method_type, step.reply).to_bytes()

    def _fail(self, reason: str) -> None:
        self._failure_reason = reason
        self._deadline = None
        self._events.append(AuthenticationFailed(reason))
        log.info("EAP authentication failed: %s", reason)
        self._set_state(PeerState.FAILURE)
