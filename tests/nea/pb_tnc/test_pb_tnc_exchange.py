"""A TNCC and a TNCS back to back with fake collectors and validators: whole assessments."""

from __future__ import annotations

import pytest

from nea.pb_tnc import (
    AccessRecommendation,
    ActionRecommendation,
    AssessmentDecided,
    AssessmentResult,
    BatchType,
    ConnectionState,
    FatalErrorSent,
    HandshakeStarted,
    MessageDropped,
    OutboundPa,
    PbPa,
    PbPdpReferral,
    PbRemediationParameters,
    PbTncConfig,
    PbTncState,
    PbTncUsageError,
    PdpReferralReceived,
    RecommendationPolicy,
    Tncc,
    Tncs,
    ValidatorRecommendation,
    combine_recommendations,
    decode_batch,
)
from tests.nea.pb_tnc.pbtnc_fakes import (
    CommandValidator,
    FakeCollector,
    FakeValidator,
    Wire,
    command_collector,
    pa_message,
)

S = PbTncState


def _state(engine: Tncc | Tncs) -> PbTncState:
    """The state, read through a call so that mypy does not keep an earlier narrowing."""
    return engine.state


def _wire(
    command: str,
    *,
    client_config: PbTncConfig | None = None,
    server_config: PbTncConfig | None = None,
) -> tuple[Wire, CommandValidator, FakeCollector]:
    validator = CommandValidator()
    collector = command_collector(command)
    wire = Wire(Tncc([collector], config=client_config), Tncs([validator], config=server_config))
    return wire, validator, collector


def _decided(tncs: Tncs) -> list[AssessmentDecided]:
    return [e for e in tncs.events() if isinstance(e, AssessmentDecided)]


@pytest.mark.parametrize(
    ("command", "recommendation", "evaluation", "access_state"),
    [
        ("allow", AccessRecommendation.ALLOWED, AssessmentResult.COMPLIANT, "ACCESS_ALLOWED"),
        (
            "isolate",
            AccessRecommendation.QUARANTINED,
            AssessmentResult.NONCOMPLIANT_MINOR,
            "ACCESS_ISOLATED",
        ),
        ("block", AccessRecommendation.DENIED, AssessmentResult.NONCOMPLIANT_MAJOR, "ACCESS_NONE"),
    ],
)
def test_full_assessment(
    command: str,
    recommendation: AccessRecommendation,
    evaluation: AssessmentResult,
    access_state: str,
) -> None:
    wire, validator, collector = _wire(command)
    wire.run()
    assert wire.types() == [
        "c2s-CDATA",
        "s2c-SDATA",
        "c2s-CDATA",
        "s2c-RESULT",
        "c2s-CLOSE",
    ]
    assert wire.tncc.state is S.END and wire.tncs.state is S.END
    (decided,) = _decided(wire.tncs)
    assert (decided.recommendation, decided.evaluation) == (recommendation, evaluation)
    assert wire.tncs.decision == decided
    result = wire.tncc.result
    assert result is not None
    assert (result.recommendation, result.evaluation) == (recommendation, evaluation)
    if command == "allow":
        assert result.reasons == ()
    else:
        assert [(r.reason, r.language) for r in result.reasons] == [(f"command = {command}", "en")]
    expected = ConnectionState[access_state]
    assert validator.states == [
        ConnectionState.CREATE,
        ConnectionState.HANDSHAKE,
        expected,
        ConnectionState.DELETE,
    ]
    assert collector.states[-2:] == [expected, ConnectionState.DELETE]
    # the validator's EXCL message to collector 1 arrived there
    assert [m.exclusive for m in collector.received] == [True]


def test_retry_command_costs_an_extra_round() -> None:
    wire, _, _ = _wire("retry")
    wire.run()
    assert wire.types() == [
        "c2s-CDATA",
        "s2c-SDATA",
        "c2s-CDATA",
        "s2c-SDATA",
        "c2s-CDATA",
        "s2c-RESULT",
        "c2s-CLOSE",
    ]


