"""Shared drivers for the TLS-based methods: framing + TLS session + failure handling.

A method (EAP-TLS, TTLS, PEAP) is a driver plus a few hooks.  The driver owns the
:class:`~ike.eap_tls.framing.Framing` and the :class:`~ike.eap_tls.tls.TlsSession`, answers
fragment ACKs by itself, turns framing and TLS errors into ``Decision.FAILURE`` with a
``failure_reason``, and after the handshake hands decrypted application data to the method.

Phases (one table, :data:`TRANSITIONS`; every change goes through ``_set_state``)::

    IDLE -> HANDSHAKE -> TUNNEL -> DONE
                 \\-----------\\-------\\--> FAILED   (a message after DONE fails too)
"""

from __future__ import annotations

import enum
import logging

from ike.eap.method import Decision, Step
from ike.eap_tls.errors import FramingError, TlsEapError, TlsFailure
from ike.eap_tls.framing import Framing, Message, Reply
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsSession

__all__ = ["Phase", "TlsPeerDriver", "TlsServerDriver"]

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    IDLE = "idle"
    HANDSHAKE = "handshake"
    TUNNEL = "tunnel"
    """Handshake done; the method's own exchange (success indication, phase 2) runs."""
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.HANDSHAKE, Phase.FAILED}),
    Phase.HANDSHAKE: frozenset({Phase.TUNNEL, Phase.FAILED}),
    Phase.TUNNEL: frozenset({Phase.DONE, Phase.FAILED}),
    Phase.DONE: frozenset({Phase.FAILED}),
    Phase.FAILED: frozenset(),
}


