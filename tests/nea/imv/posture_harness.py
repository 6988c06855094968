"""Back-to-back TNCC <-> TNCS helpers for the posture tests (no sockets, fake clock)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from nea.imc import HostCollector, HostFacts, build_collectors
from nea.imv import MemoryEvidenceSink, MemorySwimaStore, PolicyEngine, build_validators
from nea.imv.base import PolicyValidator
from nea.pb_tnc import PbTncConfig, Tncc, Tncs, decode_batch
from nea.policy import PolicyConfig, parse_policy


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def pump(tncc: Tncc, tncs: Tncs, c2s: Sequence[bytes], log: list[tuple[str, int]]) -> None:
    """Deliver batches back and forth until both sides are quiet."""
    to_server = list(c2s)
    while to_server:
        to_client: list[bytes] = []
        for b in to_server:
            log.append(("c2s", int(decode_batch(b).batch_type)))
            to_client += tncs.receive_batch(b)
        to_server = []
        for b in to_client:
            log.append(("s2c", int(decode_batch(b).batch_type)))
            to_server += tncc.receive_batch(b)


@dataclass
class Gateway:
    """The validator side of a gateway: engine, validators, sink, store."""

    policy: PolicyConfig
    clock: FakeClock = field(default_factory=FakeClock)
    sink: MemoryEvidenceSink = field(default_factory=MemoryEvidenceSink)
    store: MemorySwimaStore = field(default_factory=MemorySwimaStore)

    def __post_init__(self) -> None:
        self.engine = PolicyEngine(self.policy, clock=self.clock, sink=self.sink)
        self.validators: list[PolicyValidator] = build_validators(
            self.engine, swima_store=self.store
        )
        self.tncs: dict[int, Tncs] = {}

    def server(self, conn_id: int, identity: str | None = None,
               config: PbTncConfig | None = None) -> Tncs:
        self.engine.open_connection(conn_id, identity)
        tncs = Tncs(self.validators, connection_id=conn_id, config=config)
        self.tncs[conn_id] = tncs
        return tncs


@dataclass
class Assessment:
    tncc: Tncc
    tncs: Tncs
    collectors: list[HostCollector]
    log: list[tuple[str, int]]


def assess(
    gw: Gateway, facts: HostFacts, conn_id: int = 1, identity: str | None = "carol@example.com",
    *, keep_open: bool = False,
) -> Assessment:
    collectors = build_collectors(facts)
    tncc = Tncc(collectors, connection_id=conn_id,
                config=PbTncConfig(close_after_result=not keep_open))
    tncs = gw.server(conn_id, identity)
    log: list[tuple[str, int]] = []
    pump(tncc, tncs, tncc.start(), log)
    return Assessment(tncc, tncs, collectors, log)


def policy(text: str) -> PolicyConfig:
    return parse_policy(text, "test-policy.toml")
