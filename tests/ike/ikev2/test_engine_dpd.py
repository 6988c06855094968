"""Dead peer detection from ``PeerConfig.dpd_delay`` (swanctl ``dpd_delay``; RFC 7296, 1.4 and
2.4): the responder (a gateway) sends an empty INFORMATIONAL after ``dpd_delay`` seconds
without an authenticated message from the peer, any such message moves the check on, and an
unanswered check closes the IKE_SA after the retransmits."""

from __future__ import annotations

import logging

import pytest

from ike.constants import ExchangeType
from ike.errors import LocalProtocolError
from ike.message import decode_message
from ike.sa import IkeSaClosed, SaState
from tests.ike.ikev2.ike_pair import gw_peer, make_pair


def _informational(pair, direction: str) -> list[tuple[int, bool]]:  # type: ignore[no-untyped-def]
    out = []
    for name, d in pair.wire:
        m = decode_message(d.data)
        if name == direction and m.header.exchange_type == ExchangeType.INFORMATIONAL:
            out.append((m.header.message_id, m.is_response))
    return out


def test_gateway_sends_liveness_checks_after_dpd_delay(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ike")
    pair = make_pair(server_peers=(gw_peer(dpd_delay=5.0),))
    spi = pair.initiate()
    pair.pump()
    (sa_spi,) = pair.server._sas  # the responder's IKE_SA
    assert pair.server.get_timer() == pytest.approx(pair.now + 5.0)
    pair.advance(4.9)
    pair.pump()
    assert _informational(pair, "s>c") == []
    pair.advance(0.1)
    pair.pump()
    # an empty request from the gateway (message ID 0: its first request), answered
    assert _informational(pair, "s>c") == [(0, False)]
    assert _informational(pair, "c>s") == [(0, True)]
    sent = [r.getMessage() for r in caplog.records if "sending INFORMATIONAL" in r.getMessage()]
    assert sent and sent[0].endswith("request 0 [  ]"), sent  # no payloads
    assert pair.server.ike_sa_state(sa_spi) is SaState.ESTABLISHED
    assert pair.server.get_timer() == pytest.approx(pair.now + 5.0)
    pair.advance(5.0)
    pair.pump()
    assert _informational(pair, "s>c") == [(0, False), (1, False)]
    assert pair.client.ike_sa_state(spi) is SaState.ESTABLISHED


def test_traffic_from_the_peer_postpones_the_check() -> None:
    pair = make_pair(server_peers=(gw_peer(dpd_delay=5.0),))
    spi = pair.initiate()
    pair.pump()
    pair.advance(3.0)
    pair.client.send_liveness(spi, pair.now)  # the client's own check reaches the gateway
    pair.pump()
    assert pair.server.get_timer() == pytest.approx(pair.now + 5.0)
    pair.advance(4.0)
    pair.pump()
    assert _informational(pair, "s>c") == [(2, True)]  # only the answer to the client
    pair.advance(1.0)
    pair.pump()
    assert (0, False) in _informational(pair, "s>c")


def test_unanswered_check_closes_the_ike_sa() -> None:
    pair = make_pair(
        server_peers=(gw_peer(dpd_delay=2.0),),
        retransmit_timeout=1.0,
        retransmit_base=2.0,
        retransmit_tries=2,
    )
    pair.initiate()
    pair.pump()
    pair.drop = lambda name, d: True  # the client is gone
    for _ in range(10):
        t = pair.server.get_timer()
        if t is None:
            break
        pair.advance(t - pair.now)
        pair.pump()
    (closed,) = pair.events("server", IkeSaClosed)
    assert "retransmits exhausted" in closed.reason
    # check at 2 s, retransmits at 3 s and 5 s, given up at 9 s
    assert pair.now == pytest.approx(9.0)
    assert len(_informational(pair, "s>c")) == 3


def test_no_checks_without_dpd_delay() -> None:
    pair = make_pair()
    pair.initiate()
    pair.pump()
    assert pair.server.get_timer() is None


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_dpd_delay_must_be_positive(bad: float) -> None:
    with pytest.raises(LocalProtocolError, match="dpd_delay"):
        gw_peer(dpd_delay=bad)
