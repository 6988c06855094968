"""Hypothesis over (state, input): whatever arrives, in whatever state, the engine answers
with a protocol error, drops it or carries on; it never raises."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ike.constants import ExchangeType, PayloadType
from ike.payloads import (
    Authentication,
    CertificatePayload,
    ConfigAttribute,
    ConfigPayload,
    Delete,
    EapPayload,
    IDi,
    IDr,
    KeyExchange,
    Nonce,
    Notify,
    Payload,
    SecurityAssociation,
    TrafficSelector,
    TSi,
    TSr,
    UnknownPayload,
)
from ike.sa import SaState
from tests.ike.ikev2.ike_pair import CL, GW, make_pair

small = st.binary(max_size=24)
ts = st.builds(
    TrafficSelector,
    st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.integers(0, 65535),
)
payload = st.one_of(
    st.builds(
        Notify,
        st.integers(0, 65535),
        small,
        st.sampled_from([0, 1, 3]),
        st.sampled_from([b"", b"\x00\x00\x00\x01", b"\x01" * 8]),
    ),
    st.builds(Delete, st.sampled_from([1, 3]), st.just(())),
    st.builds(
        Delete, st.just(3), st.lists(st.binary(min_size=4, max_size=4), max_size=3).map(tuple)
    ),
    st.builds(IDi, st.integers(0, 12), st.binary(min_size=1, max_size=16)),
    st.builds(IDr, st.integers(0, 12), st.binary(min_size=1, max_size=16)),
    st.builds(Authentication, st.integers(0, 15), st.binary(min_size=1, max_size=40)),
    st.builds(Nonce, st.binary(min_size=16, max_size=40)),
    st.builds(KeyExchange, st.sampled_from([0, 14, 19, 31, 99]), st.binary(max_size=70)),
    st.builds(TSi, st.lists(ts, min_size=1, max_size=2).map(tuple)),
    st.builds(TSr, st.lists(ts, min_size=1, max_size=2).map(tuple)),
    st.builds(
        ConfigPayload,
        st.integers(0, 4),
        st.lists(st.builds(ConfigAttribute, st.integers(0, 20), small), max_size=3).map(tuple),
    ),
    st.builds(
        EapPayload,
        st.tuples(st.integers(1, 6), st.integers(0, 255), small).map(
            lambda t: bytes([t[0], t[1]]) + struct.pack("!H", 4 + len(t[2])) + t[2]
        ),
    ),
    st.builds(CertificatePayload, st.integers(0, 12), small),
    st.builds(UnknownPayload, st.integers(49, 52), small, st.booleans()),
    st.just(SecurityAssociation(())),
)


def _sa_payloads() -> st.SearchStrategy[Payload]:
    from ike.config import EspProposal, IkeProposal

    return st.sampled_from(
        [
            SecurityAssociation(
                (EspProposal.parse("aes128gcm16").to_proposal(1, b"\x01\x02\x03\x04"),)
            ),
            SecurityAssociation(
                (IkeProposal.parse("aes128-sha256-x25519").to_proposal(1, b"\x09" * 8),)
            ),
            SecurityAssociation((EspProposal.parse("aes128-sha256").to_proposal(1, b"\x00" * 4),)),
        ]
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stage=st.sampled_from(["half-open", "established"]),
    exchange=st.sampled_from(
        [ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL, 99]
    ),
    payloads=st.lists(st.one_of(payload, _sa_payloads()), max_size=6),
)
def test_protected_requests_in_any_state(
    stage: str, exchange: int, payloads: list[Payload]
) -> None:
    pair = make_pair()
    spi = pair.initiate()
    if stage == "half-open":
        # deliver IKE_SA_INIT only; the client has keys, the server waits for IKE_AUTH
        (init,) = pair.client.datagrams_to_send(0)
        pair.server.receive_datagram(init.data, CL, 0, local=GW)
        (resp,) = pair.server.datagrams_to_send(0)
        pair.client.receive_datagram(resp.data, GW, 0, local=CL)
        pair.client.datagrams_to_send(0)  # discard its IKE_AUTH
        sa = pair.client._sas[spi]
        sa.outstanding = None
    else:
        pair.pump()
        sa = pair.client._sas[spi]
        assert sa.state is SaState.ESTABLISHED
    sa.send_request(exchange, list(payloads), pair.now)
    pair.pump()  # must not raise
    pair.advance(200.0)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_datagrams_of_a_real_exchange(data: st.DataObject) -> None:
    pair = make_pair()
    pair.initiate()
    pair.pump()
    recorded = [(n, d) for n, d in pair.wire]
    name, d = data.draw(st.sampled_from(recorded))
    raw = bytearray(d.data)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(28, len(raw)))
        raw = raw[:cut]
        raw[24:28] = struct.pack("!I", len(raw))
    target, src = (pair.server, CL) if name == "c>s" else (pair.client, GW)
    target.receive_datagram(bytes(raw), src, 1.0, local=GW if name == "c>s" else CL)
    pair.pump()
    pair.advance(100.0)
    assert PayloadType.SK  # the engines are still usable
