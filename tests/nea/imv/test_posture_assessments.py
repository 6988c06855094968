"""Full assessments over PB-TNC (Tncc <-> Tncs back to back): our collectors, reporting the
example endpoint profiles, against our validators enforcing examples/policy.toml."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gateway.endpoint import load_profile
from nea.imc import HostFacts, ReceivedRemediation, build_collectors, endpoint_report
from nea.imv import PolicyOutcome, PolicyResult
from nea.pa import (
    AttributeEnvelope,
    AttributeRequest,
    ForwardingEnabled,
    InstalledPackages,
    MaxAttributeSizeRequest,
    NextSegment,
    Package,
    PaErrorCode,
    PaMessage,
    PaTncErrorAttribute,
    ProductInformation,
    segment_attribute,
)
from nea.pb_tnc import (
    AccessRecommendation,
    ActionRecommendation,
    AssessmentResult,
    BatchType,
    ConnectionState,
    PbPa,
    PbTncConfig,
    Tncc,
    decode_batch,
)
from nea.policy import load_policy
from tests.nea.imv.posture_harness import Gateway, assess, policy, pump

ROOT = Path(__file__).resolve().parents[3]
PROFILES = ROOT / "examples" / "profiles"
POLICY = ROOT / "examples" / "policy.toml"

CDATA, SDATA, RESULT, CRETRY, SRETRY, CLOSE = (int(t) for t in (
    BatchType.CDATA, BatchType.SDATA, BatchType.RESULT, BatchType.CRETRY, BatchType.SRETRY,
    BatchType.CLOSE))


def gateway() -> Gateway:
    return Gateway(load_policy(POLICY))


def results(gw: Gateway) -> dict[str, PolicyResult]:
    return {r.policy: r for r in gw.sink.results}


def test_compliant() -> None:
    gw = gateway()
    a = assess(gw, load_profile(PROFILES / "compliant.toml"))
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.ALLOWED
    assert a.tncs.decision.evaluation is AssessmentResult.COMPLIANT
    assert a.tncc.result is not None
    assert a.tncc.result.recommendation is AccessRecommendation.ALLOWED
    res = results(gw)
    # Debian 12 laptop: default + debian groups; not a server
    assert set(res) == {"no-forwarding", "no-default-password", "supported-os", "no-telnet",
                        "no-tftp", "packages", "forbidden-software"}
    assert all(r.outcome is PolicyOutcome.PASSED for r in res.values())
    assert res["packages"].evidence["packages"] == 4
    assert res["packages"].group == "debian"
    assert res["no-forwarding"].identity == "carol@example.com"
    assert res["no-forwarding"].device_id == "0b6e2a4c8d1f4e7a9c3b5d7f9e1a3c5b"
    # the OS validator had to ask for the packages (Attribute Request), so: CDATA, SDATA,
    # CDATA with the packages, RESULT, CLOSE
    assert a.log[0] == ("c2s", CDATA) and a.log[-2:] == [("s2c", RESULT), ("c2s", CLOSE)]
    [decision] = gw.sink.decisions
    assert decision.access is AccessRecommendation.ALLOWED
    assert decision.per_validator["os"] == (ActionRecommendation.ALLOW,
                                            AssessmentResult.COMPLIANT)
    # every validator reports each state change; the engine passes each on once
    assert [s.retry for s in gw.sink.starts] == [False]
    assert [cid for cid, _ in gw.sink.ended] == [1]
    assert gw.engine.connections == frozenset()
    # facts records are partial (one per attribute learnt); a sink merges them
    product = next(f for f in gw.sink.facts if f.product is not None)
    assert (product.product, product.product_vendor_id) == ("Debian", 9586)
    assert any(f.version == "12 x86_64" for f in gw.sink.facts)
    packages = next(f for f in gw.sink.facts if f.packages is not None)
    assert packages.packages is not None and ("openssl", "3.0.15-1~deb12u1") in packages.packages


def test_forwarding_is_isolated_with_remediation() -> None:
    gw = gateway()
    a = assess(gw, load_profile(PROFILES / "forwarding.toml"))
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    assert a.tncs.decision.evaluation is AssessmentResult.NONCOMPLIANT_MINOR
    r = results(gw)["no-forwarding"]
    assert r.outcome is PolicyOutcome.FAILED and r.evidence == {"forwarding": 1}
    assert r.remediation == ("Disable IP forwarding: sysctl -w net.ipv4.ip_forward=0",)
    report = endpoint_report(a.tncc.result, a.collectors, 1)
    assert report.access is AccessRecommendation.QUARANTINED
    assert ("en", "IP forwarding is enabled") in report.reasons
    assert ReceivedRemediation("os", 3, None, r.remediation[0], "en") in report.remediation
    assert ("os", 3, int(AssessmentResult.NONCOMPLIANT_MINOR)) in report.assessments
    assert [x.policy for x in gw.sink.remediations] == ["no-forwarding"]


def test_forbidden_package() -> None:
    gw = gateway()
    a = assess(gw, load_profile(PROFILES / "forbidden-package.toml"))
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    res = results(gw)
    assert res["packages"].outcome is PolicyOutcome.FAILED
    assert res["packages"].evidence["blacklisted"] == [["openssl", "3.0.9-1"]]
    assert res["forbidden-software"].outcome is PolicyOutcome.FAILED
    assert res["forbidden-software"].evidence["found"] == [
        "regid.2026-11.org.nea-gateway__debian-telnetd-0.17+2.4-2"
    ]
    # evidence is plain JSON for the evidence database
    assert json.loads(json.dumps([r.evidence for r in gw.sink.results]))
    # one result per enforced policy per handshake
    assert len(gw.sink.results) == len(res)
    # the SWIMA inventory is stored per device
    stored = gw.store.get("2d8a4c6e0f3b5d7a9c1e3f5b7d9a1c3e")
    assert stored is not None and len(stored.software) == 5


def test_forbidden_port_is_blocked() -> None:
    gw = gateway()
    a = assess(gw, load_profile(PROFILES / "forbidden-port.toml"))
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.DENIED
    assert a.tncs.decision.evaluation is AssessmentResult.NONCOMPLIANT_MAJOR
    r = results(gw)["no-telnet"]
    assert r.outcome is PolicyOutcome.FAILED and r.evidence["violations"] == [23]
    assert r.validator == "ports"


def test_outdated_os() -> None:
    gw = gateway()
    a = assess(gw, load_profile(PROFILES / "outdated-os.toml"))
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    res = results(gw)
    assert res["supported-os"].outcome is PolicyOutcome.FAILED
    assert res["supported-os"].evidence == {"os": "Debian 10 x86_64", "version": [10, 0, 0],
                                            "minimum": [12]}
    # no package table for Debian 10: no result, rec_noresult (allow) applies
    assert res["packages"].outcome is PolicyOutcome.NO_RESULT
    assert res["packages"].recommendation is ActionRecommendation.ALLOW
    report = endpoint_report(a.tncc.result, a.collectors, 1)
    assert ReceivedRemediation("os", 3, "https://intranet.example.com/howto/upgrade-os") in (
        report.remediation)
    assert ReceivedRemediation("broker", 0, "https://intranet.example.com/howto/upgrade-os") in (
        report.remediation)


def test_server_group_inherits_and_overrides() -> None:
    gw = gateway()
    facts = dataclasses.replace(load_profile(PROFILES / "forwarding.toml"),
                                listening=((6, 22), (6, 8080)))
    a = assess(gw, facts, identity="web1.servers.example.com")
    res = results(gw)
    # the servers group overrides no-forwarding's rec_fail with block; server-ports applies
    assert res["no-forwarding"].group == "servers"
    assert res["no-forwarding"].recommendation is ActionRecommendation.NO_ACCESS
    assert res["server-ports"].outcome is PolicyOutcome.FAILED
    assert res["server-ports"].evidence["violations"] == [8080]
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.DENIED


def test_missing_attribute_gives_rec_noresult() -> None:
    gw = Gateway(policy(
        '[policies.pw]\ntype = "PWDEN"\nrec_noresult = "isolate"\n'
        '[[enforcements]]\npolicy = "pw"\n'
    ))
    facts = HostFacts("debian", "Debian", "12", default_password=None, device_id="d1")
    a = assess(gw, facts)
    [r] = gw.sink.results
    assert r.outcome is PolicyOutcome.NO_RESULT
    assert r.recommendation is ActionRecommendation.ISOLATE
    assert r.evaluation is AssessmentResult.DONT_KNOW
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    # the validator asked for the attribute once (SDATA), the client had nothing (empty
    # CDATA), so the validator was solicited: no result
    assert a.log == [("c2s", CDATA), ("s2c", SDATA), ("c2s", CDATA), ("s2c", RESULT),
                     ("c2s", CLOSE)]


def test_policy_change_reassesses_affected_connections() -> None:
    gw = Gateway(policy('[policies.fwd]\ntype = "FWDEN"\n'))
    fwd_on = HostFacts("debian", "Debian", "12", forwarding=1, device_id="dev-a")
    a = assess(gw, fwd_on, conn_id=1, keep_open=True)
    b = assess(gw, dataclasses.replace(fwd_on, device_id="dev-b", os_name="Ubuntu",
                                       os_id="ubuntu", os_version="24.04"),
               conn_id=2, keep_open=True)
    for x in (a, b):
        assert x.tncs.decision is not None
        assert x.tncs.decision.recommendation is AccessRecommendation.ALLOWED
    same = gw.engine.reload(policy('[policies.fwd]\ntype = "FWDEN"\n'))
    assert same == set()
    new = policy(
        '[groups.debian]\nproducts = ["Debian*"]\n'
        '[policies.fwd]\ntype = "FWDEN"\nrec_fail = "isolate"\n'
        '[[enforcements]]\npolicy = "fwd"\ngroup = "debian"\n'
    )
    affected = gw.engine.reload(new)
    assert affected == {1}  # only the Debian device is in the group the change touches
    log: list[tuple[str, int]] = []
    for cid in sorted(affected):
        for batch in gw.tncs[cid].request_retry():
            log.append(("s2c", int(decode_batch(batch).batch_type)))
            pump(a.tncc, a.tncs, a.tncc.receive_batch(batch), log)
    assert log[0] == ("s2c", SRETRY) and log[1] == ("c2s", CRETRY)
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    assert [s.retry for s in gw.sink.starts if s.connection_id == 1] == [False, True]
    assert b.tncs.decision is not None
    assert b.tncs.decision.recommendation is AccessRecommendation.ALLOWED


def test_package_table_change_affects_package_policies() -> None:
    text = ('[policies.p]\ntype = "PCKGS"\n[[enforcements]]\npolicy = "p"\n'
            '[products."Debian*".packages]\nopenssl = {{ min = "{v}" }}\n')
    gw = Gateway(policy(text.format(v="3.0.0")))
    facts = HostFacts("debian", "Debian", "12", packages=(("openssl", "3.0.11-1"),),
                      device_id="d")
    a = assess(gw, facts, keep_open=True)
    assert a.tncs.decision is not None
    assert a.tncs.decision.recommendation is AccessRecommendation.ALLOWED
    assert gw.engine.reload(policy(text.format(v="3.0.0"))) == set()
    assert gw.engine.reload(policy(text.format(v="3.0.15"))) == {1}


def test_max_age_skips_recently_compliant_device() -> None:
    gw = Gateway(policy(
        '[policies.p]\ntype = "PCKGS"\n[[enforcements]]\npolicy = "p"\nmax_age = "1h"\n'
        '[products."Debian*".packages]\nopenssl = { min = "3.0.0" }\n'
    ))
    facts = HostFacts("debian", "Debian", "12", packages=(("openssl", "3.0.11-1"),),
                      device_id="dev-1")
    first = assess(gw, facts, conn_id=1)
    assert [r.outcome for r in gw.sink.results] == [PolicyOutcome.PASSED]
    gw.clock.advance(600)
    second = assess(gw, facts, conn_id=2)
    assert [r.outcome for r in gw.sink.results] == [PolicyOutcome.PASSED, PolicyOutcome.SKIPPED]
    # skipped: no Attribute Request for the packages, so one round less
    assert len(second.log) < len(first.log)
    gw.clock.advance(3600)
    assess(gw, facts, conn_id=3)
    assert gw.sink.results[-1].outcome is PolicyOutcome.PASSED


def test_test_command_retry_then_allow() -> None:
    gw = Gateway(policy(""))
    facts = HostFacts(test_command="retry", retry_command="allow")
    a = assess(gw, facts, keep_open=True)
    # first handshake: no recommendation from the test validator -> the others' allow
    assert a.tncs.decision is not None
    assert a.tncs.decision.evaluation is AssessmentResult.DONT_KNOW
    assert a.tncs.decision.per_validator[0][1].recommendation is (
        ActionRecommendation.NO_RECOMMENDATION)
    wanted = gw.engine.take_retry_requests()
    assert wanted == {1} and gw.engine.take_retry_requests() == set()
    log: list[tuple[str, int]] = []
    pump(a.tncc, a.tncs, a.tncc.receive_batch(a.tncs.request_retry()[0]), log)
    assert log[0] == ("c2s", CRETRY)
    again = a.tncs.decision
    assert again is not None
    assert (again.recommendation, again.evaluation) == (AccessRecommendation.ALLOWED,
                                                        AssessmentResult.COMPLIANT)
    assert gw.engine.take_retry_requests() == set()


@pytest.mark.parametrize(
    ("command", "access", "evaluation"),
    [
        ("allow", AccessRecommendation.ALLOWED, AssessmentResult.COMPLIANT),
        ("isolate", AccessRecommendation.QUARANTINED, AssessmentResult.NONCOMPLIANT_MINOR),
        ("block", AccessRecommendation.DENIED, AssessmentResult.NONCOMPLIANT_MAJOR),
        ("none", AccessRecommendation.DENIED, AssessmentResult.NONCOMPLIANT_MAJOR),
        ("frobnicate", AccessRecommendation.ALLOWED, AssessmentResult.DONT_KNOW),
    ],
)
def test_test_commands(command: str, access: AccessRecommendation,
                       evaluation: AssessmentResult) -> None:
    gw = Gateway(policy(""))
    a = assess(gw, HostFacts(test_command=command))
    assert a.tncs.decision is not None
    assert (a.tncs.decision.recommendation, a.tncs.decision.evaluation) == (access, evaluation)


def test_swima_events_on_second_connection() -> None:
    from nea.imc import SoftwareEvent

    gw = Gateway(policy(
        '[policies.inv]\ntype = "SWIDT"\n[policies.no-nmap]\ntype = "SWFRB"\n'
        'argument = "*-nmap-*"\nrec_fail = "isolate"\n'
        '[[enforcements]]\npolicy = "inv"\n[[enforcements]]\npolicy = "no-nmap"\n'
    ))
    facts = HostFacts("debian", "Debian", "12", packages=(("bash", "5.2"),), device_id="d9")
    assess(gw, facts, conn_id=1)
    assert gw.store.get("d9") is not None
    assert gw.sink.decisions[-1].access is AccessRecommendation.ALLOWED
    later = dataclasses.replace(facts, software_events=(
        SoftwareEvent(1, "2026-11-28T12:05:00Z", 1, "nmap", "7.93"),))
    b = assess(gw, later, conn_id=2)
    state = gw.store.get("d9")
    assert state is not None and state.last_eid == 1
    assert any("nmap" in s for s in state.software)
    assert b.tncs.decision is not None
    assert b.tncs.decision.recommendation is AccessRecommendation.QUARANTINED
    # an event list of another epoch (collector reset) falls back to the full inventory
    reset = dataclasses.replace(later, swima_epoch=7, software_events=())
    assess(gw, reset, conn_id=3)
    state = gw.store.get("d9")
    assert state is not None and state.eid_epoch == 7
    assert not any("nmap" in s for s in state.software)


def test_many_packages_are_split_and_reassembled() -> None:
    gw = Gateway(policy(
        '[policies.u]\ntype = "UNSRC"\n[[enforcements]]\npolicy = "u"\n'
        '[products."Debian*".packages]\nbash = {}\n'
    ))
    pkgs = (*((f"lib{i:04d}", f"1.{i}") for i in range(1200)), ("bash", "5.2"))
    assess(gw, HostFacts("debian", "Debian", "12", packages=pkgs, device_id="d"))
    [r] = gw.sink.results
    assert r.evidence["packages"] == 1201
    assert r.evidence["unknown_count"] == 1200
    assert len(r.evidence["unknown"]) == 200  # evidence capped


def test_validator_answers_malformed_pa_with_error() -> None:
    gw = Gateway(policy(""))
    [os_validator] = [v for v in gw.validators if v.NAME == "os"]
    os_validator.notify_connection_change(5, ConnectionState.CREATE)
    os_validator.notify_connection_change(5, ConnectionState.HANDSHAKE)
    # PA-TNC version 2: "Version Not Supported" back to the sending collector, EXCL
    bad = PbPa(0, 1, collector_id=3, validator_id=0xFFFF,
               body=b"\x02\x00\x00\x00\x00\x00\x00\x01")
    [out] = os_validator.receive_message(5, bad)
    assert (out.vendor_id, out.subtype, out.peer_id, out.exclusive) == (0, 1, 3, True)
    [err] = PaMessage.parse(out.body).find(PaTncErrorAttribute)
    assert err.error_code == PaErrorCode.VERSION_NOT_SUPPORTED
    # an unknown NOSKIP attribute: "Attribute Type Not Supported", the message is ignored
    noskip = bytes([0x80, 0, 0, 0]) + (0x7777).to_bytes(4, "big") + (12).to_bytes(4, "big")
    body = PaMessage.create([ForwardingEnabled(1)], 9).serialize() + noskip
    [out] = os_validator.receive_message(5, PbPa(0, 1, 3, 0xFFFF, body))
    [err] = PaMessage.parse(out.body).find(PaTncErrorAttribute)
    assert err.error_code == PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED
    assert gw.engine.facts(5).forwarding is None


def test_attribute_request_goes_out_in_the_os_subtype() -> None:
    gw = Gateway(policy('[policies.p]\ntype = "PCKGS"\n[[enforcements]]\npolicy = "p"\n'))
    [os_validator] = [v for v in gw.validators if v.NAME == "os"]
    os_validator.notify_connection_change(6, ConnectionState.CREATE)
    os_validator.notify_connection_change(6, ConnectionState.HANDSHAKE)
    body = PaMessage.create([ProductInformation(9586, 0, "Debian")]).serialize()
    assert os_validator.receive_message(6, PbPa(0, 1, 3, 0xFFFF, body)) == []
    [out] = os_validator.batch_ending(6)
    [req] = PaMessage.parse(out.body).find(AttributeRequest)
    assert [(r.vendor_id, r.attr_type) for r in req.requested] == [(0, InstalledPackages.TYPE)]
    assert os_validator.provided_recommendation(6) is None
    assert os_validator.batch_ending(6) == []  # asked once per handshake
    rec = os_validator.solicit_recommendation(6)
    assert rec.evaluation is AssessmentResult.DONT_KNOW


def test_reason_strings_per_language() -> None:
    """Every language any failed policy offers; policies without it fall back to English;
    the TNCS picks the client's preferred language."""
    gw = Gateway(policy(
        '[policies.fwd]\ntype = "FWDEN"\nrec_fail = "isolate"\n'
        'reason = { en = "forwarding on", de = "Forwarding an" }\n'
        '[policies.pw]\ntype = "PWDEN"\nrec_fail = "isolate"\n'
        '[[enforcements]]\npolicy = "fwd"\n[[enforcements]]\npolicy = "pw"\n'
    ))
    facts = HostFacts("debian", "Debian", "12", forwarding=1, default_password=True)
    collectors = build_collectors(facts)
    tncc = Tncc(collectors, config=PbTncConfig(accept_language="de"))
    tncs = gw.server(1)
    pump(tncc, tncs, tncc.start(), [])
    assert tncs.decision is not None
    os_rec = dict(tncs.decision.per_validator)[3]
    assert dict(os_rec.reasons) == {
        "en": "forwarding on; a factory default password is enabled",
        "de": "Forwarding an; a factory default password is enabled",
    }
    assert tncc.result is not None
    assert [(r.language, r.reason) for r in tncc.result.reasons] == [
        ("de", "Forwarding an; a factory default password is enabled")]


