"""The harness's VICI codec and list-sas parsing (no charon needed)."""

from __future__ import annotations

import struct

import pytest

from tests.harness.charon import parse_list_sas, render_conf
from tests.harness.vici import (
    KEY_VALUE,
    LIST_END,
    LIST_ITEM,
    LIST_START,
    SECTION_END,
    SECTION_START,
    ViciError,
    decode_message,
    encode_message,
)

SAMPLE = {
    "home": {
        "uniqueid": "1",
        "version": "2",
        "state": "ESTABLISHED",
        "local-host": "192.0.2.2",
        "local-id": "C=CH, O=strongSwan, CN=cl.test",
        "remote-host": "192.0.2.1",
        "remote-id": "gw.test",
        "initiator": "yes",
        "local-vips": ["10.3.0.1"],
        "child-sas": {
            "home-1": {
                "name": "home",
                "uniqueid": "1",
                "state": "INSTALLED",
                "mode": "TUNNEL",
                "protocol": "ESP",
                "encap": "yes",
                "local-ts": ["10.3.0.1/32"],
                "remote-ts": ["10.1.0.0/16", "10.2.0.0/16"],
            }
        },
    }
}


def _kv(name: bytes, value: bytes) -> bytes:
    return bytes([KEY_VALUE, len(name)]) + name + struct.pack("!H", len(value)) + value


def test_encoding_is_the_documented_layout() -> None:
    encoded = encode_message({"a": "xy", "s": {"l": ["1"]}})
    assert encoded == (
        _kv(b"a", b"xy")
        + bytes([SECTION_START, 1]) + b"s"
        + bytes([LIST_START, 1]) + b"l"
        + bytes([LIST_ITEM]) + struct.pack("!H", 1) + b"1"
        + bytes([LIST_END, SECTION_END])
    )  # fmt: skip


def test_roundtrip() -> None:
    assert decode_message(encode_message(SAMPLE)) == SAMPLE


@pytest.mark.parametrize(
    "data",
    [
        _kv(b"a", b"xy")[:-1],  # value truncated
        bytes([SECTION_START, 1]) + b"s",  # section never closed
        bytes([SECTION_END]),  # close without open
        bytes([LIST_START, 1]) + b"l",  # list never closed
        bytes([LIST_START, 1]) + b"l" + _kv(b"a", b"b"),  # key/value inside a list
        bytes([LIST_ITEM, 0, 0]),  # item outside a list
        bytes([9]),  # unknown element
    ],
)
def test_malformed_rejected(data: bytes) -> None:
    with pytest.raises(ViciError):
        decode_message(data)


def test_parse_list_sas() -> None:
    (sa,) = parse_list_sas([SAMPLE])
    assert sa.name == "home" and sa.state == "ESTABLISHED" and sa.initiator
    assert sa.local_id == "C=CH, O=strongSwan, CN=cl.test"  # spaces survive
    assert sa.local_vips == ("10.3.0.1",) and sa.remote_vips == ()
    assert sa.remote_eap_id is None
    child = sa.child("home")
    assert child.state == "INSTALLED" and child.encap and child.mode == "TUNNEL"
    assert child.remote_ts == ("10.1.0.0/16", "10.2.0.0/16")
    with pytest.raises(KeyError):
        sa.child("other")
    assert parse_list_sas([]) == []


def test_render_conf_one_key_per_line() -> None:
    text = render_conf(
        {
            "connections": {
                "home": {
                    "remote_addrs": "192.0.2.1",
                    "vips": ["0.0.0.0", "::"],
                    "mobike": False,
                    "local": {"auth": "eap-tls", "certs": "cl.pem"},
                }
            }
        }
    )
    assert text == (
        "connections {\n"
        "  home {\n"
        "    remote_addrs = 192.0.2.1\n"
        "    vips = 0.0.0.0,::\n"
        "    mobike = no\n"
        "    local {\n"
        "      auth = eap-tls\n"
        "      certs = cl.pem\n"
        "    }\n"
        "  }\n"
        "}\n"
    )
    with pytest.raises(ValueError, match="newline"):
        render_conf({"a": "x\ny"})
