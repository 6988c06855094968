"""EAP-TLV codec and cryptobinding key chain (ike.eap_peap.tlv, ike.eap_peap.keys)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ike.eap_peap.keys import compound_keys, compound_mac, peap_prf_plus, session_keys
from ike.eap_peap.tlv import (
    CryptoBinding,
    ResultStatus,
    Tlv,
    TlvError,
    TlvType,
    encode_tlvs,
    parse_tlvs,
)

CASES = [
    (Tlv.result(ResultStatus.SUCCESS), bytes.fromhex("8003 0002 0001")),
    (Tlv.result(ResultStatus.FAILURE), bytes.fromhex("8003 0002 0002")),
    (Tlv(TlvType.CRYPTO_BINDING, bytes(56)), bytes.fromhex("000c 0038") + bytes(56)),
    (Tlv(0x1234, b"", mandatory=False), bytes.fromhex("1234 0000")),
]


@pytest.mark.parametrize(("tlv", "wire"), CASES)
def test_tlv_round_trip(tlv: Tlv, wire: bytes) -> None:
    assert tlv.to_bytes() == wire
    assert parse_tlvs(wire) == [tlv]


@pytest.mark.parametrize("wire", [b"\x80", b"\x80\x03\x00\x03\x00\x01", b"\x80\x03\x00"])
def test_tlv_malformed(wire: bytes) -> None:
    with pytest.raises(TlvError):
        parse_tlvs(wire)


def test_tlv_sequence_byte_at_a_time() -> None:
    wire = encode_tlvs(t for t, _ in CASES)
    assert parse_tlvs(wire) == [t for t, _ in CASES]
    ends = set()
    pos = 0
    for _, w in CASES:
        pos += len(w)
        ends.add(pos)
    for cut in range(1, len(wire)):
        if cut in ends:
            parse_tlvs(wire[:cut])
        else:
            with pytest.raises(TlvError):
                parse_tlvs(wire[:cut])


def test_cryptobinding_layout() -> None:
    cb = CryptoBinding(0, 0, 1, bytes(range(32)), b"\xaa" * 20)
    tlv = cb.to_tlv().to_bytes()
    assert tlv[:4] == bytes.fromhex("000c0038") and len(tlv) == 60
    assert tlv[4:8] == bytes([0, 0, 0, 1])
    assert CryptoBinding.parse(tlv[4:]) == cb
    mac_input = cb.mac_input(25)
    assert len(mac_input) == 61 and mac_input[-1] == 25 and mac_input[40:60] == bytes(20)
    with pytest.raises(TlvError):
        CryptoBinding.parse(tlv[4:-1])


def test_prf_plus_definition() -> None:
    # T1 = HMAC-SHA1(K, S | 0x01 0x00 0x00); T2 = HMAC-SHA1(K, T1 | S | 0x02 0x00 0x00)
    k, s = b"k" * 40, b"label" + b"seed"
    t1 = hmac.new(k, s + b"\x01\x00\x00", hashlib.sha1).digest()
    t2 = hmac.new(k, t1 + s + b"\x02\x00\x00", hashlib.sha1).digest()
    assert peap_prf_plus(k, s, 30) == (t1 + t2)[:30]


def test_compound_keys_shapes() -> None:
    keys = compound_keys(bytes(60), None)
    assert len(keys.ipmk) == 40 and len(keys.cmk) == 20
    assert keys == compound_keys(bytes(60), bytes(32))  # missing ISK = zeros
    assert keys != compound_keys(bytes(60), b"\x01" * 32)
    msk, emsk = session_keys(keys.ipmk)
    assert len(msk) == len(emsk) == 64 and msk != emsk
    assert len(compound_mac(keys.cmk, b"x")) == 20
    assert "secret" in repr(keys)
