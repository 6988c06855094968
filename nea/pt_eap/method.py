"""PT-EAP (RFC 7171) and EAP-TNC server/peer methods carrying PB-TNC batches.

The methods implement the EAP method contract of :mod:`ike.eap.method` (the only ``ike``
module ``nea`` may import) and run a PB-TNC engine handed in by the caller: a
:class:`~nea.pb_tnc.Tncs` on the server, a :class:`~nea.pb_tnc.Tncc` on the peer.  Each
received PB-TNC batch goes to the engine; what the engine answers goes back in the next
Request (server) or Response (peer).

Flow (PT-EAP, as strongSwan's eap-tnc plugin runs it inside EAP-TTLS)::

    server                                   peer
    Start (S, version 1, no data)     ->
                                      <-     CDATA (language preference, collectors' data)
    SDATA / RESULT                    ->
                                      <-     CDATA / CLOSE
    EAP-Success (not Denied) or EAP-Failure

The server decides once the PB-TNC exchange is over (the client's CLOSE, or an empty answer
after RESULT): SUCCESS when the access recommendation is Allowed or Quarantined, FAILURE for
Denied, for no recommendation at all, or for a PB-TNC error (RFC 7171 6, and strongSwan's
enforcement: "no access" fails the EAP).  The verdict stays readable for the gateway
(:attr:`PostureServerMethod.verdict`).  No keys: ``msk()`` is None, so an enclosing tunnel
method uses an all-zero ISK.

Version negotiation (RFC 7171 4.1): the server's Start carries the highest version it
supports; the peer answers with the highest version of its own that is not above it, and
every later message carries that version.  A server that does not support the peer's version,
or a peer that supports none at or below the offer, ends the conversation with failure.

EAP-TNC (type 38) runs the same engines with the TLS-style L/M/S framing of
:mod:`nea.pt_eap.fragments`; every fragment is acknowledged by an empty packet.

Every transition of both sides lives in one table per role, keyed by ``(state, input)``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ike.eap.method import Decision, PeerMethodFactory, ServerMethodFactory, Step
from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentDecided,
    AssessmentResult,
    Event,
    FatalErrorSent,
    PbErrorReceived,
    PbReasonString,
    PbRemediationParameters,
    PbTncState,
    ResultReceived,
    Tncc,
    Tncs,
)
from nea.pt_eap.errors import InvalidPacket, PtEapError, VersionMismatch
from nea.pt_eap.fragments import DEFAULT_MAX_MESSAGE, Reassembler, fragment
from nea.pt_eap.packet import (
    EAP_TNC_VERSION,
    MAX_TYPE_DATA,
    PT_EAP_VERSION,
    EapTncPacket,
    PostureEapType,
    PtEapPacket,
)

__all__ = [
    "DEFAULT_FRAGMENT_SIZE",
    "EapTncPeer",
    "EapTncServer",
    "PostureVerdict",
    "PtEapPeer",
    "PtEapServer",
    "eap_tnc_peer_factory",
    "eap_tnc_server_factory",
    "pt_eap_peer_factory",
    "pt_eap_server_factory",
]

log = logging.getLogger("nea.pt_eap")

DEFAULT_FRAGMENT_SIZE = 1024
"""EAP-TNC data octets per fragment (strongSwan's libtls fragment size)."""


@dataclass(frozen=True, slots=True)
class PostureVerdict:
    """The outcome of one PB-TNC assessment as the gateway needs it."""

    recommendation: AccessRecommendation | None
    """PB-Access-Recommendation (None: the server sent none, which means no access)."""
    evaluation: AssessmentResult | None
    reasons: tuple[PbReasonString, ...] = ()
    remediation: tuple[PbRemediationParameters, ...] = ()

    @property
    def grants_access(self) -> bool:
        """Allowed or Quarantined (isolate); Denied and no recommendation do not."""
        return self.recommendation in (
            AccessRecommendation.ALLOWED,
            AccessRecommendation.QUARANTINED,
        )


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True, slots=True)
class _Frame:
    """A received packet, framing-independent."""

    start: bool
    version: int
    more: bool
    data: bytes
    packet: PtEapPacket | EapTncPacket


class _In(enum.Enum):
    START = "start"
    ACK = "ack"
    """Empty data, no flags: nothing to say, or the acknowledgement of our fragment."""
    FRAGMENT = "fragment"
    """Data with M set: more fragments follow."""
    LAST = "last"
    """Data without M: a whole message or the last fragment."""


