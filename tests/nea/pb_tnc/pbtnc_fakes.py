"""Fake posture validators/collectors and a back-to-back wiring for the PB-TNC engine tests."""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nea.pb_tnc import (
    ActionRecommendation,
    AssessmentResult,
    ConnectionState,
    OutboundPa,
    PbPa,
    Tncc,
    Tncs,
    ValidatorRecommendation,
)

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
VECTORS = SHARED / "vectors"
PB_TNC_CORPUS = VECTORS / "strongswan-pb_tnc"
TRANSCRIPTS = VECTORS / "strongswan-transcripts"

PEN_ITA = 0x00902A
ITA_COMMAND = 1  # ITA-HSR PA-TNC attribute "Command" (strongSwan's Test IMC)
PA_SUBTYPE_TESTING = (PEN_ITA, 1)  # the Test IMC/IMV PA message type (vendor ITA, subtype 1)

VERDICTS: dict[str, tuple[ActionRecommendation, AssessmentResult]] = {
    "allow": (ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT),
    "isolate": (ActionRecommendation.ISOLATE, AssessmentResult.NONCOMPLIANT_MINOR),
    "block": (ActionRecommendation.NO_ACCESS, AssessmentResult.NONCOMPLIANT_MAJOR),
    "retry": (ActionRecommendation.ALLOW, AssessmentResult.DONT_KNOW),
}


def pa_attributes(body: bytes) -> list[tuple[int, int, bytes]]:
    """``(vendor, type, value)`` of each attribute of a PA-TNC message (RFC 5792 4.1/4.2).

    A deliberately tiny parser so these tests do not depend on ``nea.pa``.
    """
    out = []
    offset = 8  # version, reserved, message identifier
    while offset + 12 <= len(body):
        word, atype, length = struct.unpack_from(">III", body, offset)
        if length < 12 or offset + length > len(body):
            break
        out.append((word & 0xFFFFFF, atype, body[offset + 12 : offset + length]))
        offset += length
    return out


def pa_message(*attributes: tuple[int, int, bytes], msg_id: int = 1) -> bytes:
    body = bytes([1, 0, 0, 0]) + msg_id.to_bytes(4, "big")
    for vendor, atype, value in attributes:
        body += struct.pack(">III", vendor, atype, 12 + len(value)) + value
    return body


@dataclass
class FakeValidator:
    """Sends ``rounds`` PA messages (one per batch end) and then provides ``decision``.

    With ``provide=False`` it never decides by itself and must be solicited.
    """

    validator_id: int
    subscriptions: Collection[tuple[int, int]] = ((0, 1),)
    decision: ValidatorRecommendation = field(
        default_factory=lambda: ValidatorRecommendation(
            ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT
        )
    )
    rounds: int = 1
    provide: bool = True
    reply_size: int = 16
    burst: int = 1
    received: list[PbPa] = field(default_factory=list)
    states: list[ConnectionState] = field(default_factory=list)
    solicited: int = 0
    _round: int = 0

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None:
        self.states.append(state)
        if state == ConnectionState.HANDSHAKE:
            self._round = 0

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]:
        self.received.append(message)
        return []

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]:
        if self._round >= self.rounds:
            return []
        self._round += 1
        return [
            OutboundPa(0, 1, pa_message((0, 1, bytes([i]) * self.reply_size), msg_id=i))
            for i in range(self.burst)
        ]

    def provided_recommendation(self, conn_id: int) -> ValidatorRecommendation | None:
        if self.provide and self._round >= self.rounds:
            return self.decision
        return None

    def solicit_recommendation(self, conn_id: int) -> ValidatorRecommendation:
        self.solicited += 1
        return self.decision


