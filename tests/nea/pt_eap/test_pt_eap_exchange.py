"""PT-EAP / EAP-TNC server and peer back to back with a full TNCC <-> TNCS assessment.

The validators are the fakes of the PB-TNC tests (strongSwan's Test IMV in miniature): the
collector reports a command ("allow", "isolate", "block", "retry") and the validator
recommends accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod
from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentResult,
    PbTncConfig,
    PbTncState,
    Tncc,
    Tncs,
)
from nea.pt_eap import (
    EapTncPacket,
    EapTncPeer,
    EapTncServer,
    PtEapPacket,
    PtEapPeer,
    PtEapServer,
)
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, FakeCollector, command_collector


@dataclass
class Trace:
    server: Decision = Decision.CONTINUE
    peer: Decision = Decision.CONTINUE
    requests: list[bytes] = field(default_factory=list)
    responses: list[bytes] = field(default_factory=list)


def run(server: EapServerMethod, peer: EapPeerMethod, limit: int = 200) -> Trace:
    """Drive the two methods the way the EAP layer does (Request -> Response)."""
    trace = Trace()
    request = server.start()
    for _ in range(limit):
        trace.requests.append(request)
        pstep = peer.receive(request)
        trace.peer = pstep.decision
        assert pstep.reply is not None, "the peer must always answer"
        trace.responses.append(pstep.reply)
        sstep = server.receive(pstep.reply)
        trace.server = sstep.decision
        if sstep.decision is not Decision.CONTINUE:
            if sstep.reply is not None:
                trace.requests.append(sstep.reply)
                trace.peer = peer.receive(sstep.reply).decision
            return trace
        assert pstep.decision is Decision.CONTINUE, "peer decided while the server continues"
        assert sstep.reply is not None
        request = sstep.reply
    raise AssertionError("no decision")


def pair(command: str, *, tnc: bool = False, **kw: object) -> tuple[PtEapServer, PtEapPeer]:
    tncs = Tncs([CommandValidator()], config=PbTncConfig.for_pt_eap())
    tncc = Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap())
    if tnc:
        return EapTncServer(tncs, **kw), EapTncPeer(tncc, **kw)  # type: ignore[return-value,arg-type]
    return PtEapServer(tncs), PtEapPeer(tncc)


EXPECT = {
    "allow": (Decision.SUCCESS, AccessRecommendation.ALLOWED, AssessmentResult.COMPLIANT),
    "isolate": (
        Decision.SUCCESS,
        AccessRecommendation.QUARANTINED,
        AssessmentResult.NONCOMPLIANT_MINOR,
    ),
    "block": (Decision.FAILURE, AccessRecommendation.DENIED, AssessmentResult.NONCOMPLIANT_MAJOR),
    "retry": (Decision.SUCCESS, AccessRecommendation.ALLOWED, AssessmentResult.DONT_KNOW),
}


@pytest.mark.parametrize("tnc", [False, True], ids=["pt-eap", "eap-tnc"])
@pytest.mark.parametrize("command", list(EXPECT))
def test_assessment_verdicts(command: str, tnc: bool) -> None:
    server, peer = pair(command, tnc=tnc)
    trace = run(server, peer)
    decision, rec, ev = EXPECT[command]
    assert trace.server is decision
    assert trace.peer is decision
    for side in (server, peer):
        assert side.recommendation is rec
        assert side.evaluation is ev
        assert side.msk() is None and side.emsk() is None
        assert side.done
    assert server.tncs.state is PbTncState.END
    assert peer.tncc.state is PbTncState.END
    # Start, then one message per PB-TNC batch; the last response is the client's CLOSE
    first = trace.requests[0]
    if tnc:
        assert first == bytes([0x21])  # EAP-TNC Start: S + version 1
        assert trace.responses[-1][0] & 0x07 == 1
    else:
        assert first == bytes([0x81])  # PT-EAP Start: S + version 1
        assert all(r[0] == 0x01 for r in trace.responses)
        assert all(r[0] == 0x01 for r in trace.requests[1:])
        assert trace.responses[-1][1:][3] & 0x0F == 6  # CLOSE batch
    if decision is Decision.FAILURE:
        assert "denies access" in (server.failure_reason or "")
        assert "DENIED" in (server.failure_reason or "")
        assert server.reasons and "block" in server.reasons[0].reason
    else:
        assert server.failure_reason is None
        assert server.verdict is not None and server.verdict.grants_access


def test_retry_costs_an_extra_round() -> None:
    allow = run(*pair("allow"))
    retry = run(*pair("retry"))
    assert len(retry.requests) == len(allow.requests) + 1


def test_eap_tnc_fragments_every_batch() -> None:
    server, peer = pair("allow", tnc=True, fragment_size=7)
    trace = run(server, peer)
    assert trace.server is Decision.SUCCESS
    packets = [EapTncPacket.parse(p) for p in trace.requests[1:] + trace.responses]
    assert any(p.more for p in packets)
    assert any(p.is_ack for p in packets)
    firsts = [p for p in packets if p.total_length is not None]
    assert firsts and all(p.more for p in firsts)
    assert all(len(p.data) <= 7 for p in packets)


def test_eap_tnc_include_length_on_unfragmented() -> None:
    server, peer = pair("allow", tnc=True, include_length=True)
    trace = run(server, peer)
    assert trace.server is Decision.SUCCESS
    assert all(EapTncPacket.parse(r).total_length is not None for r in trace.responses)


def test_peer_refuses_a_version_above_and_below() -> None:
    # The server offers version 1; a peer speaking only version 2 has nothing at or below it.
    tncc = Tncc([command_collector("allow")])
    peer = PtEapPeer(tncc, versions=(2,))
    step = peer.receive(PtEapPacket(start=True, version=1).encode())
    assert step.decision is Decision.FAILURE
    assert step.reply == bytes([0x02])
    assert "version" in (peer.failure_reason or "")
    # ... and our server refuses that answer
    server = PtEapServer(Tncs([CommandValidator()]))
    server.start()
    sstep = server.receive(step.reply)
    assert sstep.decision is Decision.FAILURE
    assert "version 2" in (server.failure_reason or "")


def test_version_negotiates_down_to_common() -> None:
    server = PtEapServer(Tncs([CommandValidator()]), versions=(1, 2, 3))
    assert server.start() == bytes([0x83])
    peer = PtEapPeer(Tncc([command_collector("allow")]), versions=(1, 2))
    step = peer.receive(bytes([0x83]))
    assert step.reply is not None and step.reply[0] == 0x02
    assert peer.version == 2
    sstep = server.receive(step.reply)
    assert sstep.decision is Decision.CONTINUE
    assert server.version == 2
    assert sstep.reply is not None and sstep.reply[0] == 0x02
    # a later message with another version is refused
    assert server.receive(bytes([0x01]) + b"x").decision is Decision.FAILURE


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (b"", "flags octet"),
        (bytes([0x81]), "Start"),
    ],
)
def test_server_rejects_bad_responses(response: bytes, why: str) -> None:
    server = PtEapServer(Tncs([CommandValidator()]))
    server.start()
    step = server.receive(response)
    assert step.decision is Decision.FAILURE
    assert why in (server.failure_reason or "")
    # finished: anything further fails too
    assert server.receive(bytes([0x01])).decision is Decision.FAILURE


def test_server_fails_on_empty_answer_before_any_batch() -> None:
    server = PtEapServer(Tncs([CommandValidator()]))
    server.start()
    step = server.receive(bytes([0x01]))
    assert step.decision is Decision.FAILURE
    assert "without a PB-TNC batch" in (server.failure_reason or "")


def test_garbage_batch_ends_with_pb_error_and_failure() -> None:
    server = PtEapServer(Tncs([CommandValidator()]))
    peer_tncc = Tncc([command_collector("allow")])
    peer = PtEapPeer(peer_tncc)
    server.start()
    step = server.receive(bytes([0x01]) + b"\x03\x00\x00\x01\x00\x00\x00\x08")  # PB version 3
    assert step.decision is Decision.CONTINUE  # the CLOSE with the PB-Error goes out first
    assert step.reply is not None
    assert server.tncs.state is PbTncState.END
    # our peer gets the CLOSE (it has not seen a Start: feed one first)
    peer.receive(bytes([0x81]))
    pstep = peer.receive(step.reply)
    assert pstep.decision is Decision.FAILURE
    assert "PB-Error" in (peer.failure_reason or "")
    final = server.receive(bytes([0x01]))
    assert final.decision is Decision.FAILURE
    assert "Version Not Supported" in (server.failure_reason or "") or "PB-TNC failed" in (
        server.failure_reason or ""
    )


def test_peer_needs_start_first() -> None:
    peer = PtEapPeer(Tncc([FakeCollector(1)]))
    step = peer.receive(bytes([0x01]) + b"x" * 8)
    assert step.decision is Decision.FAILURE
    assert "Start" in (peer.failure_reason or "")


def test_peer_rejects_second_start() -> None:
    peer = PtEapPeer(Tncc([command_collector("allow")]))
    assert peer.receive(bytes([0x81])).decision is Decision.CONTINUE
    assert peer.receive(bytes([0x81])).decision is Decision.FAILURE


def test_reserved_flag_bits_are_ignored() -> None:
    server, peer = pair("allow")
    request = server.start()
    step = peer.receive(bytes([request[0] | 0x78]))
    assert step.decision is Decision.CONTINUE
    assert step.reply is not None
    assert server.receive(bytes([step.reply[0] | 0x78]) + step.reply[1:]).decision is (
        Decision.CONTINUE
    )


def test_eap_tnc_reassembly_limit_fails_cleanly() -> None:
    server = EapTncServer(Tncs([CommandValidator()]), max_message=100)
    server.start()
    big = EapTncPacket(b"x" * 10, more=True, total_length=1000).encode()
    step = server.receive(big)
    assert step.decision is Decision.FAILURE
    assert "exceeds the limit" in (server.failure_reason or "")