def _classify(frame: _Frame) -> _In:
    if frame.start:
        return _In.START
    if frame.more:
        return _In.FRAGMENT
    if not frame.data:
        return _In.ACK
    return _In.LAST


class _Framing:
    """PT-EAP framing: no fragmentation, S = 0x80."""

    eap_type = int(PostureEapType.PT_EAP)
    versions: tuple[int, ...] = (PT_EAP_VERSION,)

    def parse(self, type_data: bytes) -> _Frame:
        pkt = PtEapPacket.parse(type_data)
        return _Frame(pkt.start, pkt.version, False, pkt.data, pkt)

    def start(self, version: int) -> bytes:
        return PtEapPacket(start=True, version=version).encode()

    def packets(self, message: bytes, version: int) -> list[bytes]:
        if 1 + len(message) > MAX_TYPE_DATA:
            raise PtEapError(
                f"PB-TNC batch of {len(message)} bytes does not fit one EAP packet "
                "(PT-EAP does not fragment; lower max_batch_size)"
            )
        return [PtEapPacket(message, version=version).encode()]

    def empty(self, version: int) -> bytes:
        return PtEapPacket(version=version).encode()

    def reassemble(self, frame: _Frame) -> bytes | None:
        return frame.data

    @property
    def reassembling(self) -> bool:
        return False


class _TncFraming(_Framing):
    """EAP-TNC framing: L/M/S flags, fragments acknowledged by empty packets."""

    eap_type = int(PostureEapType.EAP_TNC)
    versions = (EAP_TNC_VERSION,)

    def __init__(self, fragment_size: int, max_message: int, include_length: bool) -> None:
        if not 1 <= fragment_size <= MAX_TYPE_DATA - 5:
            raise ValueError(f"fragment_size {fragment_size} out of range")
        self.fragment_size = fragment_size
        self.include_length = include_length
        self._reassembler = Reassembler(max_message)

    def parse(self, type_data: bytes) -> _Frame:
        pkt = EapTncPacket.parse(type_data)
        return _Frame(pkt.start, pkt.version, pkt.more, pkt.data, pkt)

    def start(self, version: int) -> bytes:
        return EapTncPacket(start=True, version=version).encode()

    def packets(self, message: bytes, version: int) -> list[bytes]:
        return [
            p.encode()
            for p in fragment(
                message, self.fragment_size, version=version, include_length=self.include_length
            )
        ]

    def empty(self, version: int) -> bytes:
        return EapTncPacket(version=version).encode()

    def reassemble(self, frame: _Frame) -> bytes | None:
        assert isinstance(frame.packet, EapTncPacket)
        return self._reassembler.feed(frame.packet)

    @property
    def reassembling(self) -> bool:
        return self._reassembler.in_progress


# --------------------------------------------------------------------------- common part


class _State(enum.Enum):
    IDLE = "idle"
    """Server: Start not sent yet.  Peer: waiting for the Start."""
    WAITING = "waiting"
    """Our whole message is out; the next packet carries the other side's message."""
    SENDING = "sending"
    """A fragment of ours is out; the other side must acknowledge it."""
    RECEIVING = "receiving"
    """We acknowledged a fragment; more of the other side's message is coming."""
    DONE = "done"


_Handler = Callable[[Any, _Frame], Step]
"""A transition; the first argument is the method (server or peer)."""


