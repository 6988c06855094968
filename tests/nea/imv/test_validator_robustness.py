"""Whatever PA messages arrive, validators and collectors never crash: they answer a PA-TNC
Error or ignore, and a solicited validator always decides (Hypothesis)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nea.imc import HostFacts, build_collectors
from nea.imv import ITA_TEST, OS, PORTS, SWIMA, PolicyEngine, build_validators
from nea.pa import (
    Attribute,
    AttributeEnvelope,
    AttributeRequest,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    InstalledPackages,
    ItaCommand,
    ItaDeviceId,
    MaxAttributeSizeRequest,
    NextSegment,
    NumericVersion,
    Package,
    PaMessage,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    RequestedAttribute,
    StringVersion,
    SwEvent,
    SwIdentifierEvents,
    SwIdentifierInventory,
    SwRecord,
)
from nea.pb_tnc import ConnectionState, PbPa, ValidatorRecommendation
from nea.policy import load_policy, parse_policy
from tests.nea.imv.posture_harness import FakeClock

POLICY = load_policy(Path(__file__).resolve().parents[3] / "examples" / "policy.toml")
EXTRA = parse_policy(
    (Path(__file__).resolve().parents[3] / "examples" / "policy.toml").read_text()
    + '\n[[enforcements]]\npolicy = "unknown-packages"\ngroup = "default"\n'
    + '\n[[enforcements]]\npolicy = "inventory"\ngroup = "default"\n'
)

text = st.text(max_size=12)
u32 = st.integers(0, 2**32 - 1)
record = st.tuples(u32, st.integers(0, 2**24 - 1), st.integers(0, 255), st.integers(0, 255),
                   text).map(lambda t: SwRecord(*t))
attrs: st.SearchStrategy[Attribute] = st.one_of(
    st.builds(ProductInformation, st.integers(0, 2**24 - 1), st.integers(0, 2**16 - 1), text),
    st.builds(StringVersion, text),
    st.builds(NumericVersion, u32, u32),
    st.builds(ForwardingEnabled, u32),
    st.builds(FactoryDefaultPasswordEnabled, u32),
    st.builds(ItaDeviceId, text),
    st.builds(ItaCommand, st.sampled_from(["allow", "isolate", "block", "retry", "x", ""])),
    st.lists(st.tuples(text, text), max_size=4).map(
        lambda ps: InstalledPackages(tuple(Package(n, v) for n, v in ps))),
    st.lists(st.tuples(st.booleans(), st.sampled_from([6, 17, 132]), st.integers(0, 65535)),
             max_size=4).map(lambda es: PortFilter(tuple(PortFilterEntry(*e) for e in es))),
    st.builds(MaxAttributeSizeRequest, st.integers(0, 70000), st.integers(0, 70000)),
    st.builds(NextSegment, st.integers(0, 3), st.sampled_from([0, 0x80])),
    st.lists(st.sampled_from([(0, 2), (0, 6), (0, 7), (0, 11), (0, 12), (0x902A, 8), (9, 9)]),
             max_size=3).map(lambda rs: AttributeRequest(
                 tuple(RequestedAttribute(v, t) for v, t in rs))),
    st.tuples(st.integers(0, 3), st.binary(max_size=30), st.sampled_from([0, 0x40, 0x80, 0xC0]))
    .map(lambda t: AttributeEnvelope(*t)),
    st.builds(SwIdentifierInventory, u32, u32, u32, st.lists(record, max_size=3).map(tuple)),
    st.builds(SwIdentifierEvents, u32, u32, u32, u32, st.lists(
        st.tuples(u32, st.integers(1, 3), record).map(
            lambda t: SwEvent(t[0], "2026-11-28T12:00:00Z", t[1], t[2])),
        max_size=3).map(tuple)),
)
bodies = st.one_of(
    st.lists(attrs, max_size=5).map(lambda a: PaMessage.create(a, 1).serialize()),
    st.binary(max_size=40),
)
message_types = st.sampled_from([OS, PORTS, SWIMA, ITA_TEST])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(message_types, bodies), max_size=4), min_size=1,
                max_size=3),
       st.booleans())
def test_validators_never_crash(rounds: list[list[tuple[tuple[int, int], bytes]]],
                                extra: bool) -> None:
    engine = PolicyEngine(EXTRA if extra else POLICY, clock=FakeClock())
    validators = build_validators(engine)
    for v in validators:
        v.notify_connection_change(1, ConnectionState.CREATE)
        v.notify_connection_change(1, ConnectionState.HANDSHAKE)
    for batch in rounds:
        for (vendor, subtype), body in batch:
            for v in validators:
                if (vendor, subtype) in v.subscriptions:
                    for out in v.receive_message(1, PbPa(vendor, subtype, 5, 0xFFFF, body)):
                        PaMessage.parse(out.body)
        for v in validators:
            for out in v.batch_ending(1):
                PaMessage.parse(out.body)
    for v in validators:
        rec = v.solicit_recommendation(1)
        assert isinstance(rec, ValidatorRecommendation)
        assert v.provided_recommendation(1) == rec
        v.notify_connection_change(1, ConnectionState.DELETE)
    assert engine.connections == frozenset()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(message_types, bodies), max_size=6))
def test_collectors_never_crash(messages: list[tuple[tuple[int, int], bytes]]) -> None:
    collectors = build_collectors(HostFacts("debian", "Debian", "12",
                                            packages=tuple((f"p{i}", "1") for i in range(60)),
                                            test_command="allow"))
    for c in collectors:
        c.notify_connection_change(1, ConnectionState.CREATE)
        c.notify_connection_change(1, ConnectionState.HANDSHAKE)
        c.begin_handshake(1)
    for (vendor, subtype), body in messages:
        for c in collectors:
            if (vendor, subtype) in c.subscriptions:
                for out in c.receive_message(1, PbPa(vendor, subtype, 0xFFFF, 3, body)):
                    PaMessage.parse(out.body)