@dataclass
class CommandValidator:
    """strongSwan's Test IMV in miniature: reads the ITA Command attribute ("allow",
    "isolate", "block", "retry") and recommends accordingly; "retry" costs an extra round."""

    validator_id: int = 1
    subscriptions: Collection[tuple[int, int]] = (PA_SUBTYPE_TESTING,)
    command: str | None = None
    states: list[ConnectionState] = field(default_factory=list)
    _pending_rounds: int = 0
    _rounds_done: int = 0
    _ready: bool = False

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None:
        self.states.append(state)
        if state == ConnectionState.HANDSHAKE:  # a new measurement cycle
            self.command, self._ready = None, False
            self._pending_rounds = self._rounds_done = 0

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]:
        for vendor, atype, value in pa_attributes(message.body):
            if (vendor, atype) == (PEN_ITA, ITA_COMMAND):
                self.command = value.decode()
                self._pending_rounds = 2 if self.command == "retry" else 1
        return []

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]:
        if self._rounds_done >= self._pending_rounds:
            # the client has answered our last message: we can decide
            self._ready = self.command is not None
            return []
        self._rounds_done += 1
        # an (empty) Attribute Request back to collector 1, EXCL as strongSwan's IMV does
        return [OutboundPa(PEN_ITA, 1, pa_message(), peer_id=1, exclusive=True)]

    def provided_recommendation(self, conn_id: int) -> ValidatorRecommendation | None:
        return self._decide() if self._ready else None

    def solicit_recommendation(self, conn_id: int) -> ValidatorRecommendation:
        return self._decide()

    def _decide(self) -> ValidatorRecommendation:
        rec, ev = VERDICTS.get(self.command or "", VERDICTS["block"])
        reasons = {} if self.command == "allow" else {"en": f"command = {self.command}"}
        return ValidatorRecommendation(rec, ev, reasons)


@dataclass
class FakeCollector:
    """Sends ``initial`` at handshake start and answers each received message with
    ``replies`` (popped in order)."""

    collector_id: int
    subscriptions: Collection[tuple[int, int]] = ((0xFFFFFF, 0xFF),)
    initial: list[OutboundPa] = field(default_factory=list)
    replies: list[OutboundPa] = field(default_factory=list)
    received: list[PbPa] = field(default_factory=list)
    states: list[ConnectionState] = field(default_factory=list)
    handshakes: int = 0

    def notify_connection_change(self, conn_id: int, state: ConnectionState) -> None:
        self.states.append(state)

    def begin_handshake(self, conn_id: int) -> Sequence[OutboundPa]:
        self.handshakes += 1
        return list(self.initial)

    def receive_message(self, conn_id: int, message: PbPa) -> Sequence[OutboundPa]:
        self.received.append(message)
        return [self.replies.pop(0)] if self.replies else []

    def batch_ending(self, conn_id: int) -> Sequence[OutboundPa]:
        return []


def command_collector(command: str, collector_id: int = 1) -> FakeCollector:
    body = pa_message((PEN_ITA, ITA_COMMAND, command.encode()))
    return FakeCollector(collector_id, initial=[OutboundPa(PEN_ITA, 1, body)])


@dataclass
class Wire:
    """A TNCC and a TNCS back to back; ``log`` records (direction, batch bytes)."""

    tncc: Tncc
    tncs: Tncs
    log: list[tuple[str, bytes]] = field(default_factory=list)

    def deliver(self, direction: str, batches: list[bytes], limit: int = 100) -> None:
        """Carry batches until both sides fall silent (ping-pong, half duplex)."""
        pending = [(direction, b) for b in batches]
        steps = 0
        while pending:
            steps += 1
            assert steps <= limit, "exchange does not terminate"
            d, data = pending.pop(0)
            self.log.append((d, data))
            if d == "c2s":
                pending.extend(("s2c", b) for b in self.tncs.receive_batch(data))
            else:
                pending.extend(("c2s", b) for b in self.tncc.receive_batch(data))

    def run(self) -> None:
        self.deliver("c2s", self.tncc.start())

    def types(self) -> list[str]:
        return [f"{d}-{_batch_type_name(b)}" for d, b in self.log]


def _batch_type_name(data: bytes) -> str:
    from nea.pb_tnc import BatchType

    return BatchType(data[3] & 0x0F).name