def test_os_validator_reassembles_segmented_packages() -> None:
    """TCG IF-M segmentation: a collector may send a large Installed Packages in segments
    after our Max Attribute Size Request; the validator asks for each Next Segment."""
    gw = Gateway(policy(
        '[policies.u]\ntype = "UNSRC"\n[[enforcements]]\npolicy = "u"\n'
        '[products."Debian*".packages]\nbash = {}\n'
    ))
    [os_v] = [v for v in gw.validators if v.NAME == "os"]
    os_v.notify_connection_change(8, ConnectionState.CREATE)
    os_v.notify_connection_change(8, ConnectionState.HANDSHAKE)
    info = PaMessage.create([ProductInformation(9586, 0, "Debian")]).serialize()
    os_v.receive_message(8, PbPa(0, 1, 3, 0xFFFF, info))
    [ask] = os_v.batch_ending(8)
    asked = PaMessage.parse(ask.body)
    size = asked.first(MaxAttributeSizeRequest)
    assert size is not None and size.max_segment_size == 32000
    pkgs = InstalledPackages(tuple(Package(f"p{i}", "1.0") for i in range(300)))
    envelopes = segment_attribute(pkgs, 42, 1000)
    assert len(envelopes) == 3  # 2.6 kB in 1000-octet segments
    for i, env in enumerate(envelopes):
        out = os_v.receive_message(8, PbPa(0, 1, 3, 0xFFFF, PaMessage.create([env]).serialize()))
        if i < len(envelopes) - 1:
            [reply] = out
            assert PaMessage.parse(reply.body).attributes == (NextSegment(42),)
        else:
            assert out == []
    os_v.batch_ending(8)
    rec = os_v.provided_recommendation(8)
    assert rec is not None and rec.recommendation is ActionRecommendation.NO_ACCESS
    assert gw.sink.results[-1].evidence["unknown_count"] == 300
    # a continuation nobody started: a segmentation error back, nothing else happens
    stray = AttributeEnvelope(43, b"xx", 0)
    [err_msg] = os_v.receive_message(8, PbPa(0, 1, 3, 0xFFFF,
                                             PaMessage.create([stray]).serialize()))
    [err] = PaMessage.parse(err_msg.body).find(PaTncErrorAttribute)
    assert err.error_code == PaErrorCode.INVALID_PARAMETER