class _PostureMethod:
    """What server and peer share: framing, version, outgoing queue, verdict, events."""

    _framing: _Framing
    _TRANSITIONS: dict[tuple[_State, _In], _Handler]

    def __init__(self, versions: Sequence[int] | None) -> None:
        if versions is not None:
            if not versions or any(not 1 <= v <= 7 for v in versions):
                raise ValueError("versions must be a non-empty set of 1..7")
            self._versions = tuple(sorted(set(versions)))
        else:
            self._versions = self._framing.versions
        self._state = _State.IDLE
        self._version: int | None = None
        self._outgoing: list[bytes] = []
        self._events: list[Event] = []
        self._failure_reason: str | None = None
        self._verdict: PostureVerdict | None = None
        self._errors: list[str] = []

    # ---- contract

    @property
    def eap_type(self) -> int:
        return self._framing.eap_type

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason

    # ---- results for the gateway

    @property
    def version(self) -> int | None:
        """The negotiated PT-EAP / EAP-TNC version."""
        return self._version

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def verdict(self) -> PostureVerdict | None:
        """The assessment's outcome, once the RESULT batch went out (server) / came in (peer)."""
        return self._verdict

    @property
    def recommendation(self) -> AccessRecommendation | None:
        return self._verdict.recommendation if self._verdict else None

    @property
    def evaluation(self) -> AssessmentResult | None:
        return self._verdict.evaluation if self._verdict else None

    @property
    def reasons(self) -> tuple[PbReasonString, ...]:
        return self._verdict.reasons if self._verdict else ()

    @property
    def remediation(self) -> tuple[PbRemediationParameters, ...]:
        return self._verdict.remediation if self._verdict else ()

    @property
    def pb_tnc_events(self) -> list[Event]:
        """Every PB-TNC engine event so far, oldest first (the method drains the engine)."""
        return self._events

    # ---- driving

    def receive(self, type_data: bytes) -> Step:
        if self._state is _State.DONE:
            return self._fail("packet after the method finished")
        try:
            frame = self._framing.parse(type_data)
            self._check_version(frame)
            handler = self._TRANSITIONS.get((self._state, _classify(frame)))
            if handler is None:
                return self._fail(
                    f"{_classify(frame).value} packet not expected in state {self._state.value}"
                )
            return handler(self, frame)
        except PtEapError as exc:
            return self._fail(exc.reason)

    def _check_version(self, frame: _Frame) -> None:
        raise NotImplementedError

    # ---- helpers

    def _set_state(self, new: _State) -> None:
        if new is not self._state:
            log.debug("%s %s -> %s", type(self).__name__, self._state.value, new.value)
            self._state = new

    def _queue(self, batches: Sequence[bytes]) -> None:
        assert self._version is not None
        for batch in batches:
            self._outgoing.extend(self._framing.packets(batch, self._version))

    def _next_packet(self) -> bytes:
        """The next queued packet (fragment), or an empty packet when nothing is queued."""
        assert self._version is not None
        if self._outgoing:
            packet = self._outgoing.pop(0)
            frame = self._framing.parse(packet)
            self._set_state(_State.SENDING if frame.more else _State.WAITING)
            return packet
        self._set_state(_State.WAITING)
        return self._framing.empty(self._version)

    def _ack(self, frame: _Frame) -> Step:
        """Acknowledge a fragment of the other side's message."""
        assert self._version is not None
        self._framing.reassemble(frame)
        self._set_state(_State.RECEIVING)
        return Step(self._framing.empty(self._version))

    def _on_fragment_ack(self, frame: _Frame) -> Step:
        return self._continue_sending()

    def _continue_sending(self) -> Step:
        raise NotImplementedError

    def _drain(self, engine: Tncs | Tncc) -> None:
        for event in engine.events():
            self._events.append(event)
            if isinstance(event, AssessmentDecided):
                remediation = tuple(
                    r for _, rec in event.per_validator for r in rec.remediation
                )
                self._verdict = PostureVerdict(
                    event.recommendation, event.evaluation, event.reasons, remediation
                )
            elif isinstance(event, ResultReceived):
                self._verdict = PostureVerdict(
                    event.recommendation, event.evaluation, event.reasons, event.remediation
                )
            elif isinstance(event, FatalErrorSent):
                self._errors.append(f"sent PB-Error: {event.error.reason}")
            elif isinstance(event, PbErrorReceived) and event.error.fatal:
                self._errors.append(
                    f"peer sent PB-Error code {event.error.error_code}"
                    + (f" at offset {event.error.offset}" if event.error.offset is not None else "")
                )

    def _outcome_reason(self) -> str:
        if self._errors:
            return "PB-TNC failed: " + "; ".join(self._errors)
        verdict = self._verdict
        if verdict is None or verdict.recommendation is None:
            return "PB-TNC ended without an access recommendation"
        ev = verdict.evaluation.name if verdict.evaluation is not None else "none"
        why = "; ".join(r.reason for r in verdict.reasons)
        return (
            f"posture assessment denies access (recommendation {verdict.recommendation.name}, "
            f"evaluation {ev}{': ' + why if why else ''})"
        )

    def _fail(self, reason: str, reply: bytes | None = None) -> Step:
        self._failure_reason = reason
        log.info("%s failed: %s", type(self).__name__, reason)
        self._set_state(_State.DONE)
        return Step(reply, Decision.FAILURE)


# --------------------------------------------------------------------------- server