def test_cretry_reassesses_a_live_connection() -> None:
    wire, validator, collector = _wire(
        "isolate", client_config=PbTncConfig(close_after_result=False)
    )
    wire.run()
    assert wire.tncc.state is S.DECIDED and wire.tncs.state is S.DECIDED
    wire.tncs.events()
    collector.initial = command_collector("allow").initial  # the user fixed the client
    wire.log.clear()
    wire.deliver("c2s", wire.tncc.request_retry())
    assert wire.types() == ["c2s-CRETRY", "s2c-SDATA", "c2s-CDATA", "s2c-RESULT"]
    assert decode_batch(wire.log[0][1]).messages  # CRETRY carries the fresh posture data
    (decided,) = _decided(wire.tncs)
    assert decided.recommendation is AccessRecommendation.ALLOWED
    assert collector.handshakes == 2
    assert validator.states.count(ConnectionState.HANDSHAKE) == 2
    retries = [e for e in wire.tncc.events() if isinstance(e, HandshakeStarted)]
    assert [e.retry for e in retries] == [False, True]
    assert wire.tncc.close()
    assert _state(wire.tncc) is S.END


def test_sretry_from_decided() -> None:
    wire, validator, collector = _wire("allow", client_config=PbTncConfig(close_after_result=False))
    wire.run()
    wire.log.clear()
    wire.deliver("s2c", wire.tncs.request_retry())
    assert validator.command == "allow"  # read again in the new handshake
    assert validator.states.count(ConnectionState.HANDSHAKE) == 2
    assert wire.types() == [
        "s2c-SRETRY",
        "c2s-CRETRY",
        "s2c-SDATA",
        "c2s-CDATA",
        "s2c-RESULT",
    ]
    assert wire.tncs.state is S.DECIDED and wire.tncc.state is S.DECIDED
    assert collector.handshakes == 2
    assert len(_decided(wire.tncs)) == 2
    assert not [e for e in wire.tncs.events() if isinstance(e, FatalErrorSent)]


def test_sretry_requested_mid_handshake_waits_for_our_turn() -> None:
    validator = FakeValidator(1, rounds=3)
    collector = FakeCollector(1, initial=[OutboundPa(0, 1, pa_message())])
    tncc, tncs = Tncc([collector]), Tncs([validator])
    (cdata,) = tncc.start()
    (sdata,) = tncs.receive_batch(cdata)
    assert tncs.state is S.CLIENT_WORKING
    assert tncs.request_retry() == []  # half duplex: not our turn
    (cdata2,) = tncc.receive_batch(sdata)
    (sretry,) = tncs.receive_batch(cdata2)
    assert decode_batch(sretry).batch_type is BatchType.SRETRY
    (cretry,) = tncc.receive_batch(sretry)
    assert decode_batch(cretry).batch_type is BatchType.CRETRY
    wire = Wire(tncc, tncs)
    wire.deliver("c2s", [cretry])
    assert _state(tncs) is S.END and tncc.result is not None
    assert collector.handshakes == 2
    assert validator.states.count(ConnectionState.HANDSHAKE) == 2


def test_sretry_full_duplex_goes_out_while_client_works() -> None:
    tncc = Tncc([FakeCollector(1)])
    tncs = Tncs([FakeValidator(1, rounds=2)], config=PbTncConfig(full_duplex=True))
    (cdata,) = tncc.start()
    tncs.receive_batch(cdata)
    assert tncs.state is S.CLIENT_WORKING
    (sretry,) = tncs.request_retry()
    assert decode_batch(sretry).batch_type is BatchType.SRETRY
    assert tncs.state is S.CLIENT_WORKING
    # the client, still waiting for the server, answers the SRETRY with a CRETRY
    (cretry,) = tncc.receive_batch(sretry)
    assert decode_batch(cretry).batch_type is BatchType.CRETRY
    assert tncc.state is S.SERVER_WORKING


def test_cretry_requested_while_server_works() -> None:
    tncc = Tncc([command_collector("allow")])
    tncs = Tncs([CommandValidator()])
    (cdata,) = tncc.start()
    assert tncc.request_retry() == []  # half duplex: deferred to our next turn
    (sdata,) = tncs.receive_batch(cdata)
    (cretry,) = tncc.receive_batch(sdata)
    assert decode_batch(cretry).batch_type is BatchType.CRETRY
    wire = Wire(tncc, tncs)
    wire.deliver("c2s", [cretry])
    assert tncc.result is not None and tncc.result.recommendation is AccessRecommendation.ALLOWED


