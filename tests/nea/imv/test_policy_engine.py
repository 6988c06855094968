"""PolicyEngine on its own: groups, applicable enforcements, reload, retries, records."""

from __future__ import annotations

import pytest

from nea.imc import HostFacts, build_collectors
from nea.imv import (
    EvidenceSink,
    MemoryEvidenceSink,
    NullEvidenceSink,
    PolicyEngine,
    build_validators,
)
from nea.pb_tnc import ActionRecommendation, ConnectionState, PostureCollector, PostureValidator
from nea.policy import parse_policy
from tests.nea.imv.posture_harness import FakeClock

POLICY = parse_policy(
    """
[groups.corp]
identities = ["*@corp.example"]
[groups.lab]
parent = "corp"
device_ids = ["lab-*"]
[groups.ubuntu]
products = ["Ubuntu *"]

[policies.fwd]
type = "FWDEN"
[policies.tel]
type = "TCPBL"
argument = "23"

[[enforcements]]
policy = "fwd"
group = "corp"
[[enforcements]]
policy = "fwd"
group = "lab"
rec_fail = "isolate"
[[enforcements]]
policy = "tel"
group = "ubuntu"
""",
    "engine.toml",
)


def engine(sink: EvidenceSink | None = None) -> PolicyEngine:
    return PolicyEngine(POLICY, clock=FakeClock(), sink=sink)


def test_protocols_are_satisfied() -> None:
    e = engine()
    assert all(isinstance(v, PostureValidator) for v in build_validators(e))
    assert all(isinstance(c, PostureCollector) for c in build_collectors(HostFacts()))
    assert isinstance(MemoryEvidenceSink(), EvidenceSink)
    assert isinstance(NullEvidenceSink(), EvidenceSink)
    with pytest.raises(ValueError, match="unknown validator 'av'"):
        build_validators(e, ["av"])


def test_groups_follow_facts_and_parents() -> None:
    e = engine()
    e.open_connection(1, "bob@corp.example")
    assert set(e.groups_of(1)) == {"default", "corp"}
    e.record_facts(1, device_id="lab-7", product="Ubuntu", version="24.04 x86_64")
    assert set(e.groups_of(1)) == {"default", "corp", "lab", "ubuntu"}
    applied = {a.policy.name: a for a in e.applicable(1)}
    # fwd is enforced on corp and lab: the deeper group's enforcement wins
    assert applied["fwd"].group == "lab"
    assert applied["fwd"].rec_fail is ActionRecommendation.ISOLATE
    assert applied["tel"].group == "ubuntu"
    assert [a.policy.name for a in e.applicable(1, {POLICY.policies["tel"].type})] == ["tel"]
    e.open_connection(2)
    assert e.groups_of(2) == ["default"] and e.applicable(2) == []
    e.open_connection(2, "eve@corp.example")  # identity bound after the TNCS was built
    assert e.identity(2) == "eve@corp.example"
    with pytest.raises(TypeError, match="colour"):
        e.record_facts(1, colour="red")


def test_reload_only_counts_live_changed_connections() -> None:
    e = engine()
    for cid, ident in ((1, "a@corp.example"), (2, "b@home.example"), (3, "c@corp.example")):
        e.open_connection(cid, ident)
        e.connection_changed(cid, ConnectionState.HANDSHAKE)
    e.connection_changed(3, ConnectionState.DELETE)
    changed = parse_policy(
        """
[groups.corp]
identities = ["*@corp.example"]
[policies.fwd]
type = "FWDEN"
rec_noresult = "isolate"
[[enforcements]]
policy = "fwd"
group = "corp"
"""
    )
    assert e.reload(changed) == {1}
    assert e.policy is changed
    assert e.reload(changed) == set()


def test_retry_requests_and_records() -> None:
    sink = MemoryEvidenceSink()
    e = engine(sink)
    e.open_connection(1, "a@corp.example")
    e.request_retry(99)  # unknown connection: ignored
    e.request_retry(1)
    assert e.take_retry_requests() == {1}
    e.connection_changed(1, ConnectionState.HANDSHAKE)
    e.connection_changed(1, ConnectionState.HANDSHAKE)  # every validator reports it
    e.record_facts(1, forwarding=1)
    e.record_facts(1, device_id="d", product=None)
    assert sink.facts == []
    e.flush_facts(1)
    e.flush_facts(1)
    assert [(f.forwarding, f.device_id, f.product) for f in sink.facts] == [(1, "d", None)]
    e.connection_changed(1, ConnectionState.ACCESS_ALLOWED)
    e.connection_changed(1, ConnectionState.ACCESS_ALLOWED)
    e.connection_changed(1, ConnectionState.DELETE)
    e.connection_changed(1, ConnectionState.DELETE)
    assert (len(sink.starts), len(sink.decisions), len(sink.ended)) == (1, 1, 1)
    assert sink.decisions[0].device_id == "d"
    e.request_retry(1)
    assert e.take_retry_requests() == set()