class PostureServerMethod(_PostureMethod):
    """Authenticator side: runs the TNCS.  See the module docstring for the rules."""

    def __init__(self, tncs: Tncs, *, versions: Sequence[int] | None = None) -> None:
        super().__init__(versions)
        self.tncs = tncs

    def start(self) -> bytes:
        if self._state is not _State.IDLE:
            raise PtEapError(f"start() in state {self._state.value}")
        self._set_state(_State.WAITING)
        return self._framing.start(self._versions[-1])

    def _check_version(self, frame: _Frame) -> None:
        if self._version is None:
            offered = self._versions[-1]
            if frame.version > offered or frame.version not in self._versions:
                raise VersionMismatch(
                    f"peer answered with version {frame.version}; we support "
                    f"{list(self._versions)} and offered {offered}"
                )
            self._version = frame.version
        elif frame.version != self._version:
            raise VersionMismatch(
                f"version {frame.version} after version {self._version} was negotiated"
            )

    def _on_start(self, frame: _Frame) -> Step:
        raise InvalidPacket("the peer sent a Start message", offset=0)

    def _on_message(self, frame: _Frame) -> Step:
        data = self._framing.reassemble(frame)
        assert data is not None
        if data:
            self._queue(self.tncs.receive_batch(data))
            self._drain(self.tncs)
        elif self.tncs.state not in (PbTncState.DECIDED, PbTncState.END):
            return self._fail(
                f"peer answered without a PB-TNC batch in PB-TNC state {self.tncs.state.value}"
            )
        return self._continue_sending()

    def _continue_sending(self) -> Step:
        if self._outgoing:
            return Step(self._next_packet())
        return self._finish()

    def _finish(self) -> Step:
        if self.tncs.state not in (PbTncState.DECIDED, PbTncState.END):
            return self._fail(
                f"PB-TNC server had nothing to send in state {self.tncs.state.value}"
            )
        if self._verdict is not None and self._verdict.grants_access and not self._errors:
            self._set_state(_State.DONE)
            log.info(
                "posture assessment: %s / %s",
                self._verdict.recommendation.name if self._verdict.recommendation else "-",
                self._verdict.evaluation.name if self._verdict.evaluation else "-",
            )
            return Step(None, Decision.SUCCESS)
        return self._fail(self._outcome_reason())

    _TRANSITIONS: dict[tuple[_State, _In], _Handler] = {
        (_State.WAITING, _In.LAST): _on_message,
        (_State.WAITING, _In.ACK): _on_message,
        (_State.WAITING, _In.FRAGMENT): _PostureMethod._ack,
        (_State.RECEIVING, _In.FRAGMENT): _PostureMethod._ack,
        (_State.RECEIVING, _In.LAST): _on_message,
        (_State.SENDING, _In.ACK): _PostureMethod._on_fragment_ack,
        (_State.WAITING, _In.START): _on_start,
        (_State.SENDING, _In.START): _on_start,
        (_State.RECEIVING, _In.START): _on_start,
    }


# --------------------------------------------------------------------------- peer