def test_client_messages_split_over_several_batches() -> None:
    limit = 200
    config = PbTncConfig(max_batch_size=limit, max_message_size=limit - 32)
    bodies = [pa_message((0, 1, bytes([i]) * 100), msg_id=i) for i in range(5)]
    collector = FakeCollector(1, initial=[OutboundPa(0, 1, b) for b in bodies])
    validator = FakeValidator(1, rounds=0, provide=False)
    wire = Wire(Tncc([collector], config=config), Tncs([validator], config=config))
    wire.run()
    assert all(len(data) <= limit for _, data in wire.log)
    assert [m.body for m in validator.received] == bodies
    types = wire.types()
    # each CDATA carries what fits; the server answers with empty SDATA until the client's
    # CDATA is empty, then solicits the validator and sends RESULT
    assert types.count("c2s-CDATA") == 6 and types[-2:] == ["s2c-RESULT", "c2s-CLOSE"]
    assert validator.solicited == 1


def test_server_messages_split_over_several_batches() -> None:
    limit = 300
    config = PbTncConfig(max_batch_size=limit, max_message_size=limit - 32)
    validator = FakeValidator(1, rounds=1, burst=4, reply_size=120)
    collector = FakeCollector(1, initial=[OutboundPa(0, 1, pa_message())])
    wire = Wire(Tncc([collector], config=config), Tncs([validator], config=config))
    wire.run()
    assert all(len(data) <= limit for _, data in wire.log)
    assert len(collector.received) == 4
    sdata = [
        decode_batch(d)
        for d, t in zip([d for _, d in wire.log], wire.types(), strict=True)
        if t == "s2c-SDATA"
    ]
    assert len(sdata) >= 2
    assert all(b.messages for b in sdata)  # no empty SDATA: the client's empty CDATA lets us go on
    assert wire.types()[-2:] == ["s2c-RESULT", "c2s-CLOSE"]


def test_empty_sdata_while_validator_works() -> None:
    class Slow(FakeValidator):
        def provided_recommendation(self, conn_id: int) -> ValidatorRecommendation | None:
            return None

    collector = FakeCollector(
        1, initial=[OutboundPa(0, 1, pa_message())], replies=[OutboundPa(0, 1, pa_message())]
    )
    validator = Slow(1, rounds=1)
    wire = Wire(Tncc([collector]), Tncs([validator]))
    wire.run()
    assert wire.types() == [
        "c2s-CDATA",
        "s2c-SDATA",  # validator's question
        "c2s-CDATA",  # collector's answer
        "s2c-SDATA",  # empty: validator still working
        "c2s-CDATA",  # empty: client has nothing more
        "s2c-RESULT",
        "c2s-CLOSE",
    ]
    assert decode_batch(wire.log[3][1]).messages == ()
    assert validator.solicited == 1


def test_oversize_pa_message_is_dropped_with_an_event() -> None:
    config = PbTncConfig(max_batch_size=500, max_message_size=100)
    collector = FakeCollector(1, initial=[OutboundPa(0, 1, b"x" * 101), OutboundPa(0, 1, b"y")])
    tncc = Tncc([collector], config=config)
    (cdata,) = tncc.start()
    pas = [m for m in decode_batch(cdata).messages if isinstance(m, PbPa)]
    assert [m.body for m in pas] == [b"y"]
    assert any(isinstance(e, MessageDropped) for e in tncc.events())


def test_reason_string_language_follows_client_preference() -> None:
    reasons = {"en": "outdated", "de": "veraltet", "fr": "obsol\u00e8te"}
    decision = ValidatorRecommendation(
        ActionRecommendation.ISOLATE, AssessmentResult.NONCOMPLIANT_MINOR, reasons
    )
    for accept, expected in [
        ("de, en;q=0.5", "de"),
        ("fr-CH, fr;q=0.9", "fr"),
        ("it", "en"),  # fallback: the server's default language
        ("de;q=0, fr;q=0.2", "fr"),
    ]:
        wire = Wire(
            Tncc([FakeCollector(1)], config=PbTncConfig(accept_language=accept)),
            Tncs([FakeValidator(1, decision=decision)]),
        )
        wire.run()
        assert wire.tncc.result is not None
        assert [r.language for r in wire.tncc.result.reasons] == [expected], accept


