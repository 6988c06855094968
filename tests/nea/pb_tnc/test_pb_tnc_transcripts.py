"""Our TNCS fed strongSwan's client batches, our TNCC fed strongSwan's server batches.

Source of the batches: ``../shared/vectors/strongswan-transcripts/`` (strongSwan 6.0.6 TNC
client and server over PT-EAP, captured on this machine; see the README there).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentDecided,
    BatchType,
    ConnectionState,
    OutboundPa,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbPa,
    PbTncConfig,
    PbTncState,
    ResultReceived,
    StateChanged,
    Tncc,
    Tncs,
    decode_batch,
)
from tests.nea.pb_tnc.pbtnc_fakes import TRANSCRIPTS, CommandValidator, FakeCollector

if not TRANSCRIPTS.is_dir():
    pytest.skip(
        "shared vectors (../shared/vectors) absent: not a full nea-gateway workspace",
        allow_module_level=True,
    )

FOLDERS = ["allow", "isolate", "block", "forwarding", "retry"]
S = PbTncState


def _batches(folder: str, direction: str) -> list[tuple[Path, bytes]]:
    return [
        (p, p.read_bytes()) for p in sorted((TRANSCRIPTS / folder).glob(f"*-{direction}-*.bin"))
    ]


def _expected(folder: str) -> tuple[AccessRecommendation, int]:
    (_, data), *_ = [b for b in _batches(folder, "s2c") if b[0].name.endswith("RESULT.bin")]
    batch = decode_batch(data)
    rec = next(m for m in batch.messages if isinstance(m, PbAccessRecommendation))
    ev = next(m for m in batch.messages if isinstance(m, PbAssessmentResult))
    return rec.recommendation, ev.result


@pytest.mark.parametrize("folder", FOLDERS)
def test_tncs_reaches_strongswans_verdict(folder: str) -> None:
    validator = CommandValidator()
    tncs = Tncs([validator], config=PbTncConfig.for_pt_eap())
    sent_types: list[BatchType] = []
    for _, data in _batches(folder, "c2s"):
        for out in tncs.receive_batch(data):
            sent_types.append(decode_batch(out).batch_type)
    expected_types = [BatchType[p.stem.split("-")[2]] for p, _ in _batches(folder, "s2c")]
    assert sent_types == expected_types
    events = tncs.events()
    states = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    rounds = len(expected_types) - 1  # SDATA/CDATA rounds before RESULT
    assert states == (
        [(S.INIT, S.SERVER_WORKING)]
        + [(S.SERVER_WORKING, S.CLIENT_WORKING), (S.CLIENT_WORKING, S.SERVER_WORKING)] * rounds
        + [(S.SERVER_WORKING, S.DECIDED), (S.DECIDED, S.END)]
    )
    (decided,) = [e for e in events if isinstance(e, AssessmentDecided)]
    assert (decided.recommendation, decided.evaluation) == _expected(folder)
    expected_command = "allow" if folder == "forwarding" else folder
    assert validator.command == expected_command
    assert validator.states[0] == ConnectionState.CREATE
    assert validator.states[-1] == ConnectionState.DELETE


def _replaying_collectors(first_cdata: bytes) -> list[FakeCollector]:
    """Collectors that send exactly what strongSwan's IMCs sent in the first CDATA."""
    collectors: dict[int, FakeCollector] = {}
    for message in decode_batch(first_cdata).messages:
        if isinstance(message, PbPa):
            c = collectors.setdefault(message.collector_id, FakeCollector(message.collector_id))
            c.initial.append(
                OutboundPa(
                    message.pa_vendor_id,
                    message.pa_subtype,
                    message.body,
                    peer_id=message.validator_id,
                    exclusive=message.exclusive,
                )
            )
    return [collectors[k] for k in sorted(collectors)]


@pytest.mark.parametrize("folder", FOLDERS)
def test_tncc_answers_byte_for_byte_like_strongswan(folder: str) -> None:
    c2s = _batches(folder, "c2s")
    s2c = _batches(folder, "s2c")
    collectors = _replaying_collectors(c2s[0][1])
    tncc = Tncc(collectors, config=PbTncConfig.for_pt_eap())
    assert tncc.start() == [c2s[0][1]]
    for (_, server_batch), (_, client_batch) in zip(s2c, c2s[1:], strict=True):
        assert tncc.receive_batch(server_batch) == [client_batch]
    assert tncc.state is S.END
    result = tncc.result
    assert isinstance(result, ResultReceived)
    assert (result.recommendation, result.evaluation) == _expected(folder)
    # the server's EXCL messages addressed to collector 1 reached collector 1 only
    server_pas = [m for _, d in s2c for m in decode_batch(d).messages if isinstance(m, PbPa)]
    for c in collectors:
        for m in c.received:
            assert not m.exclusive or m.collector_id == c.collector_id
    assert sum(len(c.received) for c in collectors) >= len([m for m in server_pas if m.exclusive])
    access_states = {
        AccessRecommendation.ALLOWED: ConnectionState.ACCESS_ALLOWED,
        AccessRecommendation.QUARANTINED: ConnectionState.ACCESS_ISOLATED,
        AccessRecommendation.DENIED: ConnectionState.ACCESS_NONE,
    }
    assert result.recommendation is not None
    assert collectors[0].states == [
        ConnectionState.CREATE,
        ConnectionState.HANDSHAKE,
        access_states[result.recommendation],
        ConnectionState.DELETE,
    ]


def test_tncc_reports_reason_string_of_isolate() -> None:
    tncc = Tncc([], config=PbTncConfig.for_pt_eap())
    tncc.start()
    for _, data in _batches("isolate", "s2c"):
        tncc.receive_batch(data)
    assert tncc.result is not None
    assert [r.language for r in tncc.result.reasons] == ["en"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_pb_pa_bodies_are_pa_tnc_messages(folder: str) -> None:
    """Cross-check with ``nea.pa`` (tests only: ``nea.pb_tnc`` itself never imports it): every
    PB-PA body of the transcript is a PA-TNC message, and the Test IMC's ITA Command is the
    one our test validator found."""
    from nea.pa import PaMessage
    from nea.pa.ita import ItaCommand

    commands = []
    for _, data in _batches(folder, "c2s") + _batches(folder, "s2c"):
        for message in decode_batch(data).messages:
            if isinstance(message, PbPa):
                pa = PaMessage.parse(message.body)
                assert pa.serialize() == message.body
                commands += [a.command for a in pa.find(ItaCommand)]
    assert commands == ["allow" if folder == "forwarding" else folder]


def test_pb_tnc_does_not_import_pa() -> None:
    import ast

    package = Path(__file__).resolve().parents[3] / "nea" / "pb_tnc"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith(("nea.pa", "twisted", "socket")), source
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("nea.pa", "twisted", "socket")), source
