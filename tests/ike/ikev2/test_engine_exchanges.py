"""Every exchange and error notify of the engine, initiator and responder back to back with a
fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import ipaddress

import pytest

from ike.config import ChildConfig, IkeProposal
from ike.constants import ExchangeType, NotifyType, PayloadType
from ike.message import Message, decode_message, encode_message
from ike.payloads import Delete, EncryptedFragment, Nonce, Notify, UnknownPayload
from ike.sa import (
    ChildSaDeleted,
    ChildSaFailed,
    ChildSaInstalled,
    Datagram,
    IkeSaClosed,
    IkeSaEstablished,
    SaState,
)
from tests.ike.ikev2.ike_pair import CL, GW, MemoryPool, cl_peer, gw_peer, make_pair


def _exchanges(pair, direction: str | None = None) -> list[tuple[str, int, bool]]:  # type: ignore[no-untyped-def]
    out = []
    for name, d in pair.wire:
        if direction and name != direction:
            continue
        raw = decode_message(d.data)
        out.append((name, raw.header.exchange_type, raw.is_response))
    return out


@pytest.mark.parametrize(
    "proposal",
    [
        "aes128-sha256-x25519",
        "aes192-sha384-ecp384",
        "aes256-sha512-ecp521",
        "aes128-sha1-modp2048",
        "aes256-sha256-modp3072",
        "aes128-sha256-modp4096",
        "aes128gcm16-prfsha256-curve448",
        "aes256gcm16-prfsha512-ecp256",
        "chacha20poly1305-prfsha384-x25519",
    ],
)
def test_every_suite_establishes(proposal: str) -> None:
    prop = (IkeProposal.parse(proposal),)
    pair = make_pair((cl_peer(ike_proposals=prop),), (gw_peer(ike_proposals=prop),))
    pair.initiate()
    pair.pump()
    (est,) = pair.events("client", IkeSaEstablished)
    assert est.dh == IkeProposal.parse(proposal).dh[0].name
    assert len(pair.events("server", ChildSaInstalled)) == 1


def test_responder_prefers_its_configured_order() -> None:
    client = cl_peer(
        ike_proposals=(
            IkeProposal.parse("aes128-sha256-x25519"),
            IkeProposal.parse("aes256gcm16-prfsha384-x25519"),
        )
    )
    server = gw_peer(
        ike_proposals=(
            IkeProposal.parse("aes256gcm16-prfsha384-x25519"),
            IkeProposal.parse("aes128-sha256-x25519"),
        )
    )
    pair = make_pair((client,), (server,))
    pair.initiate()
    pair.pump()
    (est,) = pair.events("server", IkeSaEstablished)
    assert est.encr == "ENCR_AES_GCM_16_256" and est.prf == "PRF_HMAC_SHA2_384"


def test_no_proposal_chosen() -> None:
    pair = make_pair(
        (cl_peer(ike_proposals=(IkeProposal.parse("aes256-sha512-ecp521"),)),),
        (gw_peer(ike_proposals=(IkeProposal.parse("aes128-sha256-x25519"),)),),
    )
    pair.initiate()
    pair.pump()
    (closed,) = pair.events("client", IkeSaClosed)
    assert closed.error == NotifyType.NO_PROPOSAL_CHOSEN
    assert not pair.events("server", IkeSaEstablished)


def test_invalid_ke_payload_then_retry_with_the_wanted_group() -> None:
    client = cl_peer(ike_proposals=(IkeProposal.parse("aes128-sha256-x25519-ecp256"),))
    server = gw_peer(ike_proposals=(IkeProposal.parse("aes128-sha256-ecp256"),))
    pair = make_pair((client,), (server,))
    pair.initiate()
    pair.pump()
    first_reply = decode_message(pair.wire[1][1].data).plain()
    assert first_reply.payloads == (Notify(NotifyType.INVALID_KE_PAYLOAD, b"\x00\x13"),)
    (est,) = pair.events("client", IkeSaEstablished)
    assert est.dh == "ECP_256"
    assert [e[1] for e in _exchanges(pair)].count(ExchangeType.IKE_SA_INIT) == 4


def test_invalid_ke_for_a_group_we_did_not_offer_ends_the_attempt() -> None:
    client = cl_peer(ike_proposals=(IkeProposal.parse("aes128-sha256-x25519"),))
    pair = make_pair((client,))
    pair.initiate()
    # forge the responder's answer
    (d,) = pair.client.datagrams_to_send(0)
    raw = decode_message(d.data)
    reply = Message(
        raw.header.spi_i,
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        0,
        True,
        False,
        (Notify(NotifyType.INVALID_KE_PAYLOAD, b"\x00\x0e"),),
    )
    pair.client.receive_datagram(encode_message(reply)[0], GW, 0, local=CL)
    pair.collect()
    (closed,) = pair.events("client", IkeSaClosed)
    assert closed.error == NotifyType.INVALID_KE_PAYLOAD


def test_cookie_above_the_half_open_threshold() -> None:
    pair = make_pair(cookie_threshold=0)
    pair.initiate()
    pair.pump()
    cookie_reply = decode_message(pair.wire[1][1].data).plain()
    assert [type(p) for p in cookie_reply.payloads] == [Notify]
    assert cookie_reply.payloads[0].notify_type == NotifyType.COOKIE  # type: ignore[attr-defined]
    retry = decode_message(pair.wire[2][1].data).plain()
    assert retry.payloads[0] == cookie_reply.payloads[0]  # COOKIE first (RFC 7296, 2.6)
    assert len(pair.events("client", IkeSaEstablished)) == 1


def test_forged_cookie_is_answered_with_a_fresh_one() -> None:
    pair = make_pair(cookie_threshold=0)
    pair.initiate()
    (d,) = pair.client.datagrams_to_send(0)
    msg = decode_message(d.data).plain()
    forged = Message(
        msg.spi_i,
        msg.spi_r,
        msg.exchange_type,
        0,
        False,
        True,
        (Notify(NotifyType.COOKIE, b"\x01" + bytes(32)), *msg.payloads),
    )
    pair.server.receive_datagram(encode_message(forged)[0], CL, 0, local=GW)
    (reply,) = pair.server.datagrams_to_send(0)
    payloads = decode_message(reply.data).plain().payloads
    assert payloads[0].notify_type == NotifyType.COOKIE  # type: ignore[attr-defined]
    assert payloads[0].data != b"\x01" + bytes(32)  # type: ignore[attr-defined]
    assert pair.server.get_timer() is None  # still stateless


def test_wrong_psk_authentication_failed() -> None:
    pair = make_pair((cl_peer(psk=b"not the secret"),))
    pair.initiate()
    pair.pump()
    assert pair.events("client", IkeSaClosed)[0].error == NotifyType.AUTHENTICATION_FAILED
    assert pair.events("server", IkeSaClosed)[0].error == NotifyType.AUTHENTICATION_FAILED
    assert not pair.events("server", IkeSaEstablished)


def test_unknown_identity_authentication_failed() -> None:
    server = gw_peer(remote_id=cl_peer().local_id.parse("someone.else"))
    pair = make_pair(server_peers=(server,))
    pair.initiate()
    pair.pump()
    assert pair.events("client", IkeSaClosed)[0].error == NotifyType.AUTHENTICATION_FAILED


def test_ts_unacceptable_keeps_the_ike_sa() -> None:
    pair = make_pair((cl_peer(children=(ChildConfig.make("home", remote_ts=["10.9.0.0/16"]),)),))
    pair.initiate()
    pair.pump()
    assert len(pair.events("client", IkeSaEstablished)) == 1
    assert pair.events("client", ChildSaFailed)[0].error == NotifyType.TS_UNACCEPTABLE
    assert pair.events("server", ChildSaFailed)[0].error == NotifyType.TS_UNACCEPTABLE
    assert not pair.events("server", ChildSaInstalled)


def test_child_no_proposal_chosen() -> None:
    client = cl_peer(
        children=(
            ChildConfig.make("home", remote_ts=["10.1.0.0/16"], esp_proposals=["aes256-sha512"]),
        )
    )
    server = gw_peer(
        children=(ChildConfig.make("net", local_ts=["10.1.0.0/16"], esp_proposals=["aes128gcm16"]),)
    )
    pair = make_pair((client,), (server,))
    pair.initiate()
    pair.pump()
    assert pair.events("client", ChildSaFailed)[0].error == NotifyType.NO_PROPOSAL_CHOSEN


def test_narrowing_to_a_subnet_and_a_port() -> None:
    client = cl_peer(children=(ChildConfig.make("home", remote_ts=["10.0.0.0/8"]),))
    server = gw_peer(children=(ChildConfig.make("net", local_ts=["10.1.2.0/24"]),))
    pair = make_pair((client,), (server,))
    pair.initiate()
    pair.pump()
    (child,) = pair.events("client", ChildSaInstalled)
    assert [str(t) for t in child.remote_ts] == ["10.1.2.0-10.1.2.255"]


def test_virtual_ip_and_dns_from_the_pool_then_release_on_delete() -> None:
    pool = MemoryPool()
    dns = (ipaddress.ip_address("10.1.0.53"),)
    client = cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),))
    pair = make_pair((client,), (gw_peer(pool=pool, dns=dns),))
    spi = pair.initiate()
    pair.pump()
    (est,) = pair.events("client", IkeSaEstablished)
    assert [str(v) for v in est.virtual_ips] == ["10.3.0.1"]
    (child,) = pair.events("server", ChildSaInstalled)
    assert [str(t) for t in child.remote_ts] == ["10.3.0.1-10.3.0.1"]
    (cchild,) = pair.events("client", ChildSaInstalled)
    assert [str(t) for t in cchild.local_ts] == ["10.3.0.1-10.3.0.1"]
    pair.client.delete_ike_sa(spi, pair.now)
    pair.pump()
    assert pair.events("client", IkeSaClosed) and pair.events("server", IkeSaClosed)
    assert len(pair.events("client", ChildSaDeleted)) == 1
    assert len(pair.events("server", ChildSaDeleted)) == 1
    assert [str(a) for a in pool.released] == ["10.3.0.1"]


def test_internal_address_failure_when_the_pool_is_empty() -> None:
    pool = MemoryPool("10.3.0.0/32")
    pool.free.clear()
    client = cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),))
    pair = make_pair((client,), (gw_peer(pool=pool),))
    pair.initiate()
    pair.pump()
    assert len(pair.events("client", IkeSaEstablished)) == 1
    assert pair.events("client", ChildSaFailed)[0].error == NotifyType.INTERNAL_ADDRESS_FAILURE


def test_lost_response_is_retransmitted_from_the_cache() -> None:
    lost: list[int] = []

    def drop(name: str, d: Datagram) -> bool:
        raw = decode_message(d.data)
        if name == "s>c" and raw.header.exchange_type == ExchangeType.IKE_AUTH and not lost:
            lost.append(1)
            return True
        return False

    pair = make_pair()
    pair.drop = drop
    pair.initiate()
    pair.pump()
    assert not pair.events("client", IkeSaEstablished)
    assert pair.client.get_timer() == pytest.approx(4.0)
    pair.advance(4.0)
    pair.pump()
    assert len(pair.events("client", IkeSaEstablished)) == 1
    assert len(pair.events("server", IkeSaEstablished)) == 1  # processed once
    auth_responses = [
        d
        for n, d in pair.wire
        if n == "s>c" and decode_message(d.data).header.exchange_type == ExchangeType.IKE_AUTH
    ]
    assert auth_responses[0].data == auth_responses[1].data  # the cached bytes


def test_retransmits_back_off_then_give_up() -> None:
    pair = make_pair()
    pair.drop = lambda name, d: name == "s>c"
    pair.initiate()
    pair.pump()
    times = []
    while pair.client.get_timer() is not None and len(times) < 20:
        t = pair.client.get_timer()
        assert t is not None
        times.append(t)
        pair.advance(t - pair.now)
        pair.pump()
    gaps = [round(b - a, 3) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [4.0, 7.2, 12.96, 23.328, 41.99, 75.583]
    (closed,) = pair.events("client", IkeSaClosed)
    assert "retransmits exhausted" in closed.reason
    assert len([n for n, _ in pair.wire if n == "c>s"]) == 6


def test_half_open_sa_expires_on_the_responder() -> None:
    pair = make_pair()
    pair.drop = lambda name, d: (
        name == "c>s" and (decode_message(d.data).header.exchange_type != ExchangeType.IKE_SA_INIT)
    )
    pair.initiate()
    pair.pump()
    assert pair.server.get_timer() == pytest.approx(30.0)
    pair.advance(30.0)
    assert pair.events("server", IkeSaClosed)


def test_replayed_and_out_of_window_requests() -> None:
    pair = make_pair()
    pair.initiate()
    pair.pump()
    auth_req = next(
        d
        for n, d in pair.wire
        if n == "c>s" and decode_message(d.data).header.exchange_type == ExchangeType.IKE_AUTH
    )
    pair.server.receive_datagram(auth_req.data, CL, 1, local=GW)
    (again,) = pair.server.datagrams_to_send(1)
    assert again.data == pair.wire[3][1].data
    pair.collect()
    assert len(pair.events("server", IkeSaEstablished)) == 1
    raw = bytearray(auth_req.data)
    raw[20:24] = (7).to_bytes(4, "big")  # message ID far ahead: dropped
    pair.server.receive_datagram(bytes(raw), CL, 1, local=GW)
    assert pair.server.datagrams_to_send(1) == []


def test_tampered_request_is_dropped() -> None:
    pair = make_pair()
    pair.mangle = lambda name, d: (
        d.data[:-1] + bytes([d.data[-1] ^ 1])
        if name == "c>s"
        and decode_message(d.data).header.exchange_type == ExchangeType.IKE_AUTH
        and not pair.server_events
        else d.data
    )
    pair.initiate()
    pair.pump()
    assert not pair.events("server", IkeSaEstablished)
    assert not [n for n, _ in pair.wire[2:] if n == "s>c"]


def test_unsupported_critical_payload_in_ike_sa_init() -> None:
    pair = make_pair()
    msg = Message(
        b"\x05" * 8,
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        0,
        False,
        True,
        (Nonce(b"n" * 16), UnknownPayload(99, b"?", True)),
    )
    pair.server.receive_datagram(encode_message(msg)[0], CL, 0, local=GW)
    (reply,) = pair.server.datagrams_to_send(0)
    payloads = decode_message(reply.data).plain().payloads
    assert payloads == (Notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, b"\x63"),)


def test_missing_ke_is_invalid_syntax() -> None:
    pair = make_pair()
    msg = Message(
        b"\x05" * 8, bytes(8), ExchangeType.IKE_SA_INIT, 0, False, True, (Nonce(b"n" * 16),)
    )
    pair.server.receive_datagram(encode_message(msg)[0], CL, 0, local=GW)
    (reply,) = pair.server.datagrams_to_send(0)
    payloads = decode_message(reply.data).plain().payloads
    assert payloads[0].notify_type == NotifyType.INVALID_SYNTAX  # type: ignore[attr-defined]


def _established():  # type: ignore[no-untyped-def]
    pair = make_pair()
    spi = pair.initiate()
    pair.pump()
    return pair, pair.client._sas[spi]


def test_protected_unknown_critical_payload_gets_an_answer() -> None:
    pair, sa = _established()
    sa.send_request(ExchangeType.INFORMATIONAL, [UnknownPayload(99, b"?", True)], pair.now)
    pair.pump()
    raw = decode_message(pair.wire[-1][1].data)
    reply = sa.cipher.open(raw)
    assert raw.is_response and bytes([PayloadType.NOTIFY]) == bytes([raw.payloads[0].first_inner])
    assert b"\x63" in reply and sa.state is SaState.ESTABLISHED


def test_liveness_check_and_child_delete_from_the_peer() -> None:
    pair, sa = _established()
    sa.send_request(ExchangeType.INFORMATIONAL, [], pair.now)
    pair.pump()
    assert sa.state is SaState.ESTABLISHED and sa.outstanding is None
    (child,) = pair.events("client", ChildSaInstalled)
    sa.send_request(
        ExchangeType.INFORMATIONAL, [Delete(3, (child.spi_in.to_bytes(4, "big"),))], pair.now
    )
    pair.pump()
    (deleted,) = pair.events("server", ChildSaDeleted)
    assert deleted.spi_out == child.spi_in
    raw = decode_message(pair.wire[-1][1].data)
    from ike.payloads import decode_chain

    inner = decode_chain(raw.payloads[0].first_inner, sa.cipher.open(raw))  # type: ignore[attr-defined]
    assert inner == (Delete(3, (child.spi_out.to_bytes(4, "big"),)),)


def _last_reply(pair, sa):  # type: ignore[no-untyped-def]
    from ike.payloads import decode_chain

    raw = decode_message(pair.wire[-1][1].data)
    assert raw.is_response
    return decode_chain(raw.payloads[0].first_inner, sa.cipher.open(raw))


def _child_request(sa, pfs: int = 0, rekey: bytes | None = None):  # type: ignore[no-untyped-def]
    from ike.config import EspProposal
    from ike.crypto import DH_GROUPS
    from ike.payloads import KeyExchange, SecurityAssociation, TrafficSelector, TSi, TSr

    text = "aes128gcm16" + ("-x25519" if pfs else "")
    spi = b"\x0a\x0b\x0c\x0d"
    payloads = []
    if rekey is not None:
        payloads.append(Notify(NotifyType.REKEY_SA, b"", 3, rekey))
    dh = DH_GROUPS[pfs].generate() if pfs else None
    payloads += [
        SecurityAssociation((EspProposal.parse(text).to_proposal(1, spi, True),)),
        Nonce(b"\x42" * 32),
    ]
    if dh is not None:
        payloads.append(KeyExchange(pfs, dh.public))
    payloads += [
        TSi((TrafficSelector.from_network("192.0.2.2/32"),)),
        TSr((TrafficSelector.from_network("10.1.0.0/16"),)),
    ]
    return payloads, dh


def test_create_child_sa_new_child_and_keys() -> None:
    from ike.crypto import derive_child_keys

    pair, sa = _established()
    payloads, _ = _child_request(sa)
    sa.send_request(ExchangeType.CREATE_CHILD_SA, payloads, pair.now)
    pair.pump()
    reply = _last_reply(pair, sa)
    (nonce_r,) = [p for p in reply if isinstance(p, Nonce)]
    new = pair.events("server", ChildSaInstalled)[-1]
    assert new.spi_out == 0x0A0B0C0D and new.replaces is None
    ck = derive_child_keys(sa._prf(), sa.keys.sk_d, b"\x42" * 32, nonce_r.data, 20, 0)
    assert new.encr_key_in == ck.encr_i and new.encr_key_out == ck.encr_r


def test_child_sa_rekey_with_pfs() -> None:
    from ike.config import ChildConfig, EspProposal
    from ike.crypto import derive_child_keys
    from ike.payloads import KeyExchange

    child_cfg = ChildConfig(
        "net",
        (ChildConfig.make("x", ["10.1.0.0/16"]).local_ts),
        esp_proposals=(EspProposal.parse("aes128gcm16-x25519"),),
    )
    pair = make_pair(server_peers=(gw_peer(children=(child_cfg,)),))
    spi = pair.initiate()
    pair.pump()
    sa = pair.client._sas[spi]
    (first,) = pair.events("client", ChildSaInstalled)
    payloads, dh = _child_request(sa, pfs=31, rekey=first.spi_in.to_bytes(4, "big"))
    sa.send_request(ExchangeType.CREATE_CHILD_SA, payloads, pair.now)
    pair.pump()
    reply = _last_reply(pair, sa)
    (ke,) = [p for p in reply if isinstance(p, KeyExchange)]
    (nonce_r,) = [p for p in reply if isinstance(p, Nonce)]
    new = pair.events("server", ChildSaInstalled)[-1]
    assert new.replaces == first.spi_out
    g_ir = dh.exchange(ke.data)
    ck = derive_child_keys(sa._prf(), sa.keys.sk_d, b"\x42" * 32, nonce_r.data, 20, 0, g_ir)
    assert new.encr_key_in == ck.encr_i
    # the peer then deletes the old CHILD_SA
    sa.send_request(
        ExchangeType.INFORMATIONAL, [Delete(3, (first.spi_in.to_bytes(4, "big"),))], pair.now
    )
    pair.pump()
    assert pair.events("server", ChildSaDeleted)[0].spi_in == first.spi_out


def test_child_sa_rekey_errors() -> None:
    pair, sa = _established()
    payloads, _ = _child_request(sa, rekey=b"\x00\x00\x00\x09")
    sa.send_request(ExchangeType.CREATE_CHILD_SA, payloads, pair.now)
    pair.pump()
    (n,) = _last_reply(pair, sa)
    assert n.notify_type == NotifyType.CHILD_SA_NOT_FOUND
    payloads, _ = _child_request(sa, pfs=19)  # server has no PFS configured: no DH match
    sa.send_request(ExchangeType.CREATE_CHILD_SA, payloads, pair.now)
    pair.pump()
    (n,) = _last_reply(pair, sa)
    assert n.notify_type == NotifyType.NO_PROPOSAL_CHOSEN
    assert sa.state is SaState.ESTABLISHED


def test_ike_sa_rekey_moves_children_and_uses_new_keys() -> None:
    from ike.crypto import DH_GROUPS
    from ike.payloads import KeyExchange, SecurityAssociation
    from ike.sa import IkeSaRekeyed

    pool = MemoryPool()
    client = cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),))
    pair = make_pair((client,), (gw_peer(pool=pool),))
    spi = pair.initiate()
    pair.pump()
    sa = pair.client._sas[spi]
    dh = DH_GROUPS[31].generate()
    new_spi_i = b"\x77" * 8
    prop = client.ike_proposals[0].to_proposal(1, new_spi_i)
    sa.send_request(
        ExchangeType.CREATE_CHILD_SA,
        [SecurityAssociation((prop,)), Nonce(b"\x55" * 32), KeyExchange(31, dh.public)],
        pair.now,
    )
    pair.pump()
    (rekeyed,) = pair.events("server", IkeSaRekeyed)
    assert rekeyed.spi_i == new_spi_i
    reply = _last_reply(pair, sa)
    (sa_r,) = [p for p in reply if isinstance(p, SecurityAssociation)]
    assert sa_r.proposals[0].spi == rekeyed.new_ike_sa
    new = pair.server._sas[rekeyed.new_ike_sa]
    assert new.state is SaState.ESTABLISHED and len(new.children) == 1
    # the new IKE_SA answers with keys from SKEYSEED = prf(SK_d(old), g^ir | Ni | Nr)
    from ike.crypto import derive_ike_keys, rekey_skeyseed

    (ke,) = [p for p in reply if isinstance(p, KeyExchange)]
    (nr,) = [p for p in reply if isinstance(p, Nonce)]
    seed = rekey_skeyseed(sa._prf(), sa.keys.sk_d, dh.exchange(ke.data), b"\x55" * 32, nr.data)
    keys = derive_ike_keys(
        sa._prf(),
        seed,
        b"\x55" * 32,
        nr.data,
        new_spi_i,
        rekeyed.new_ike_sa,
        sa.suite.encr.key_len,
        sa.suite.integ.key_len,
    )
    assert keys.sk_d == new.keys.sk_d and keys.sk_ei == new.cipher.ke_in
    # the old IKE_SA is deleted: no child deleted, no lease released
    sa.send_request(ExchangeType.INFORMATIONAL, [Delete(1)], pair.now)
    pair.pump()
    assert pair.events("server", IkeSaClosed) and not pair.events("server", ChildSaDeleted)
    assert pool.released == []
    assert pair.server.ike_sa_state(rekeyed.new_ike_sa) is SaState.ESTABLISHED


def test_fragmented_ike_auth(cert_factory) -> None:  # type: ignore[no-untyped-def]
    from ike.config import AuthClass, EngineConfig, Identity
    from ike.sa import IkeEngine
    from tests.ike.ikev2.ike_pair import Pair

    root = cert_factory.ca("root", key_type="rsa", rsa_bits=3072)
    gw = cert_factory.issue(root, "gw.test", san_dns=("gw.test",), key_type="rsa", rsa_bits=3072)
    cl = cert_factory.issue(root, "cl.test", san_dns=("cl.test",), key_type="rsa", rsa_bits=3072)
    common = dict(
        local_auth=AuthClass.PUBKEY,
        remote_auth=AuthClass.PUBKEY,
        psk=None,
        trust_anchors=(root.cert,),
    )
    server = gw_peer(certificate=gw.cert, private_key=gw.key, **common)
    client = cl_peer(
        certificate=cl.cert, private_key=cl.key, remote_id=Identity.parse("gw.test"), **common
    )
    pair = Pair(
        IkeEngine(EngineConfig(peers=(client,), fragment_size=576)),
        IkeEngine(EngineConfig(peers=(server,), fragment_size=576)),
    )
    pair.initiate()
    pair.pump()
    assert len(pair.events("client", IkeSaEstablished)) == 1
    frags = [
        d for _, d in pair.wire if isinstance(decode_message(d.data).encrypted, EncryptedFragment)
    ]
    assert len(frags) >= 6 and all(len(d.data) <= 576 for d in frags)


def test_liveness_and_child_delete_initiated_through_the_api() -> None:
    pair = make_pair()
    spi = pair.initiate()
    pair.pump()
    (child,) = pair.events("client", ChildSaInstalled)
    pair.client.send_liveness(spi, pair.now)
    pair.client.delete_child_sa(spi, child.spi_in, pair.now)  # queued behind the liveness
    pair.client.send_liveness(spi, pair.now)
    assert len(pair.client._out) == 1  # window size 1: one request in flight
    pair.pump()
    (deleted,) = pair.events("client", ChildSaDeleted)
    assert (deleted.spi_in, deleted.spi_out) == (child.spi_in, child.spi_out)
    (sdel,) = pair.events("server", ChildSaDeleted)
    assert sdel.spi_in == child.spi_out
    assert pair.client.ike_sa_state(spi) is SaState.ESTABLISHED
    mids = [
        decode_message(d.data).header.message_id
        for n, d in pair.wire
        if n == "c>s" and decode_message(d.data).header.exchange_type == ExchangeType.INFORMATIONAL
    ]
    assert mids == [2, 3, 4]


def test_dead_peer_is_detected() -> None:
    pair = make_pair()
    spi = pair.initiate()
    pair.pump()
    pair.drop = lambda name, d: True
    pair.client.send_liveness(spi, pair.now)
    for _ in range(10):
        t = pair.client.get_timer()
        if t is None:
            break
        pair.advance(t - pair.now)
    (closed,) = pair.events("client", IkeSaClosed)
    assert "retransmits exhausted" in closed.reason
    assert len(pair.events("client", ChildSaDeleted)) == 1


def test_initial_contact_replaces_the_old_ike_sa() -> None:
    from ike.payloads import IDi

    pool = MemoryPool()
    client = cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),))
    pair = make_pair((client,), (gw_peer(pool=pool),))
    pair.initiate()
    pair.pump()
    (first,) = pair.events("server", IkeSaEstablished)
    # a second IKE_SA from the same identity with INITIAL_CONTACT (the client rebooted)
    pair.client_events.clear()
    spi2 = pair.initiate()
    sa2 = pair.client._sas[spi2]
    orig = sa2._send_auth_request

    def with_initial_contact(now: float) -> None:
        real_send = sa2.send_request

        def send(exchange, payloads, now, protect=True):  # type: ignore[no-untyped-def]
            if exchange == ExchangeType.IKE_AUTH:
                payloads = [payloads[0], Notify(NotifyType.INITIAL_CONTACT), *payloads[1:]]
                assert isinstance(payloads[0], IDi)
            real_send(exchange, payloads, now, protect)

        sa2.send_request = send  # type: ignore[method-assign]
        orig(now)
        sa2.send_request = real_send  # type: ignore[method-assign]

    sa2._send_auth_request = with_initial_contact  # type: ignore[method-assign]
    pair.pump()
    closed = pair.events("server", IkeSaClosed)
    assert [c.ike_sa for c in closed] == [first.ike_sa]
    assert "INITIAL_CONTACT" in closed[0].reason
    assert len(pair.events("server", IkeSaEstablished)) == 2
    # the old lease went back to the pool before the new SA asked for one
    assert [str(a) for a in pool.released] == ["10.3.0.1"]
    assert list(pool.leases.values()) == [pair.events("server", IkeSaEstablished)[1].virtual_ips[0]]


def test_malformed_address_request_fails_only_the_child() -> None:
    from ike.constants import CfgAttribute, CfgType
    from ike.payloads import ConfigAttribute, ConfigPayload

    pool = MemoryPool()
    client = cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),))
    pair = make_pair((client,), (gw_peer(pool=pool),))
    spi = pair.initiate()
    sa = pair.client._sas[spi]
    real = sa.send_request

    def send(exchange, payloads, now, protect=True):  # type: ignore[no-untyped-def]
        payloads = [
            ConfigPayload(
                CfgType.CFG_REQUEST,
                (ConfigAttribute(CfgAttribute.INTERNAL_IP4_ADDRESS, b"\x01\x02\x03"),),
            )
            if isinstance(p, ConfigPayload)
            else p
            for p in payloads
        ]
        real(exchange, payloads, now, protect)

    sa.send_request = send  # type: ignore[method-assign]
    pair.pump()
    assert len(pair.events("server", IkeSaEstablished)) == 1
    assert pair.events("server", ChildSaFailed)[0].error == NotifyType.INVALID_SYNTAX


def test_child_rekey_by_lifetime_from_the_responder_side_with_pfs() -> None:
    from ike.config import EspProposal

    esp = (EspProposal.parse("aes128gcm16-ecp256"),)
    server_child = ChildConfig(
        "net", ChildConfig.make("x", ["10.1.0.0/16"]).local_ts, esp_proposals=esp, rekey_time=600.0
    )
    client_child = ChildConfig(
        "home", (), ChildConfig.make("x", (), ["10.1.0.0/16"]).remote_ts, esp_proposals=esp
    )
    pair = make_pair((cl_peer(children=(client_child,)),), (gw_peer(children=(server_child,)),))
    spi = pair.initiate()
    pair.pump()
    (s_first,) = pair.events("server", ChildSaInstalled)
    assert pair.server.get_timer() == pytest.approx(600.0)
    pair.advance(600.0)
    pair.pump()
    s_new = pair.events("server", ChildSaInstalled)[-1]
    c_new = pair.events("client", ChildSaInstalled)[-1]
    assert s_new.replaces == s_first.spi_in and c_new.replaces is not None
    assert s_new.spi_in == c_new.spi_out and s_new.encr_key_in == c_new.encr_key_out
    assert s_new.encr_key_in != s_first.encr_key_in
    assert [d.spi_in for d in pair.events("server", ChildSaDeleted)] == [s_first.spi_in]
    assert [d.spi_out for d in pair.events("client", ChildSaDeleted)] == [s_first.spi_in]
    assert pair.client.ike_sa_state(spi) is SaState.ESTABLISHED
    assert pair.server.get_timer() == pytest.approx(1200.0)  # the new child's rekey


@pytest.mark.parametrize("who", ["client", "server"])
def test_ike_rekey_initiated_by_either_side(who: str) -> None:
    from ike.sa import IkeSaRekeyed

    pool = MemoryPool()
    client = cl_peer(request_vips=(ipaddress.ip_address("0.0.0.0"),))
    pair = make_pair((client,), (gw_peer(pool=pool),))
    pair.initiate()
    pair.pump()
    engine = pair.client if who == "client" else pair.server
    (est,) = pair.events(who, IkeSaEstablished)
    engine.rekey_ike_sa(est.ike_sa, pair.now)
    pair.pump()
    (mine,) = pair.events(who, IkeSaRekeyed)
    other = "server" if who == "client" else "client"
    (theirs,) = pair.events(other, IkeSaRekeyed)
    assert (mine.spi_i, mine.spi_r) == (theirs.spi_i, theirs.spi_r)
    assert len(pair.events("client", IkeSaClosed)) == len(pair.events("server", IkeSaClosed)) == 1
    assert not pair.events("client", ChildSaDeleted) and pool.released == []
    # the new IKE_SA carries traffic: delete a CHILD_SA over it, then the IKE_SA itself
    (child,) = pair.events("client", ChildSaInstalled)
    new_client_sa = mine.new_ike_sa if who == "client" else theirs.new_ike_sa
    pair.client.delete_child_sa(new_client_sa, child.spi_in, pair.now)
    pair.pump()
    assert len(pair.events("server", ChildSaDeleted)) == 1
    pair.client.delete_ike_sa(new_client_sa, pair.now)
    pair.pump()
    assert len(pair.events("server", IkeSaClosed)) == 2
    assert [str(a) for a in pool.released] == ["10.3.0.1"]


def test_authenticated_but_malformed_request_is_answered_with_invalid_syntax() -> None:
    pair, sa = _established()
    sa.send_request(ExchangeType.INFORMATIONAL, [Nonce(b"short")], pair.now)  # < 16 octets
    pair.pump()
    (n,) = _last_reply(pair, sa)
    assert n.notify_type == NotifyType.INVALID_SYNTAX
    assert sa.state is SaState.ESTABLISHED


def test_ipv6_outer_addresses_and_selectors() -> None:
    client = cl_peer(children=(ChildConfig.make("home", remote_ts=["2001:db8:1::/48"]),))
    server = gw_peer(children=(ChildConfig.make("net", local_ts=["2001:db8:1::/48"]),))
    pair = make_pair((client,), (server,))
    pair.client.initiate("home", 0.0, local=("2001:db8::2", 500), remote=("2001:db8::1", 500))
    pair.pump()
    (est,) = pair.events("server", IkeSaEstablished)
    assert est.remote == ("2001:db8::2", 500) and not est.nat_detected
    (child,) = pair.events("server", ChildSaInstalled)
    assert [str(t) for t in child.remote_ts] == ["2001:db8::2-2001:db8::2"]
    assert str(child.local_ts[0]).startswith("2001:db8:1::-2001:db8:1:ffff:")


def test_authorize_hook_grants_children_and_pool_per_ike_sa() -> None:
    from ike.config import AuthContext, Authorization

    seen: list[AuthContext] = []
    quarantine = MemoryPool("10.9.0.0/28")
    isolate = (ChildConfig.make("isolate", local_ts=["10.9.255.0/24"]),)

    def authorize(ctx: AuthContext) -> Authorization | None:
        seen.append(ctx)
        return Authorization(isolate, quarantine)

    client = cl_peer(
        request_vips=(ipaddress.ip_address("0.0.0.0"),),
        children=(ChildConfig.make("home", remote_ts=["10.0.0.0/8"]),),
    )
    pair = make_pair((client,), (gw_peer(pool=MemoryPool(), authorize=authorize),))
    spi = pair.initiate()
    pair.pump()
    (ctx,) = seen
    (est,) = pair.events("server", IkeSaEstablished)
    assert ctx.ike_sa == est.ike_sa and str(ctx.remote_id) == "cl.test"
    assert [str(v) for v in est.virtual_ips] == ["10.9.0.1"]
    (child,) = pair.events("server", ChildSaInstalled)
    assert child.name == "isolate"
    assert [str(t) for t in child.local_ts] == ["10.9.255.0-10.9.255.255"]
    pair.client.delete_ike_sa(spi, pair.now)
    pair.pump()
    assert [str(a) for a in quarantine.released] == ["10.9.0.1"]


def test_authorize_hook_refusal_is_authentication_failed() -> None:
    pair = make_pair(server_peers=(gw_peer(authorize=lambda ctx: None),))
    pair.initiate()
    pair.pump()
    assert pair.events("client", IkeSaClosed)[0].error == NotifyType.AUTHENTICATION_FAILED
    assert not pair.events("server", IkeSaEstablished)
    assert "refused by policy" in pair.events("server", IkeSaClosed)[0].reason


@pytest.mark.parametrize("seed", range(6))
def test_simultaneous_child_rekey_leaves_one_child(seed: int) -> None:
    """RFC 7296, 2.8.1: both ends rekey at the same instant; the lowest nonce decides which
    new CHILD_SA is redundant, and both ends end up with the same single CHILD_SA."""
    import random

    rng = random.Random(seed)
    server_child = ChildConfig(
        "net", ChildConfig.make("x", ["10.1.0.0/16"]).local_ts, rekey_time=600.0
    )
    client_child = ChildConfig(
        "home", (), ChildConfig.make("x", (), ["10.1.0.0/16"]).remote_ts, rekey_time=600.0
    )
    from ike.config import EngineConfig
    from ike.sa import IkeEngine
    from tests.ike.ikev2.ike_pair import Pair

    def rnd(n: int) -> bytes:
        return rng.randbytes(n)

    pair = Pair(
        IkeEngine(EngineConfig(peers=(cl_peer(children=(client_child,)),)), random=rnd),
        IkeEngine(EngineConfig(peers=(gw_peer(children=(server_child,)),)), random=rnd),
    )
    spi = pair.initiate()
    pair.pump()
    pair.now = 600.0
    pair.client.handle_timer(600.0)  # both send their rekey before seeing the other's
    pair.server.handle_timer(600.0)
    pair.pump()
    c_sa = pair.client._sas[spi]
    s_sa = next(iter(pair.server._sas.values()))
    assert len(c_sa.children) == 1 and len(s_sa.children) == 1, (c_sa.children, s_sa.children)
    assert c_sa.children[0].spi_in == s_sa.children[0].spi_out
    assert c_sa.children[0].spi_out == s_sa.children[0].spi_in
    installed = {e.spi_in for e in pair.events("client", ChildSaInstalled)}
    deleted = {e.spi_in for e in pair.events("client", ChildSaDeleted)}
    assert installed - deleted == {int.from_bytes(c_sa.children[0].spi_in, "big")}


def test_child_delete_is_acknowledged_only_by_its_own_response() -> None:
    pair, sa = _established()
    (child,) = pair.events("client", ChildSaInstalled)
    pair.client.send_liveness(sa.local_spi, pair.now)
    pair.client.delete_child_sa(sa.local_spi, child.spi_in, pair.now)  # queued
    (liveness,) = pair.client.datagrams_to_send(pair.now)
    pair.server.receive_datagram(liveness.data, CL, pair.now, local=GW)
    (answer,) = pair.server.datagrams_to_send(pair.now)
    pair.client.receive_datagram(answer.data, GW, pair.now, local=CL)
    pair.collect()
    assert not pair.events("client", ChildSaDeleted)  # the Delete is only now on its way
    pair.pump()
    assert len(pair.events("client", ChildSaDeleted)) == 1


def test_both_ends_delete_the_same_child() -> None:
    from ike.payloads import decode_chain

    pair, sa = _established()
    (cchild,) = pair.events("client", ChildSaInstalled)
    (sest,) = pair.events("server", IkeSaEstablished)
    pair.client.delete_child_sa(sa.local_spi, cchild.spi_in, pair.now)
    pair.server.delete_child_sa(sest.ike_sa, cchild.spi_out, pair.now)
    pair.pump()
    assert len(pair.events("client", ChildSaDeleted)) == 1
    assert len(pair.events("server", ChildSaDeleted)) == 1
    # RFC 7296, 1.4.1: neither response carries a Delete for the half already being deleted
    for name, d in pair.wire[-4:]:
        raw = decode_message(d.data)
        if raw.is_response:
            cipher = (sa if name == "s>c" else pair.server._sas[sest.ike_sa]).cipher
            assert decode_chain(raw.payloads[0].first_inner, cipher.open(raw)) == ()


def test_child_state_table_refuses_impossible_moves() -> None:
    from ike.errors import LocalProtocolError

    _pair, sa = _established()
    with pytest.raises(LocalProtocolError, match="rekey_failed in INSTALLED"):
        sa._child_event(sa.children[0], "rekey_failed")


def test_client_behind_a_nat_moves_to_4500_and_sends_keepalives() -> None:
    from ike.sa import NAT_KEEPALIVE

    pair = make_pair()
    private = "10.0.0.2"
    pair.nat = {(private, 500): ("198.51.100.7", 40001), (private, 4500): ("198.51.100.7", 40002)}
    spi = pair.client.initiate("home", 0.0, local=(private, 500), remote=GW)
    pair.pump()
    (sest,) = pair.events("server", IkeSaEstablished)
    (cest,) = pair.events("client", IkeSaEstablished)
    assert sest.nat_detected and cest.nat_detected
    assert sest.remote == ("198.51.100.7", 40002)  # followed the NAT to the 4500 mapping
    assert cest.local == (private, 4500) and cest.remote == ("192.0.2.1", 4500)
    (schild,) = pair.events("server", ChildSaInstalled)
    assert schild.udp_encap and schild.remote == ("198.51.100.7", 40002)
    sa = pair.client._sas[spi]
    assert sa.nat_local and not pair.server._sas[sest.ike_sa].nat_local
    assert pair.server._sas[sest.ike_sa].keepalive_at is None  # the server is not behind NAT
    assert pair.client.get_timer() == pytest.approx(20.0)
    pair.advance(20.0)
    (ka,) = pair.client.datagrams_to_send(pair.now)
    assert ka.data == NAT_KEEPALIVE and ka.remote == ("192.0.2.1", 4500)
    assert pair.client.get_timer() == pytest.approx(40.0)
    pair.client.send_liveness(spi, pair.now + 5)  # traffic postpones the next keepalive
    pair.now += 5
    pair.pump()
    assert pair.client.get_timer() == pytest.approx(45.0)
