"""strongSwan's PB-TNC conversations replayed through our PT-EAP methods.

Source: ``../shared/vectors/strongswan-transcripts/`` (strongSwan 6.0.6 client and server over
PT-EAP inside EAP-TTLS, captured on this machine).  The client's batches, wrapped in PT-EAP
Responses, go to our PtEapServer; the server's batches, wrapped in PT-EAP Requests, go to our
PtEapPeer (whose collectors replay strongSwan's first CDATA): the EAP decision must follow
strongSwan's verdict (Denied fails the EAP) and our peer must answer byte for byte.
"""

from __future__ import annotations

import pytest

from ike.eap.method import Decision
from nea.pb_tnc import (
    AccessRecommendation,
    OutboundPa,
    PbPa,
    PbTncConfig,
    Tncc,
    Tncs,
    decode_batch,
)
from nea.pt_eap import PtEapPacket, PtEapPeer, PtEapServer
from tests.nea.pb_tnc.pbtnc_fakes import TRANSCRIPTS, CommandValidator, FakeCollector

if not TRANSCRIPTS.is_dir():
    pytest.skip("shared vectors (../shared/vectors) absent", allow_module_level=True)

VERDICT = {
    "allow": (Decision.SUCCESS, AccessRecommendation.ALLOWED),
    "isolate": (Decision.SUCCESS, AccessRecommendation.QUARANTINED),
    "block": (Decision.FAILURE, AccessRecommendation.DENIED),
    "forwarding": (Decision.SUCCESS, AccessRecommendation.ALLOWED),
    "retry": (Decision.SUCCESS, AccessRecommendation.ALLOWED),
}


def _replaying_collectors(first_cdata: bytes) -> list[FakeCollector]:
    """Collectors that send exactly what strongSwan's IMCs sent in the first CDATA."""
    collectors: dict[int, FakeCollector] = {}
    for m in decode_batch(first_cdata).messages:
        if isinstance(m, PbPa):
            c = collectors.setdefault(m.collector_id, FakeCollector(m.collector_id))
            c.initial.append(OutboundPa(m.pa_vendor_id, m.pa_subtype, m.body,
                                        peer_id=m.validator_id, exclusive=m.exclusive))
    return [collectors[k] for k in sorted(collectors)]


def _batches(folder: str, direction: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((TRANSCRIPTS / folder).glob(f"*-{direction}-*.bin"))]


@pytest.mark.parametrize("folder", list(VERDICT))
def test_server_fed_strongswans_client(folder: str) -> None:
    server = PtEapServer(Tncs([CommandValidator()], config=PbTncConfig.for_pt_eap()))
    assert server.start() == b"\x81"
    c2s = _batches(folder, "c2s")
    decisions = []
    for batch in c2s:
        step = server.receive(PtEapPacket(batch).encode())
        decisions.append(step.decision)
        if step.decision is Decision.CONTINUE:
            assert step.reply is not None and step.reply[0] == 0x01
    decision, rec = VERDICT[folder]
    assert decisions == [Decision.CONTINUE] * (len(c2s) - 1) + [decision]
    assert server.recommendation is rec


@pytest.mark.parametrize("folder", list(VERDICT))
def test_peer_answers_like_strongswans_client(folder: str) -> None:
    c2s, s2c = _batches(folder, "c2s"), _batches(folder, "s2c")
    peer = PtEapPeer(Tncc(_replaying_collectors(c2s[0]), config=PbTncConfig.for_pt_eap()))
    step = peer.receive(b"\x81")
    assert step.reply == b"\x01" + c2s[0]
    for server_batch, client_batch in zip(s2c, c2s[1:], strict=True):
        step = peer.receive(PtEapPacket(server_batch).encode())
        assert step.reply == b"\x01" + client_batch
    decision, rec = VERDICT[folder]
    assert step.decision is decision
    assert peer.recommendation is rec
