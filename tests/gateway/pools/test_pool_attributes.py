"""Configuration attribute encoding (RFC 7296 3.15.1 value formats) and level resolution."""

from __future__ import annotations

import pytest

from gateway.pools.attributes import (
    AttributeStore,
    ValueKind,
    encode_attribute,
    format_attribute_value,
    lookup_keyword,
)
from gateway.pools.attributes import (
    ConfigAttributeType as T,
)
from gateway.pools.errors import InvalidArgument

A, S, STR, HEX = ValueKind.ADDR, ValueKind.SUBNET, ValueKind.STRING, ValueKind.HEX

# (keyword, kind, value text, type, bytes, shown) -- one table drives encode and display
CASES = [
    ("dns", A, "10.3.0.53", T.INTERNAL_IP4_DNS, bytes([10, 3, 0, 53]), "10.3.0.53"),
    (
        "dns",
        A,
        "fd00::53",
        T.INTERNAL_IP6_DNS,
        bytes.fromhex("fd00" + "00" * 13 + "53"),
        "fd00::53",
    ),
    ("nbns", A, "10.3.0.137", T.INTERNAL_IP4_NBNS, bytes([10, 3, 0, 137]), "10.3.0.137"),
    ("wins", A, "10.3.0.137", T.INTERNAL_IP4_NBNS, bytes([10, 3, 0, 137]), "10.3.0.137"),
    ("netmask", A, "255.255.0.0", T.INTERNAL_IP4_NETMASK, bytes([255, 255, 0, 0]), "255.255.0.0"),
    ("server", A, "10.3.0.2", T.INTERNAL_IP4_SERVER, bytes([10, 3, 0, 2]), "10.3.0.2"),
    # INTERNAL_IP4_SUBNET: address + netmask (8 octets)
    (
        "subnet",
        S,
        "10.1.0.0/16",
        T.INTERNAL_IP4_SUBNET,
        bytes([10, 1, 0, 0, 255, 255, 0, 0]),
        "10.1.0.0/16",
    ),
    # INTERNAL_IP6_SUBNET: address + prefix length (17 octets)
    (
        "subnet",
        S,
        "fd00:1::/48",
        T.INTERNAL_IP6_SUBNET,
        bytes.fromhex("fd000001" + "00" * 12) + b"\x30",
        "fd00:1::/48",
    ),
    (
        "split-include",
        S,
        "10.0.0.0/8",
        T.UNITY_SPLIT_INCLUDE,
        bytes([10, 0, 0, 0, 255, 0, 0, 0]),
        "10.0.0.0/8",
    ),
    (
        "split_include",
        S,
        "10.0.0.0/8",
        T.UNITY_SPLIT_INCLUDE,
        bytes([10, 0, 0, 0, 255, 0, 0, 0]),
        "10.0.0.0/8",
    ),
    (
        "split-exclude",
        S,
        "192.168.0.0/16",
        T.UNITY_LOCAL_LAN,
        bytes([192, 168, 0, 0, 255, 255, 0, 0]),
        "192.168.0.0/16",
    ),
    ("banner", STR, "Welcome", T.UNITY_BANNER, b"Welcome", "Welcome"),
    ("dns-domain", STR, "corp.example", T.INTERNAL_DNS_DOMAIN, b"corp.example", "corp.example"),
    ("internal_ip4_dns", A, "10.0.0.1", T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 1]), "10.0.0.1"),
    ("UNITY_BANNER", STR, "x", T.UNITY_BANNER, b"x", "x"),
    ("28675", HEX, "0x6578", 28675, b"ex", "ex"),  # UNITY_SPLITDNS_NAME: string type
    ("12345", HEX, "01:02", 12345, b"\x01\x02", "0x0102"),
    ("12345", STR, "abc", 12345, b"abc", "0x616263"),
    ("banner", HEX, "4869", T.UNITY_BANNER, b"Hi", "Hi"),
]


@pytest.mark.parametrize(("kw", "kind", "text", "type_", "data", "shown"), CASES)
def test_encode_and_show(
    kw: str, kind: ValueKind, text: str, type_: int, data: bytes, shown: str
) -> None:
    assert encode_attribute(kw, kind, text) == (type_, data)
    assert format_attribute_value(type_, data) == shown
    assert format_attribute_value(type_, data, hexout=True) == "0x" + data.hex()


@pytest.mark.parametrize(
    ("kw", "kind", "text", "words"),
    [
        ("dns", S, "10.0.0.0/8", "give it with --addr"),
        ("banner", A, "10.0.0.1", "give it with --string"),
        ("split-include", A, "10.0.0.1", "give it with --subnet"),
        ("split-include", S, "fd00::/64", "no IPv6 variant"),
        ("dns", A, "10.0.0.300", "invalid address"),
        ("subnet", S, "10.0.0.0/40", "invalid subnet"),
        ("colour", STR, "red", "unknown attribute type 'colour'"),
        ("99999", HEX, "00", "out of range"),
        ("banner", HEX, "zz", "invalid hex"),
    ],
)
def test_bad_attributes_say_what_to_fix(kw: str, kind: ValueKind, text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words) as info:
        encode_attribute(kw, kind, text)
    assert info.value.exit_code == 2


def test_keyword_lookup_is_forgiving() -> None:
    assert lookup_keyword("Split_Include").keyword == "split-include"
    assert lookup_keyword("internal-ip6-dns").ip6 == T.INTERNAL_IP6_DNS


def test_most_specific_level_wins_as_a_whole() -> None:
    store = AttributeStore()
    store.add_values("dns", "10.0.0.53")
    store.add_values("banner", "corp", pool="corp")
    store.add_values("dns", "10.0.1.53", pool="corp")
    store.add_values("banner", "hi carol", pool="corp", identity="carol")
    assert store.resolve("other", "alice") == [(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]))]
    assert store.resolve("corp", "alice") == [
        (T.UNITY_BANNER, b"corp"),
        (T.INTERNAL_IP4_DNS, bytes([10, 0, 1, 53])),
    ]
    assert store.resolve("corp", "carol") == [(T.UNITY_BANNER, b"hi carol")]
    assert store.resolve("other", "carol") == [(T.INTERNAL_IP4_DNS, bytes([10, 0, 0, 53]))]
    with pytest.raises(InvalidArgument, match="needs a pool"):
        store.add(T.UNITY_BANNER, b"x", identity="carol")