def test_very_many_packages_travel_in_segments_over_pt_eap_limits() -> None:
    """A package list far larger than one PT-EAP PB-TNC message arrives complete: the OS
    validator offers a segmentation contract and reassembles (no partial evaluation)."""
    gw = Gateway(policy(
        '[policies.u]\ntype = "UNSRC"\n[[enforcements]]\npolicy = "u"\n'
        '[products."Debian*".packages]\nbash = {}\n'
    ))
    pkgs = (*((f"libsomething-long-name-{i:05d}", f"1.2.3-{i}+deb12u1") for i in range(4000)),
            ("bash", "5.2"))
    facts = HostFacts("debian", "Debian", "12", packages=pkgs, device_id="big")
    collectors = build_collectors(facts)
    tncc = Tncc(collectors, config=PbTncConfig.for_pt_eap(close_after_result=True))
    tncs = gw.server(1, config=PbTncConfig.for_pt_eap())
    log: list[tuple[str, int]] = []
    pump(tncc, tncs, tncc.start(), log)
    [r] = gw.sink.results
    assert r.evidence["packages"] == 4001 and r.evidence["unknown_count"] == 4000
    assert len(log) > 8  # several rounds of Next Segment


def test_this_host_over_pt_eap_limits() -> None:
    """The real host (every dpkg package, its SWIMA inventory) through PT-EAP-sized
    batches: the package list and the inventory arrive complete."""
    from gateway.endpoint import read_host

    host = read_host()
    gw = Gateway(policy(
        '[policies.u]\ntype = "UNSRC"\n[policies.inv]\ntype = "SWIDT"\n'
        '[[enforcements]]\npolicy = "u"\n[[enforcements]]\npolicy = "inv"\n'
        '[products."*".packages]\nbash = {}\n'
    ))
    facts = dataclasses.replace(host, device_id=host.device_id or "this-host")
    tncc = Tncc(build_collectors(facts), config=PbTncConfig.for_pt_eap())
    tncs = gw.server(1, config=PbTncConfig.for_pt_eap())
    pump(tncc, tncs, tncc.start(), [])
    res = results(gw)
    if not facts.packages:
        assert res["u"].outcome is PolicyOutcome.NO_RESULT or res["u"].evidence["packages"] == 0
        return
    assert res["u"].evidence["packages"] == len(facts.packages)
    assert res["inv"].evidence == {"software_count": len(set(facts.packages))}
