"""Bad input against the sans-I/O engine (companion of test_ikev2_badinput.py, no root needed).

Counters in ``IkeEngine.stats``, the key export gate, the INVALID_SPI notify (RFC 7296, 3.10.1:
an ESP SPI we do not know; answered with an empty INFORMATIONAL response, the IKE_SA stays),
and a fuzz run: arbitrary datagrams and bit-flipped copies of real messages never raise, never
get an answer (except retransmission copies and INIT-shaped errors) and never end the SA.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ike.config import EngineConfig
from ike.constants import ExchangeType, NotifyType
from ike.crypto import INTEG_ALGS, encr_alg
from ike.errors import LocalProtocolError
from ike.message import Message, SkCipher, decode_message, encode_message, open_message
from ike.payloads import Notify
from ike.sa import STAT_NAMES, IkeEngine, IkeSaClosed, IkeSaEstablished, IkeSaSecrets, SaState
from tests.ike.ikev2.ike_pair import CL, GW, Pair, cl_peer, gw_peer


def _pair(export: bool = True) -> tuple[Pair, bytes]:
    client = IkeEngine(EngineConfig(peers=(cl_peer(),)))
    server = IkeEngine(EngineConfig(peers=(gw_peer(),), debug_export_keys=export))
    pair = Pair(client, server)
    pair.initiate()
    pair.pump()
    (est,) = pair.events("server", IkeSaEstablished)
    return pair, est.ike_sa


def _initiator_cipher(k: IkeSaSecrets) -> SkCipher:
    encr = encr_alg(k.encr_id, k.encr_key_bits)
    assert encr is not None
    return SkCipher(encr, INTEG_ALGS.get(k.integ_id), k.sk_ei, k.sk_ai, k.sk_er, k.sk_ar)


def test_key_export_needs_the_debug_option() -> None:
    pair, spi = _pair(export=False)
    with pytest.raises(LocalProtocolError, match="debug_export_keys"):
        pair.server.export_keys(spi)
    pair, spi = _pair(export=True)
    k = pair.server.export_keys(spi)
    assert k.spi_r == spi and "<secret>" in repr(k) and k.sk_ei.hex() not in repr(k)


def test_counters_start_at_zero_and_count() -> None:
    pair, spi = _pair()
    s = pair.server.stats
    assert set(s) == set(STAT_NAMES)
    assert s["datagrams_received"] == 2 and s["undecodable"] == 0
    pair.server.receive_datagram(b"\x01\x02", CL, 1.0, local=GW)
    pair.server.receive_datagram(bytes(8) + spi + bytes(12), CL, 1.0, local=GW)
    assert s["undecodable"] == 2
    assert pair.server.datagrams_to_send(1.0) == []


def test_invalid_spi_notify_is_answered_and_the_sa_stays() -> None:
    pair, spi = _pair()
    k = pair.server.export_keys(spi)
    cipher = _initiator_cipher(k)
    # RFC 7296, 3.10.1: the unknown SPI is the notification data; no SPI field, protocol 0
    notify = Notify(NotifyType.INVALID_SPI, struct.pack("!I", 0xDEADBEEF))
    msg = Message(k.spi_i, k.spi_r, ExchangeType.INFORMATIONAL, 2, False, True, (notify,))
    (data,) = encode_message(msg, cipher)
    pair.server.receive_datagram(data, CL, 1.0, local=GW)
    (out,) = pair.server.datagrams_to_send(1.0)
    reply = open_message(decode_message(out.data), cipher)
    assert reply.is_response and reply.message_id == 2 and reply.payloads == ()
    assert pair.server.ike_sa_state(spi) is SaState.ESTABLISHED
    pair.collect()
    assert not pair.events("server", IkeSaClosed)
    assert pair.server.stats["errors_answered"] == 0
    # the same bytes again: a retransmission, answered from the cache with the same reply
    pair.server.receive_datagram(data, CL, 2.0, local=GW)
    assert [d.data for d in pair.server.datagrams_to_send(2.0)] == [out.data]
    assert pair.server.stats["retransmits_answered"] == 1


_PAIR, _SPI = _pair()
_REAL = [d.data for name, d in _PAIR.wire if name == "c>s"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=400),
        st.tuples(
            st.sampled_from(range(len(_REAL))), st.integers(0, 10_000), st.integers(0, 7)
        ).map(
            lambda t: bytes(
                b ^ (1 << t[2]) if i == t[1] % len(_REAL[t[0]]) else b
                for i, b in enumerate(_REAL[t[0]])
            )
        ),
    )
)
def test_fuzzed_datagrams_never_end_the_sa(data: bytes) -> None:
    server = _PAIR.server
    server.receive_datagram(data, CL, 2.0, local=GW)
    for out in server.datagrams_to_send(2.0):
        # only INIT-shaped requests get an (unprotected) error, and retransmissions the cache
        raw = decode_message(out.data)
        assert raw.header.exchange_type in (ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH)
    assert server.ike_sa_state(_SPI) is SaState.ESTABLISHED
    while (ev := server.next_event()) is not None:
        assert not isinstance(ev, IkeSaClosed), ev


def test_deadlines_of_many_sas_fire_in_order() -> None:
    """The deadline heap: 30 initiators whose peer never answers retransmit on charon's
    schedule and all give up; the next deadline is always the earliest of all SAs."""
    client = IkeEngine(EngineConfig(peers=(cl_peer(),), retransmit_tries=2))
    spis = []
    for i in range(30):
        spis.append(client.initiate("home", float(i), local=CL, remote=GW))
    assert len(client.datagrams_to_send(30.0)) == 30  # the IKE_SA_INIT requests
    assert client.get_timer() == 4.0  # the first one's retransmit (timeout 4 s)
    sent: list[float] = []
    closed = set()
    now = 0.0
    while (t := client.get_timer()) is not None:
        assert t >= now
        now = t
        client.handle_timer(now)
        sent += [now] * len(client.datagrams_to_send(now))
        while (ev := client.next_event()) is not None:
            if isinstance(ev, IkeSaClosed):
                closed.add(ev.ike_sa)
    assert closed == set(spis)
    assert len(sent) == 30 * 2  # two retransmits each, then the give-up
    assert client.get_timer() is None