def test_one_reason_string_per_validator_and_remediation() -> None:
    remedy = PbRemediationParameters.uri("https://remedy.example/fix")
    v1 = FakeValidator(
        1,
        decision=ValidatorRecommendation(
            ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT, {"en": "fine"}
        ),
    )
    v2 = FakeValidator(
        2,
        decision=ValidatorRecommendation(
            ActionRecommendation.ISOLATE,
            AssessmentResult.NONCOMPLIANT_MINOR,
            {"en": "patch me"},
            (remedy,),
        ),
    )
    v3 = FakeValidator(3)  # no reason
    wire = Wire(Tncc([FakeCollector(1)]), Tncs([v1, v2, v3]))
    wire.run()
    result = wire.tncc.result
    assert result is not None
    assert result.recommendation is AccessRecommendation.QUARANTINED
    assert [r.reason for r in result.reasons] == ["fine", "patch me"]
    assert [r.as_uri for r in result.remediation] == ["https://remedy.example/fix"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RecommendationPolicy.DEFAULT, AccessRecommendation.DENIED),
        (RecommendationPolicy.ANY, AccessRecommendation.ALLOWED),
        (RecommendationPolicy.ALL, AccessRecommendation.DENIED),
    ],
)
def test_recommendation_policy_end_to_end(
    policy: RecommendationPolicy, expected: AccessRecommendation
) -> None:
    recs = [
        (ActionRecommendation.ALLOW, AssessmentResult.COMPLIANT),
        (ActionRecommendation.NO_ACCESS, AssessmentResult.NONCOMPLIANT_MAJOR),
    ]
    validators = [
        FakeValidator(i, decision=ValidatorRecommendation(r, e)) for i, (r, e) in enumerate(recs)
    ]
    wire = Wire(
        Tncc([FakeCollector(1)]),
        Tncs(validators, config=PbTncConfig(recommendation_policy=policy)),
    )
    wire.run()
    assert wire.tncc.result is not None and wire.tncc.result.recommendation is expected


A = ActionRecommendation
E = AssessmentResult


@pytest.mark.parametrize(
    ("policy", "recs", "expected"),
    [
        (
            "default",
            [(A.ALLOW, E.COMPLIANT), (A.ISOLATE, E.NONCOMPLIANT_MINOR)],
            (A.ISOLATE, E.NONCOMPLIANT_MINOR),
        ),
        (
            "default",
            [(A.NO_RECOMMENDATION, E.DONT_KNOW), (A.ALLOW, E.COMPLIANT)],
            (A.ALLOW, E.COMPLIANT),
        ),
        (
            "default",
            [(A.NO_ACCESS, E.ERROR), (A.ISOLATE, E.NONCOMPLIANT_MAJOR)],
            (A.NO_ACCESS, E.ERROR),
        ),
        (
            "default",
            [(A.ALLOW, E.COMPLIANT), (A.NO_RECOMMENDATION, E.DONT_KNOW)],
            (A.ALLOW, E.COMPLIANT),
        ),
        (
            "any",
            [(A.NO_ACCESS, E.NONCOMPLIANT_MAJOR), (A.ISOLATE, E.NONCOMPLIANT_MINOR)],
            (A.ISOLATE, E.NONCOMPLIANT_MINOR),
        ),
        (
            "any",
            [(A.NO_RECOMMENDATION, E.DONT_KNOW), (A.NO_ACCESS, E.ERROR)],
            (A.NO_ACCESS, E.ERROR),
        ),
        (
            "any",
            [(A.NO_ACCESS, E.ERROR), (A.NO_RECOMMENDATION, E.DONT_KNOW)],
            (A.NO_ACCESS, E.ERROR),
        ),
        ("all", [(A.ALLOW, E.COMPLIANT), (A.ALLOW, E.COMPLIANT)], (A.ALLOW, E.COMPLIANT)),
        ("all", [(A.ALLOW, E.COMPLIANT), (A.ALLOW, E.NONCOMPLIANT_MINOR)], (A.ALLOW, E.DONT_KNOW)),
        (
            "all",
            [(A.ALLOW, E.COMPLIANT), (A.ISOLATE, E.COMPLIANT)],
            (A.NO_RECOMMENDATION, E.COMPLIANT),
        ),
        ("default", [], (A.NO_RECOMMENDATION, E.DONT_KNOW)),
    ],
)
def test_combine_recommendations(
    policy: str, recs: list[tuple[A, E]], expected: tuple[A, E]
) -> None:
    assert combine_recommendations(recs, RecommendationPolicy(policy)) == expected