class PosturePeerMethod(_PostureMethod):
    """Peer side: runs the TNCC."""

    def __init__(self, tncc: Tncc, *, versions: Sequence[int] | None = None) -> None:
        super().__init__(versions)
        self.tncc = tncc

    def _check_version(self, frame: _Frame) -> None:
        if self._version is None:
            if not frame.start:
                raise InvalidPacket("first packet is not a Start message", offset=0)
            usable = [v for v in self._versions if v <= frame.version]
            if not usable:
                # Answer with our lowest version so the server sees why, then give up.
                self._version = self._versions[0]
                raise VersionMismatch(
                    f"server offers version {frame.version}; we support {list(self._versions)}"
                )
            self._version = usable[-1]
        elif frame.version != self._version:
            raise VersionMismatch(
                f"version {frame.version} after version {self._version} was negotiated"
            )

    def receive(self, type_data: bytes) -> Step:
        step = super().receive(type_data)
        if step.decision is Decision.FAILURE and step.reply is None and self._version is not None:
            # Always answer: the server learns of the failure and ends with EAP-Failure.
            return Step(self._framing.empty(self._version), Decision.FAILURE)
        return step

    def _on_start(self, frame: _Frame) -> Step:
        if frame.more:
            return self._ack(frame)  # the server speaks first, in fragments
        if frame.data:
            data = self._framing.reassemble(frame)
            assert data is not None  # no M flag: the message is complete
            self._queue(self.tncc.receive_batch(data))  # the server spoke first
        else:
            self._queue(self.tncc.start())
        self._drain(self.tncc)
        return self._continue_sending()

    def _on_second_start(self, frame: _Frame) -> Step:
        raise InvalidPacket("a second Start message", offset=0)

    def _on_message(self, frame: _Frame) -> Step:
        data = self._framing.reassemble(frame)
        assert data is not None
        self._queue(self.tncc.receive_batch(data))
        self._drain(self.tncc)
        return self._continue_sending()

    def _on_empty(self, frame: _Frame) -> Step:
        # The server had nothing to say: answer with what is queued, or nothing.
        return self._continue_sending()

    def _continue_sending(self) -> Step:
        packet = self._next_packet()
        if self._state is _State.SENDING:
            return Step(packet)  # fragments remain: never decide before the last one
        ended = self.tncc.state is PbTncState.END
        decided = self.tncc.state is PbTncState.DECIDED and self._verdict is not None
        if not (ended or decided):
            return Step(packet)
        if self._verdict is not None and self._verdict.grants_access and not self._errors:
            self._set_state(_State.DONE)
            return Step(packet, Decision.SUCCESS)
        return self._fail(self._outcome_reason(), packet)

    _TRANSITIONS: dict[tuple[_State, _In], _Handler] = {
        (_State.IDLE, _In.START): _on_start,
        (_State.WAITING, _In.LAST): _on_message,
        (_State.WAITING, _In.ACK): _on_empty,
        (_State.WAITING, _In.FRAGMENT): _PostureMethod._ack,
        (_State.RECEIVING, _In.FRAGMENT): _PostureMethod._ack,
        (_State.RECEIVING, _In.LAST): _on_message,
        (_State.SENDING, _In.ACK): _PostureMethod._on_fragment_ack,
        (_State.WAITING, _In.START): _on_second_start,
        (_State.SENDING, _In.START): _on_second_start,
        (_State.RECEIVING, _In.START): _on_second_start,
    }


# --------------------------------------------------------------------------- concrete methods


class PtEapServer(PostureServerMethod):
    """PT-EAP (EAP type 54) server method running ``tncs``."""

    def __init__(self, tncs: Tncs, *, versions: Sequence[int] | None = None) -> None:
        self._framing = _Framing()
        super().__init__(tncs, versions=versions)


class PtEapPeer(PosturePeerMethod):
    """PT-EAP (EAP type 54) peer method running ``tncc``."""

    def __init__(self, tncc: Tncc, *, versions: Sequence[int] | None = None) -> None:
        self._framing = _Framing()
        super().__init__(tncc, versions=versions)


class EapTncServer(PostureServerMethod):
    """Legacy TCG EAP-TNC (EAP type 38) server method running ``tncs`` (PB-TNC batches)."""

    def __init__(
        self,
        tncs: Tncs,
        *,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        max_message: int = DEFAULT_MAX_MESSAGE,
        include_length: bool = False,
    ) -> None:
        self._framing = _TncFraming(fragment_size, max_message, include_length)
        super().__init__(tncs)


class EapTncPeer(PosturePeerMethod):
    """Legacy TCG EAP-TNC (EAP type 38) peer method running ``tncc``."""

    def __init__(
        self,
        tncc: Tncc,
        *,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        max_message: int = DEFAULT_MAX_MESSAGE,
        include_length: bool = False,
    ) -> None:
        self._framing = _TncFraming(fragment_size, max_message, include_length)
        super().__init__(tncc)


def pt_eap_server_factory(make_tncs: Callable[[bytes], Tncs]) -> ServerMethodFactory:
    """A ``ServerMethodFactory`` for the EAP server / tunnel methods: ``make_tncs(identity)``
    builds a fresh TNCS (with the gateway's validators) per conversation."""

    def factory(identity: bytes) -> PtEapServer:
        return PtEapServer(make_tncs(identity))

    return factory


def pt_eap_peer_factory(make_tncc: Callable[[], Tncc]) -> PeerMethodFactory:
    def factory() -> PtEapPeer:
        return PtEapPeer(make_tncc())

    return factory


def eap_tnc_server_factory(make_tncs: Callable[[bytes], Tncs]) -> ServerMethodFactory:
    def factory(identity: bytes) -> EapTncServer:
        return EapTncServer(make_tncs(identity))

    return factory


def eap_tnc_peer_factory(make_tncc: Callable[[], Tncc]) -> PeerMethodFactory:
    def factory() -> EapTncPeer:
        return EapTncPeer(make_tncc())

    return factory