class _DriverBase:
    method_name: str = "TLS"
    success_is_final: bool = True
    """Peer: SUCCESS ends the method.  TTLS peers say SUCCESS once their inner
    authentication is done but must keep answering (the server may chain PT-EAP)."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.phase = Phase.IDLE
        self._failure_reason: str | None = None
        self._pending_decision: Decision | None = None
        self._tls: TlsSession | None = None

    @property
    def tls(self) -> TlsSession:
        if self._tls is None:
            raise TlsEapError("TLS session not started")
        return self._tls

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason

    def _set_state(self, new: Phase) -> None:
        if new is self.phase:
            return
        if new not in TRANSITIONS[self.phase]:
            raise TlsEapError(f"illegal phase change {self.phase.value} -> {new.value}")
        log.debug(
            "%s %s: %s -> %s", self.method_name, type(self).__name__, self.phase.value, new.value
        )
        self.phase = new

    def _fail(self, reason: str, reply: bytes | None = None) -> Step:
        if self._failure_reason is None:
            self._failure_reason = reason
        log.warning("%s failed: %s", self.method_name, self._failure_reason)
        if self.phase is not Phase.FAILED:
            self._set_state(Phase.FAILED)
        self._forget_keys()
        return Step(reply, Decision.FAILURE)

    def _forget_keys(self) -> None:
        """A failed method exports no keys (subclasses drop what they derived)."""

    def _frame(self, out: bytes, decision: Decision = Decision.CONTINUE) -> Step:
        """Frame TLS bytes; a final decision waits until the last fragment went out."""
        first = self.framing.send(out)
        if self.framing.sending and decision is not Decision.CONTINUE:
            self._pending_decision = decision
            return Step(first, Decision.CONTINUE)
        return Step(first, decision)

    def _framing_step(self, type_data: bytes) -> Step | Message:
        if self.phase in (Phase.DONE, Phase.FAILED):
            return self._fail(f"{self.method_name}: message after the method ended")
        try:
            incoming = self.framing.receive(type_data)
        except FramingError as exc:
            return self._fail(f"{self.method_name} framing error: {exc}")
        if isinstance(incoming, Reply):
            decision = Decision.CONTINUE
            if not self.framing.sending and self._pending_decision is not None:
                decision, self._pending_decision = self._pending_decision, None
                if decision is Decision.SUCCESS and self.success_is_final:
                    self._set_state(Phase.DONE)
            return Step(incoming.type_data, decision)
        return incoming

    def _tls_failure(self, exc: TlsFailure, *, ack: bool) -> Step:
        """The TLS engine failed: send its alert if it queued one."""
        out = self.tls.data_to_send()
        reply: bytes | None = None
        if out:
            try:
                reply = self.framing.send(out)
            except FramingError:
                reply = None
        elif ack:
            reply = self.framing.ack()
        return self._fail(self.tls.failure_reason or exc.reason, reply)


class TlsServerDriver(_DriverBase):
    """Server half.  Subclasses implement :meth:`_handshake_done` and :meth:`_tunnel`."""

    def __init__(self, config: TlsServerConfig, identity: bytes, *, version: int = 0) -> None:
        super().__init__(
            Framing(
                version=version,
                fragment_size=config.fragment_size,
                max_message=config.max_message,
                length_always=config.length_always,
            )
        )
        self.config = config
        self.identity = identity
        # RFC 3748 5.1: some peers append a NUL and options to the identity.
        self._identity_text = identity.split(b"\x00", 1)[0].decode("utf-8", "replace")

    def start(self) -> bytes:
        self._tls = TlsSession(self.config, identity=self._identity_text)
        self._set_state(Phase.HANDSHAKE)
        return self._start_data()

    def _start_data(self) -> bytes:
        return self.framing.start()

    def receive(self, type_data: bytes) -> Step:
        if self.phase is Phase.IDLE:
            return self._fail(f"{self.method_name}: response before start()")
        got = self._framing_step(type_data)
        if isinstance(got, Step):
            return got
        if self.phase is Phase.HANDSHAKE:
            return self._handshake_message(got)
        return self._tunnel_message(got)

    def _handshake_message(self, msg: Message) -> Step:
        if not msg.data:
            return self._fail(f"{self.method_name}: empty response during the TLS handshake")
        try:
            self.tls.receive(msg.data)
        except TlsFailure as exc:
            return self._tls_failure(exc, ack=False)
        if not self.tls.handshake_complete:
            out = self.tls.data_to_send()
            if not out:
                return self._fail(f"{self.method_name}: TLS produced nothing to send")
            return self._frame(out)
        self._set_state(Phase.TUNNEL)
        log.info(
            "%s handshake complete: %s %s%s",
            self.method_name,
            self.tls.version.name,
            self.tls.cipher_name(),
            " (resumed)" if self.tls.session_reused else "",
        )
        try:
            app = self.tls.read_application_data()
        except TlsFailure as exc:
            return self._tls_failure(exc, ack=False)
        return self._handshake_done(app)

    def _tunnel_message(self, msg: Message) -> Step:
        try:
            if msg.data:
                self.tls.receive(msg.data)
            app = self.tls.read_application_data()
        except TlsFailure as exc:
            return self._tls_failure(exc, ack=False)
        return self._tunnel(app, empty=not msg.data)

    # helpers for subclasses
    def _send(self, app_data: bytes = b"") -> Step:
        """Encrypt ``app_data`` (if any), flush TLS output, and send it (or an empty
        request when there is nothing)."""
        if app_data:
            self.tls.write_application_data(app_data)
        out = self.tls.data_to_send()
        if not out:
            return Step(self.framing.ack(), Decision.CONTINUE)
        return self._frame(out)

    def _succeed(self) -> Step:
        self._set_state(Phase.DONE)
        return Step(None, Decision.SUCCESS)

    # hooks
    def _handshake_done(self, app: bytes) -> Step:
        raise NotImplementedError

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        raise NotImplementedError


class TlsPeerDriver(_DriverBase):
    """Peer half.  Subclasses implement :meth:`_handshake_done` and :meth:`_tunnel`."""

    def __init__(self, config: TlsPeerConfig, *, version: int = 0) -> None:
        super().__init__(
            Framing(
                version=version,
                fragment_size=config.fragment_size,
                max_message=config.max_message,
                length_always=config.length_always,
            )
        )
        self.config = config

    def _accept_start(self, msg: Message) -> str | None:
        """Check the Start message (version negotiation); return a failure reason or None."""
        return None

    def receive(self, type_data: bytes) -> Step:
        got = self._framing_step(type_data)
        if isinstance(got, Step):
            return got
        msg = got
        if self.phase is Phase.IDLE:
            if not msg.start:
                return self._fail(f"{self.method_name}: first request without the S flag")
            problem = self._accept_start(msg)
            if problem is not None:
                return self._fail(problem, self.framing.ack())
            self._tls = TlsSession(self.config)
            self._set_state(Phase.HANDSHAKE)
            try:
                hello = self.tls.initiate()
            except TlsFailure as exc:
                return self._tls_failure(exc, ack=True)
            return self._frame(hello)
        if msg.start:
            return self._fail(f"{self.method_name}: unexpected Start in the middle of the method")
        if self.phase is Phase.HANDSHAKE:
            try:
                self.tls.receive(msg.data)
            except TlsFailure as exc:
                self.tls.forget_session()
                return self._tls_failure(exc, ack=True)
            if not self.tls.handshake_complete:
                out = self.tls.data_to_send()
                if not out:
                    return Step(self.framing.ack(), Decision.CONTINUE)
                return self._frame(out)
            self._set_state(Phase.TUNNEL)
            log.info(
                "%s handshake complete: %s %s%s",
                self.method_name,
                self.tls.version.name,
                self.tls.cipher_name(),
                " (resumed)" if self.tls.session_reused else "",
            )
            try:
                app = self.tls.read_application_data()
            except TlsFailure as exc:
                return self._tls_failure(exc, ack=True)
            return self._handshake_done(app)
        try:
            if msg.data:
                self.tls.receive(msg.data)
            app = self.tls.read_application_data()
        except TlsFailure as exc:
            return self._tls_failure(exc, ack=True)
        return self._tunnel(app, empty=not msg.data)

    def _send(self, app_data: bytes = b"", decision: Decision = Decision.CONTINUE) -> Step:
        if app_data:
            self.tls.write_application_data(app_data)
        out = self.tls.data_to_send()
        if decision is Decision.SUCCESS and not self.framing.sending:
            self.tls.remember_session()
        if not out:
            if decision is Decision.SUCCESS and self.success_is_final:
                self._set_state(Phase.DONE)
            return Step(self.framing.ack(), decision)
        step = self._frame(out, decision)
        if step.decision is Decision.SUCCESS and self.success_is_final:
            self._set_state(Phase.DONE)
        return step

    def _handshake_done(self, app: bytes) -> Step:
        raise NotImplementedError

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        raise NotImplementedError