def test_no_validators_means_denied() -> None:
    wire = Wire(Tncc([FakeCollector(1)]), Tncs([]))
    wire.run()
    assert wire.tncc.result is not None
    assert wire.tncc.result.recommendation is AccessRecommendation.DENIED
    assert wire.tncc.result.evaluation is AssessmentResult.DONT_KNOW


def test_excl_delivers_to_the_named_validator_only() -> None:
    v1 = FakeValidator(1, rounds=0)
    v2 = FakeValidator(2, rounds=0)
    collector = FakeCollector(
        7,
        initial=[
            OutboundPa(0, 1, b"to-two", peer_id=2, exclusive=True),
            OutboundPa(0, 1, b"to-all"),
            OutboundPa(0, 2, b"not-subscribed"),
        ],
    )
    Wire(Tncc([collector]), Tncs([v1, v2])).run()
    assert [m.body for m in v1.received] == [b"to-all"]
    assert [m.body for m in v2.received] == [b"to-two", b"to-all"]
    assert v2.received[0].collector_id == 7


def test_pdp_referral_reaches_the_client() -> None:
    referral = PbPdpReferral.from_fqdn("pdp.example.net", 271)
    wire = Wire(
        Tncc([FakeCollector(1)]),
        Tncs([FakeValidator(1)], config=PbTncConfig(pdp_referral=referral)),
    )
    wire.run()
    assert wire.tncc.pdp_referral == referral
    assert any(isinstance(e, PdpReferralReceived) for e in wire.tncc.events())
    assert referral.fqdn == ("pdp.example.net", 271, 0)


def test_config_limits_are_checked() -> None:
    with pytest.raises(PbTncUsageError):
        PbTncConfig(max_batch_size=20)
    with pytest.raises(PbTncUsageError):
        PbTncConfig(max_batch_size=1000, max_message_size=969)
    assert PbTncConfig(max_batch_size=1000, max_message_size=968).max_message_size == 968
    eap = PbTncConfig.for_pt_eap()
    assert (eap.max_batch_size, eap.max_message_size) == (32754, 32722)
    assert (PbTncConfig().max_batch_size, PbTncConfig().max_message_size) == (65522, 65490)


def test_api_misuse() -> None:
    tncc = Tncc([])
    with pytest.raises(PbTncUsageError):
        tncc.request_retry()
    tncc.start()
    with pytest.raises(PbTncUsageError):
        tncc.start()
    tncc.close()
    assert tncc.close() == []
    with pytest.raises(PbTncUsageError):
        tncc.request_retry()
    with pytest.raises(PbTncUsageError):
        Tncs([FakeValidator(1), FakeValidator(1)])
    with pytest.raises(PbTncUsageError):
        Tncc([FakeCollector(1), FakeCollector(1)])
    tncs = Tncs([])
    assert tncs.request_retry() == []  # nothing to retry before the first CDATA
    tncs.close()
    with pytest.raises(PbTncUsageError):
        tncs.request_retry()


def test_server_may_speak_first() -> None:
    tncs = Tncs([FakeValidator(1)])
    collector = FakeCollector(1, initial=[OutboundPa(0, 1, pa_message())])
    tncc = Tncc([collector])
    # an SDATA in Init (the TNCS starts): the client begins its handshake and answers CDATA
    sdata = tncs._send(BatchType.SDATA, [])
    (cdata,) = tncc.receive_batch(sdata)
    batch = decode_batch(cdata)
    assert batch.batch_type is BatchType.CDATA and len(batch.messages) == 2
    assert tncc.state is S.SERVER_WORKING


def test_result_batch_drops_reasons_that_do_not_fit() -> None:
    config = PbTncConfig(max_batch_size=200, max_message_size=100)
    decision = ValidatorRecommendation(
        ActionRecommendation.ISOLATE, AssessmentResult.NONCOMPLIANT_MINOR, {"en": "x" * 300}
    )
    wire = Wire(
        Tncc([FakeCollector(1)], config=config),
        Tncs([FakeValidator(1, decision=decision)], config=config),
    )
    wire.run()
    assert wire.tncc.result is not None
    assert wire.tncc.result.recommendation is AccessRecommendation.QUARANTINED
    assert wire.tncc.result.reasons == ()
    dropped = [e for e in wire.tncs.events() if isinstance(e, MessageDropped)]
    assert len(dropped) == 1 and "RESULT" in dropped[0].reason
