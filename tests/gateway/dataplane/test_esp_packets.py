"""gateway.dataplane.esp: round trips, known answers, anti-replay, tampering, selectors,
lifetimes, and malformed input that must be dropped and counted, never crash."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dataplane.esp import (
    DropReason,
    EspEngine,
    EspTransform,
    InvalidSaSpec,
    Lifetimes,
    ReplayWindow,
    SaHardExpired,
    SaSoftExpired,
    _Cipher,
    parse_ip_packet,
)
from tests.gateway.dataplane.esp_helpers import (
    ALL_TRANSFORMS,
    CBC_SHA256,
    CHACHA,
    GCM128,
    ipv4,
    ipv6,
    sa_pair,
    ts,
    udp4,
)


def pair(*args: object, **kwargs: object) -> tuple[EspEngine, EspEngine]:
    a_spec, b_spec = sa_pair(*args, **kwargs)  # type: ignore[arg-type]
    a, b = EspEngine(), EspEngine()
    a.install(a_spec, 0.0)
    b.install(b_spec, 0.0)
    return a, b


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=lambda t: t.name)
@pytest.mark.parametrize("esn", [False, True])
def test_round_trip_both_directions(transform: EspTransform, esn: bool) -> None:
    gw, cl = pair(transform, esn=esn)
    sent = 0
    for size in (0, 1, 2, 3, 13, 14, 15, 16, 17, 100, 1400):
        pkt = ipv4("10.1.0.5", "10.3.0.2", payload=(bytes(range(256)) * 6)[:size])
        sent += len(pkt)
        out = gw.outbound(pkt, 1.0)
        assert out is not None and out.remote == ("192.0.2.2", 4500)
        assert out.data[:4] == (0xC0000002).to_bytes(4, "big")
        assert (len(out.data) - 8 - transform.iv_len - transform.icv_len) % transform.block == 0
        if size >= 16:
            assert pkt[20:] not in out.data  # encrypted
        assert cl.inbound(out.data, out.remote, 1.0) == pkt
        back = ipv4("10.3.0.2", "10.1.0.9", payload=pkt[20:])
        reply = cl.outbound(back, 1.0)
        assert reply is not None and reply.remote == ("192.0.2.1", 4500)
        assert gw.inbound(reply.data, None, 1.0) == back
    assert gw.packets_out == cl.packets_in == 11
    assert not any(gw.drops.values()) and not any(cl.drops.values())
    (stat,) = gw.sa_stats()
    assert stat.packets_out == 11 and stat.packets_in == 11
    assert stat.bytes_out == stat.bytes_in == sent


def test_ipv6_inner_packets() -> None:
    gw, cl = pair(GCM128, a_ts=(ts("2001:db8:1::/48"),), b_ts=(ts("2001:db8:3::2/128"),))
    pkt = ipv6("2001:db8:1::5", "2001:db8:3::2")
    out = gw.outbound(pkt, 0)
    assert out is not None
    assert out.data  # next header 41 inside
    assert cl.inbound(out.data, None, 0) == pkt


def test_gcm_known_answer_draft_mcgrew_gcm_test() -> None:
    # draft-mcgrew-gcm-test-01 (AES-128 ESP example: K = 4c80cdef..., salt 2e443b68,
    # SPI 00004321, 64-bit extended sequence number 8765432100000000, IV 4956ed7e3b244cfe);
    # bytes as reproduced in the Linux kernel's rfc4106(gcm(aes)) self tests.  Checks
    # nonce = salt | IV and AAD = SPI | 64-bit ESN (RFC 4106 4 and 5).
    key = bytes.fromhex("4c80cdefbb5d10da906ac73c3613a6342e443b68")
    iv = bytes.fromhex("4956ed7e3b244cfe")
    plaintext = bytes.fromhex(
        "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
        "00000000045f736970045f756470037369700963796265726369747902646b00"
        "0021000101020201"
    )
    ciphertext = bytes.fromhex(
        "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
        "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
        "61bc17d768fd9732459018148f6cbe722fd04796562dfdb4"
    )
    spi, seq = 0x4321, 0x8765432100000000
    cipher = _Cipher(GCM128, key, b"")
    packet = struct.pack("!II", spi, seq & 0xFFFFFFFF) + iv + ciphertext
    assert cipher.seal(spi, seq, True, plaintext, iv) == packet
    assert cipher.open(packet, spi, seq, True) == plaintext
    tampered = packet[:-1] + bytes([packet[-1] ^ 1])
    assert cipher.open(tampered, spi, seq, True) is None
    # Without ESN the AAD is SPI | 32-bit sequence and the same bytes do not verify.
    assert cipher.open(packet, spi, seq, False) is None


def test_chacha20_poly1305_known_answer_rfc8439_a5() -> None:
    # RFC 8439 (RFC 7539) Appendix A.5 AEAD decryption vector, laid out as RFC 7634 ESP:
    # nonce = salt (00000000) | IV (0102030405060708), AAD = SPI (f3338886) | 64-bit ESN
    # (0000000000004e91), i.e. RFC 7634 2.1 with extended sequence numbers.
    key = bytes.fromhex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0")
    salt, iv = bytes(4), bytes.fromhex("0102030405060708")
    plaintext = bytes.fromhex(
        "496e7465726e65742d4472616674732061726520647261667420646f63756d656e747320"
        "76616c696420666f722061206d6178696d756d206f6620736978206d6f6e74687320616e"
        "64206d617920626520757064617465642c207265706c616365642c206f72206f62736f6c"
        "65746564206279206f7468657220646f63756d656e747320617420616e792074696d652e"
        "20497420697320696e617070726f70726961746520746f2075736520496e7465726e6574"
        "2d447261667473206173207265666572656e6365206d6174657269616c206f7220746f20"
        "63697465207468656d206f74686572207468616e206173202fe2809c776f726b20696e20"
        "70726f67726573732e2fe2809d"
    )
    ciphertext = bytes.fromhex(
        "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e38"
        "2d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f9"
        "82b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d"
        "46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a0d072b04"
        "b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a1049"
        "e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b"
        "eead9d67890cbb22392336fea1851f38"
    )
    spi, seq = 0xF3338886, 0x4E91
    cipher = _Cipher(CHACHA, key + salt, b"")
    packet = struct.pack("!II", spi, seq) + iv + ciphertext
    assert cipher.seal(spi, seq, True, plaintext, iv) == packet
    assert cipher.open(packet, spi, seq, True) == plaintext
    assert cipher.open(packet, spi, seq + 1, True) is None


def test_aes_cbc_known_answer_rfc3602_case5() -> None:
    # RFC 3602, 4 "Case #5: Sample transport-mode ESP packet (ping 192.168.123.100)": AES-128
    # key, SPI 4321, sequence 1, IV, an ICMP echo with the default padding 01..0e, pad length
    # 14 and next header 1.  The RFC's packet has no ICV; ours appends HMAC-SHA-256-128 over
    # exactly those octets (RFC 4868 2.3).
    import hashlib
    import hmac

    key = bytes.fromhex("90d382b410eeba7ad938c46cec1a82bf")
    iv = bytes.fromhex("e96e8c08ab465763fd098d45dd3ff893")
    payload = bytes.fromhex(
        "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f3031323334353637"
    )
    expected = bytes.fromhex(
        "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849"
        "a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c"
        "538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6"
    )
    integ_key = bytes(range(32))
    cipher = _Cipher(EspTransform(12, 128, 12), key, integ_key)
    plaintext = payload + bytes(range(1, 15)) + b"\x0e\x01"
    packet = cipher.seal(0x4321, 1, False, plaintext, iv)
    assert packet[:-16] == expected
    assert packet[-16:] == hmac.digest(integ_key, expected, hashlib.sha256)[:16]
    assert cipher.open(packet, 0x4321, 1, False) == plaintext


def test_hmac_sha256_128_truncation_rfc4868() -> None:
    # RFC 4868 2.3: HMAC-SHA-256-128 sends the leftmost 128 bits of the HMAC over
    # SPI | sequence | IV | ciphertext.
    import hashlib
    import hmac

    gw, _cl = pair(CBC_SHA256)
    spec = next(iter(gw._sas.values())).spec
    out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0)
    assert out is not None
    body, icv = out.data[:-16], out.data[-16:]
    assert icv == hmac.digest(spec.integ_key_out, body, hashlib.sha256)[:16]
    assert (len(body) - 8 - 16) % 16 == 0


def test_replayed_packet_dropped_and_counted() -> None:
    gw, cl = pair()
    out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0)
    assert out is not None
    assert cl.inbound(out.data, None, 0) is not None
    assert cl.inbound(out.data, None, 0) is None
    assert cl.drops[DropReason.REPLAYED] == 1
    assert cl.sa_stats()[0].replayed == 1


def test_tampered_packets_dropped_and_counted() -> None:
    for transform in ALL_TRANSFORMS:
        gw, cl = pair(transform)
        out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0)
        assert out is not None
        for pos in (8, 9, len(out.data) // 2, len(out.data) - 1):
            bad = bytearray(out.data)
            bad[pos] ^= 0x40
            assert cl.inbound(bytes(bad), None, 0) is None
        assert cl.drops[DropReason.AUTH_FAILED] == 4, transform
        # A tampered packet does not advance the window: the genuine one still goes in.
        assert cl.inbound(out.data, None, 0) is not None


def test_forged_sequence_number_is_not_recorded() -> None:
    gw, cl = pair()
    out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0)
    assert out is not None
    forged = out.data[:4] + (2**31).to_bytes(4, "big") + out.data[8:]
    assert cl.inbound(forged, None, 0) is None
    assert cl.drops[DropReason.AUTH_FAILED] == 1
    assert cl.inbound(out.data, None, 0) is not None


def test_replay_window_out_of_order_and_too_old() -> None:
    gw, cl = pair(replay_window=128)
    pkts = [gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) for _ in range(300)]
    assert all(p is not None for p in pkts)
    data = [p.data for p in pkts if p is not None]
    assert cl.inbound(data[299], None, 0) is not None  # seq 300
    assert cl.inbound(data[299 - 127], None, 0) is not None  # seq 173: inside the window
    assert cl.inbound(data[299 - 128], None, 0) is None  # seq 172: left of the window
    assert cl.drops[DropReason.REPLAYED] == 1
    for i in range(298, 172, -1):
        assert cl.inbound(data[i], None, 0) is not None


def test_replay_window_bitmap_unit() -> None:
    w = ReplayWindow(128)
    assert not w.check(0)
    for s in (5, 3, 200, 73):
        assert w.check(s)
        w.update(s)
        assert not w.check(s)
    assert not w.check(72)  # 200 - 72 = 128: outside
    assert w.check(74)


def test_esn_infers_high_bits_across_the_wrap() -> None:
    # RFC 4303 Appendix A.2: the receiver recovers the high-order 32 bits.
    w = ReplayWindow(128, esn=True)
    w.update((1 << 32) - 10)
    assert w.infer(5) == (1 << 32) + 5  # wrapped forward
    assert w.infer(0xFFFFFF80) == 0xFFFFFF80  # inside the window: same epoch
    assert w.infer(0xFFFFFF00) == (1 << 32) + 0xFFFFFF00  # left of it: taken as next epoch
    w.update((1 << 32) + 5)
    assert w.infer(0xFFFFFFF0) == 0xFFFFFFF0  # still inside the window, old epoch
    assert w.infer(6) == (1 << 32) + 6


def test_esn_round_trip_across_2_32() -> None:
    gw, cl = pair(CBC_SHA256, esn=True)
    sa_out = next(iter(gw._sas.values()))
    sa_out.seq_out = (1 << 32) - 3
    cl_sa = next(iter(cl._sas.values()))
    cl_sa.replay.top = (1 << 32) - 4
    for _ in range(6):
        out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0)
        assert out is not None
        assert cl.inbound(out.data, None, 0) is not None
    assert cl_sa.replay.top == (1 << 32) + 3


def test_sequence_space_exhausted_without_esn_expires_the_sa() -> None:
    gw, _ = pair()
    sa = next(iter(gw._sas.values()))
    sa.seq_out = (1 << 32) - 2
    assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is not None
    assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is None
    assert gw.drops[DropReason.EXPIRED] == 1
    assert isinstance(gw.next_event(), SaHardExpired)
    assert len(gw) == 0


def test_unknown_spi_and_short_packets_counted() -> None:
    _gw, cl = pair()
    assert cl.inbound(b"\x00\x00\x01\x00", None, 0) is None
    assert cl.inbound(b"\xde\xad\xbe\xef" + bytes(60), None, 0) is None
    assert cl.drops[DropReason.MALFORMED] == 1
    assert cl.drops[DropReason.UNKNOWN_SPI] == 1


def test_outbound_outside_selectors_dropped() -> None:
    gw, _ = pair()
    assert gw.outbound(ipv4("10.1.0.5", "10.9.9.9"), 0) is None
    assert gw.outbound(ipv4("10.2.0.5", "10.3.0.2"), 0) is None
    assert gw.outbound(b"\x45garbage", 0) is None
    assert gw.drops[DropReason.NO_POLICY] == 2
    assert gw.drops[DropReason.MALFORMED] == 1


def test_inbound_inner_packet_outside_selectors_dropped() -> None:
    # The client's SA allows only 10.3.0.2 -> 10.1.0.0/16; a peer that sends something else
    # inside a valid SA is refused (RFC 4301 5.2).
    a_spec, b_spec = sa_pair()
    rogue = EspEngine()
    from dataclasses import replace

    rogue.install(replace(b_spec, local_ts=(ts("0.0.0.0/0"),), remote_ts=(ts("0.0.0.0/0"),)), 0)
    gw = EspEngine()
    gw.install(a_spec, 0)
    out = rogue.outbound(ipv4("10.3.0.99", "10.1.0.1"), 0)
    assert out is not None
    assert gw.inbound(out.data, None, 0) is None
    assert gw.drops[DropReason.POLICY_MISMATCH] == 1


def test_port_and_protocol_selectors() -> None:
    gw, _cl = pair(a_ts=(ts("10.1.0.0/16", 17, 53),), b_ts=(ts("10.3.0.2/32"),))
    assert gw.outbound(udp4("10.1.0.53", "10.3.0.2", 53, 40000), 0) is not None
    assert gw.outbound(udp4("10.1.0.53", "10.3.0.2", 54, 40000), 0) is None
    assert gw.outbound(ipv4("10.1.0.53", "10.3.0.2"), 0) is None
    info = parse_ip_packet(udp4("10.1.0.53", "10.3.0.2", 53, 40000))
    assert (info.proto, info.sport, info.dport) == (17, 53, 40000)


def test_quarantine_then_allow_update_selectors() -> None:
    isolate = (ts("10.66.0.0/24"),)  # remediation network
    allow = (ts("10.1.0.0/16"), ts("10.66.0.0/24"))
    gw, cl = pair(a_ts=isolate)
    spi = gw.sas_of(b"\x01" * 8)[0]
    assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is None
    assert cl.outbound(ipv4("10.3.0.2", "10.1.0.5"), 0) is None
    # A rogue client that ignores its selectors gets nothing through the gateway either.
    cl_spi = cl.sas_of(b"\x01" * 8)[0]
    cl.update_selectors(cl_spi, (ts("10.3.0.2/32"),), allow)
    out = cl.outbound(ipv4("10.3.0.2", "10.1.0.5"), 0)
    assert out is not None and gw.inbound(out.data, None, 0) is None
    assert gw.drops[DropReason.POLICY_MISMATCH] == 1
    out = cl.outbound(ipv4("10.3.0.2", "10.66.0.1"), 0)
    assert out is not None and gw.inbound(out.data, None, 0) is not None
    # allow: same SA, same keys, wider selectors.
    gw.update_selectors(spi, allow, (ts("10.3.0.2/32"),))
    out = cl.outbound(ipv4("10.3.0.2", "10.1.0.5"), 0)
    assert out is not None and gw.inbound(out.data, None, 0) is not None
    assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is not None


def test_rekeyed_sa_takes_over_outbound_old_still_accepts() -> None:
    old_a, old_b = sa_pair(spi_a=0x1000, spi_b=0x2000)
    new_a, new_b = sa_pair(spi_a=0x1001, spi_b=0x2001)
    gw, cl = EspEngine(), EspEngine()
    gw.install(old_a, 0)
    cl.install(old_b, 0)
    in_flight = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0)
    gw.install(new_a, 1)
    cl.install(new_b, 1)
    out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 1)
    assert out is not None and out.spi == 0x2001
    assert in_flight is not None and cl.inbound(in_flight.data, None, 1) is not None
    assert cl.inbound(out.data, None, 1) is not None
    assert gw.remove(0x1000) and not gw.remove(0x1000)


def test_lifetimes_soft_then_hard() -> None:
    lt = Lifetimes(soft_packets=3, hard_packets=5, soft_seconds=10, hard_seconds=20)
    gw, cl = pair(lifetimes=lt)
    for _ in range(3):
        assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is not None
    ev = gw.next_event()
    assert isinstance(ev, SaSoftExpired) and ev.limit == "packets"
    assert gw.next_event() is None
    for _ in range(2):
        assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is not None
    ev = gw.next_event()
    assert isinstance(ev, SaHardExpired) and ev.limit == "packets"
    assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2"), 0) is None
    # Time-based on the other side.
    assert cl.get_timer() == 10
    cl.handle_timer(9.9)
    assert cl.next_event() is None
    cl.handle_timer(10)
    ev = cl.next_event()
    assert isinstance(ev, SaSoftExpired) and ev.limit == "time"
    assert cl.get_timer() == 20
    cl.handle_timer(20)
    ev = cl.next_event()
    assert isinstance(ev, SaHardExpired) and ev.limit == "time"
    assert cl.get_timer() is None and len(cl) == 0


def test_byte_lifetime() -> None:
    gw, _ = pair(lifetimes=Lifetimes(soft_bytes=100, hard_bytes=1000))
    assert gw.outbound(ipv4("10.1.0.5", "10.3.0.2", payload=bytes(200)), 0) is not None
    ev = gw.next_event()
    assert isinstance(ev, SaSoftExpired) and ev.limit == "bytes"


def test_invalid_specs_refused() -> None:
    a, _ = sa_pair()
    from dataclasses import replace

    for bad in (
        replace(a, transform=EspTransform(12, 128, 0)),  # CBC without integrity
        replace(a, transform=EspTransform(20, 128, 12)),  # AEAD with integrity
        replace(a, transform=EspTransform(3, 192, 2)),  # 3DES not offered
        replace(a, encr_key_in=a.encr_key_in[:-1]),
        replace(a, spi_in=255),
        replace(a, local_ts=()),
    ):
        with pytest.raises(InvalidSaSpec):
            EspEngine().install(bad, 0)


def test_spi_allocator_unique_and_not_reserved() -> None:
    values = iter(
        [b"\x00\x00\x00\x05", b"\x00\x00\x01\x00", b"\x00\x00\x01\x00", b"\x00\x00\x01\x01"]
    )
    eng = EspEngine(random=lambda n: next(values))
    assert eng.spis.allocate() == 0x100
    assert eng.spis.allocate() == 0x101


def test_dummy_packet_next_header_59_discarded() -> None:
    gw, cl = pair()
    sa = next(iter(gw._sas.values()))
    plaintext = b"\x01\x02\x02\x3b"  # padding 1 2, pad length 2, next header 59
    data = sa.out_cipher.seal(sa.spec.spi_out, 1, False, plaintext, (1).to_bytes(8, "big"))
    assert cl.inbound(data, None, 0) is None
    assert cl.drops[DropReason.DUMMY] == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 299))
def test_mutated_and_random_input_never_crashes(junk: bytes, flip: int) -> None:
    gw, cl = pair(CBC_SHA256)
    out = gw.outbound(ipv4("10.1.0.5", "10.3.0.2", payload=junk or b"x"), 0)
    assert out is not None
    for data in (junk, out.data[:8] + junk, out.data[: flip % len(out.data)]):
        assert cl.inbound(data, None, 0) is None
    assert gw.outbound(junk, 0) is None or len(junk) >= 20
    assert sum(cl.drops.values()) == 3


def test_replay_window_big_jump_is_cheap() -> None:
    # A jump of 2^40 sequence numbers (ESN) must not build a 2^40-bit integer.
    w = ReplayWindow(128, esn=True)
    w.update(5)
    w.update(5 + (1 << 40))
    assert w.bitmap == 1 and w.top == 5 + (1 << 40)
    assert not w.check(5 + (1 << 40)) and w.check(6 + (1 << 40))
    w0 = ReplayWindow(0)
    w0.update(10)
    w0.update(3)  # window 0: no replay protection, nothing recorded below the top
    assert w0.check(3) and w0.check(11)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_inner_header_parser_only_raises_esp_error(data: bytes) -> None:
    from gateway.dataplane.esp import EspError

    for blob in (data, b"\x45" + data, b"\x60" + data):
        try:
            parse_ip_packet(blob)
        except EspError as exc:
            assert exc.reason == DropReason.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.integers(0, 0xFFFF), st.integers(0, 15))
def test_ipv4_fast_path_agrees_with_the_parser(data: bytes, total: int, ihl: int) -> None:
    """The per-packet IPv4 shortcut accepts exactly the IPv4 packets parse_ip_packet
    accepts, with the same addresses."""
    from gateway.dataplane.esp import EspError, _ipv4_addresses

    header = bytes([0x40 | ihl, 0]) + total.to_bytes(2, "big") + data[:16]
    for blob in (
        data,
        header + data[16:],
        header[:2] + (len(header) + len(data[16:])).to_bytes(2, "big") + header[4:] + data[16:],
    ):
        fast = _ipv4_addresses(blob)
        try:
            info = parse_ip_packet(blob)
        except EspError:
            assert fast is None
            continue
        if info.version == 4:
            assert fast == (info.src, info.dst)
        else:
            assert fast is None


def test_inbound_spi_in_use_is_refused() -> None:
    a, _ = sa_pair(spi_a=0x5000)
    other, _ = sa_pair(spi_a=0x5000, spi_b=0x6000)
    eng = EspEngine()
    eng.install(a, 0)
    with pytest.raises(InvalidSaSpec, match="already in use"):
        eng.install(other, 0)
    assert eng.sa_stat(0x5000) is not None and eng.sa_stat(0x5000).spi_out == a.spi_out  # type: ignore[union-attr]


def test_esp_engine_is_sans_io() -> None:
    """gateway.dataplane.esp pulls in no socket, Twisted, asyncio or pyroute2."""
    import subprocess
    import sys

    code = (
        "import sys, gateway.dataplane.esp\n"
        "bad = [m for m in ('twisted', 'pyroute2', 'socket', 'select', 'asyncio') "
        "if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == ""
