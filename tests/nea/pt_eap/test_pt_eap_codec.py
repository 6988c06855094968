"""PT-EAP / EAP-TNC packet codec: strongSwan's transcript batches wrapped in PT-EAP, EAP-TNC
fragmentation round trips, and Hypothesis: every input is a clean error or a decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap.method import Decision
from nea.pb_tnc import Tncc, Tncs, decode_batch
from nea.pt_eap import (
    EapCode,
    EapEnvelope,
    EapTncPacket,
    EapTncPeer,
    EapTncServer,
    InvalidPacket,
    PtEapError,
    PtEapPacket,
    PtEapPeer,
    PtEapServer,
    Reassembler,
    ReassemblyError,
    fragment,
    parse_eap,
)
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, command_collector

# strongSwan 6.0.6 PB-TNC conversations captured on this machine (see the README there)
TRANSCRIPTS = Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors" / (
    "strongswan-transcripts"
)


def _transcript_batches() -> list[Path]:
    if not TRANSCRIPTS.is_dir():
        return []
    return sorted(p for p in TRANSCRIPTS.glob("*/*.bin") if p.name[:2].isdigit())


@pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason="shared vectors (../shared) absent")
@pytest.mark.parametrize("path", _transcript_batches(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_transcript_batches_in_pt_eap(path: Path) -> None:
    batch = path.read_bytes()
    code = EapCode.RESPONSE if "-c2s-" in path.name else EapCode.REQUEST
    wire = EapEnvelope(code, 7, 54, PtEapPacket(batch).encode()).encode()
    env = parse_eap(wire)
    assert (env.code, env.identifier, env.eap_type) == (code, 7, 54)
    pkt = PtEapPacket.parse(env.type_data)
    assert (pkt.start, pkt.version, pkt.data) == (False, 1, batch)
    decoded = decode_batch(pkt.data)
    assert decoded.encode() == batch
    assert decoded.from_server is (code is EapCode.REQUEST)
    assert pkt.encode() == env.type_data


CASES = [
    (PtEapPacket(start=True), b"\x81"),
    (PtEapPacket(), b"\x01"),
    (PtEapPacket(b"abc"), b"\x01abc"),
    (PtEapPacket(b"", version=3, reserved=0x08), b"\x0b"),
]


@pytest.mark.parametrize(("packet", "wire"), CASES)
def test_pt_eap_case_table(packet: PtEapPacket, wire: bytes) -> None:
    assert packet.encode() == wire
    assert PtEapPacket.parse(wire) == packet


TNC_CASES = [
    (EapTncPacket(start=True), b"\x21"),
    (EapTncPacket(), b"\x01"),
    (EapTncPacket(b"xy", total_length=2), b"\x81\x00\x00\x00\x02xy"),
    (EapTncPacket(b"xy", more=True, total_length=9), b"\xc1\x00\x00\x00\x09xy"),
    (EapTncPacket(b"xy", more=True), b"\x41xy"),
]


@pytest.mark.parametrize(("packet", "wire"), TNC_CASES)
def test_eap_tnc_case_table(packet: EapTncPacket, wire: bytes) -> None:
    assert packet.encode() == wire
    assert EapTncPacket.parse(wire) == packet


@pytest.mark.parametrize(
    ("wire", "offset"),
    [(b"", 0), (b"\x81\x00\x00", 1), (b"\x81\x00\x00\x00\x01xy", 1)],
)
def test_eap_tnc_malformed(wire: bytes, offset: int) -> None:
    with pytest.raises(InvalidPacket) as info:
        EapTncPacket.parse(wire)
    assert info.value.offset == offset


@pytest.mark.parametrize(
    ("wire", "offset"),
    [(b"", 0), (b"\x01\x02", 0), (b"\x09\x01\x00\x04", 0), (b"\x01\x01\x00\x09\x36", 2),
     (b"\x03\x01\x00\x05\x36", 2), (b"\x01\x01\x00\x04", 2)],
)
def test_eap_envelope_malformed(wire: bytes, offset: int) -> None:
    with pytest.raises(InvalidPacket) as info:
        parse_eap(wire)
    assert info.value.offset == offset


@pytest.mark.parametrize("size", [1, 5, 64, 1000])
@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 999, 3000])
def test_fragment_round_trip(size: int, length: int) -> None:
    message = bytes(i % 251 for i in range(length))
    packets = fragment(message, size)
    assert all(len(p.data) <= size for p in packets)
    r = Reassembler()
    results = [r.feed(EapTncPacket.parse(p.encode())) for p in packets]
    assert results[:-1] == [None] * (len(packets) - 1)
    assert results[-1] == message
    assert not r.in_progress


def test_reassembly_errors() -> None:
    r = Reassembler(max_message=10)
    with pytest.raises(ReassemblyError):
        r.feed(EapTncPacket(b"a", more=True, total_length=11))
    r = Reassembler()
    r.feed(EapTncPacket(b"abc", more=True, total_length=5))
    with pytest.raises(ReassemblyError):
        r.feed(EapTncPacket(b"abc"))  # 6 > 5
    r.feed(EapTncPacket(b"abc", more=True, total_length=5))
    with pytest.raises(ReassemblyError):
        r.feed(EapTncPacket(b"a", total_length=6))  # length changed
    r.feed(EapTncPacket(b"abc", more=True, total_length=5))
    with pytest.raises(ReassemblyError):
        r.feed(EapTncPacket(b"a"))  # 4 != 5
    with pytest.raises(ReassemblyError):
        r.feed(EapTncPacket(b"", more=True))
    r = Reassembler(max_message=4)
    r.feed(EapTncPacket(b"abc", more=True))  # no L (strongSwan) is accepted
    with pytest.raises(ReassemblyError):
        r.feed(EapTncPacket(b"abc"))


# --------------------------------------------------------------------------- Hypothesis

def _fresh(kind: str, role: str) -> PtEapServer | PtEapPeer | EapTncServer | EapTncPeer:
    tncs = Tncs([CommandValidator()])
    tncc = Tncc([command_collector("allow")])
    return {
        ("pt", "server"): lambda: PtEapServer(tncs),
        ("pt", "peer"): lambda: PtEapPeer(tncc),
        ("tnc", "server"): lambda: EapTncServer(tncs, fragment_size=16),
        ("tnc", "peer"): lambda: EapTncPeer(tncc, fragment_size=16),
    }[(kind, role)]()


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["pt", "tnc"]),
    role=st.sampled_from(["server", "peer"]),
    inputs=st.lists(st.binary(max_size=40), max_size=6),
    prefix=st.sampled_from([b"", b"\x81", b"\x21", b"\x01", b"\x41", b"\xc1\x00\x00\x00\x10"]),
)
def test_methods_never_crash(kind: str, role: str, inputs: list[bytes], prefix: bytes) -> None:
    method = _fresh(kind, role)
    if isinstance(method, PtEapServer | EapTncServer):
        method.start()
    finished = False
    for data in [prefix + b"" if not inputs else prefix + inputs[0], *inputs[1:]]:
        step = method.receive(data)
        assert isinstance(step.decision, Decision)
        if finished:
            assert step.decision is Decision.FAILURE
        if step.decision is not Decision.CONTINUE:
            finished = True
        if step.decision is Decision.CONTINUE:
            assert step.reply is not None
        if step.decision is Decision.FAILURE:
            assert method.failure_reason
        assert method.msk() is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_parsers_raise_only_their_errors(data: bytes) -> None:
    for parse in (PtEapPacket.parse, EapTncPacket.parse, parse_eap):
        try:
            parsed = parse(data)
        except PtEapError as exc:
            assert 0 <= exc.offset <= max(len(data), 1)
        else:
            assert parsed.encode() == data
