"""RFC 4851 Appendix B known answers (vectors in rfc4851_appendix_b.txt, which cites them),
plus TLV codec and PAC-Opaque sealing checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ike.eap_fast.keys import (
    KeyChain,
    compound_mac,
    pac_master_secret,
    session_key_material,
    t_prf,
)
from ike.eap_fast.pac import PacKeyring
from ike.eap_fast.tlv import CryptoBinding, Tlv, TlvError, TlvType, parse_tlvs
from ike.eap_tls.prf import tls10_prf

VECTORS = Path(__file__).with_name("rfc4851_appendix_b.txt")


def _vectors() -> dict[str, bytes]:
    out = {}
    for line in VECTORS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = bytes.fromhex(value.replace(" ", ""))
    return out


V = _vectors()
SERVER_RANDOM, CLIENT_RANDOM = V["seed"][:32], V["seed"][32:]


def test_b1_master_secret_from_pac_key() -> None:
    assert pac_master_secret(V["pac_key"], SERVER_RANDOM, CLIENT_RANDOM) == V["master_secret"]


def test_b1_key_block_and_session_key_seed() -> None:
    # The RFC's example runs TLS 1.0 (MD5/SHA-1 PRF) with RC4-128-SHA: 2 x (20 + 16) bytes.
    assert tls10_prf(V["master_secret"], b"key expansion", V["seed"], 112) == V["key_block"]
    seed = session_key_material(V["master_secret"], SERVER_RANDOM, CLIENT_RANDOM, 72, prf=tls10_prf)
    assert seed == V["session_key_seed"]


def test_b1_imck_msk_emsk() -> None:
    chain = KeyChain(V["session_key_seed"])
    keys = chain.advance(V["isk"])
    assert keys.s_imck + keys.cmk == V["imck"]
    assert chain.session_keys() == (V["msk"], V["emsk"])
    assert KeyChain(V["session_key_seed"]).advance(None) == keys  # no ISK = zeros


def test_b2_compound_mac() -> None:
    cmk = V["imck"][40:]
    tlv = parse_tlvs(V["crypto_binding_tlv"])[0]
    assert tlv.tlv_type == TlvType.CRYPTO_BINDING and tlv.mandatory
    binding = CryptoBinding.parse(tlv.value)
    assert binding.version == 1 and binding.subtype == 0
    assert compound_mac(cmk, binding.mac_input()) == V["compound_mac"] == binding.compound_mac
    assert binding.to_tlv().to_bytes() == V["crypto_binding_tlv"]


def test_t_prf_length_is_an_input() -> None:
    assert t_prf(b"k", b"l", b"s", 20) != t_prf(b"k", b"l", b"s", 40)[:20]


@pytest.mark.parametrize(
    "data",
    [b"\x80", b"\x80\x03\x00\x03\x00\x01", b"\x00\x03\x00\x02\x00\x01\x00"],
)
def test_tlv_parser_rejects_bad_lengths(data: bytes) -> None:
    with pytest.raises(TlvError):
        parse_tlvs(data)


def test_tlv_roundtrip_keeps_unknown() -> None:
    tlvs = [Tlv(0x1234, b"abc", mandatory=True), Tlv.result(1)]  # type: ignore[arg-type]
    data = b"".join(t.to_bytes() for t in tlvs)
    assert parse_tlvs(data) == tlvs
    assert [parse_tlvs(data[:i]) for i in (0,)] == [[]]


def test_pac_opaque_binds_a_id_and_detects_tampering() -> None:
    ring = PacKeyring(pac_lifetime=100)
    opaque = ring.seal(b"k" * 32, b"bob", 1000, b"aid")
    opened = ring.open(opaque, b"aid", 10)
    assert opened is not None and opened.pac_key == b"k" * 32 and opened.identity == b"bob"
    assert ring.open(opaque, b"other", 10) is None
    assert ring.open(opaque[:-1] + bytes([opaque[-1] ^ 1]), b"aid", 10) is None
    assert ring.open(opaque, b"aid", 1000) is None  # expired
    ring.rotate(now=10)
    assert ring.open(opaque, b"aid", 20) is not None  # old key still opens
    assert ring.open(opaque, b"aid", 111) is None  # retired after the PAC lifetime
    assert PacKeyring().open(opaque, b"aid", 10) is None  # foreign server


def test_pac_store_dump_and_load_roundtrip() -> None:
    from ike.eap_fast.pac import Pac, PacStore

    store = PacStore()
    store.put(Pac(b"k" * 32, b"opaque", b"aid-1", b"info", b"bob", 12345))
    store.put(Pac(b"j" * 32, b"other", b"aid-2"))
    data = store.dump()
    again = PacStore.load(data)
    assert again.pacs == store.pacs
    with pytest.raises(TlvError):
        PacStore.load(data[:-1])
    with pytest.raises(TlvError):
        PacStore.load(b"\x00\x01\x00\x00")
