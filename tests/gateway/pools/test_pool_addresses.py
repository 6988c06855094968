"""Parsing of pool ranges: CIDR, start-end, single addresses, and the errors users see."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from gateway.pools.addresses import AddressRange, parse_ranges
from gateway.pools.errors import InvalidArgument

CASES = [
    # (text, first, last, size)
    ("10.3.0.0/24", "10.3.0.1", "10.3.0.254", 254),
    ("10.0.0.0/8", "10.0.0.1", "10.255.255.254", 2**24 - 2),
    ("192.0.2.4/31", "192.0.2.4", "192.0.2.5", 2),
    ("192.0.2.9/32", "192.0.2.9", "192.0.2.9", 1),
    ("10.3.1.10-10.3.1.99", "10.3.1.10", "10.3.1.99", 90),
    ("10.3.1.7", "10.3.1.7", "10.3.1.7", 1),
    ("fd00::/120", "fd00::1", "fd00::fe", 254),
    ("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:fffe", 2**64 - 2),
    ("fd00::10-fd00::1f", "fd00::10", "fd00::1f", 16),
]


@pytest.mark.parametrize(("text", "first", "last", "size"), CASES)
def test_range_parses(text: str, first: str, last: str, size: int) -> None:
    r = AddressRange.parse(text)
    assert (r.first, r.last, r.size) == (ip_address(first), ip_address(last), size)
    assert r.at(0) == ip_address(first)
    assert r.at(size - 1) == ip_address(last)
    assert r.offset_of(ip_address(last)) == size - 1
    with pytest.raises(IndexError):
        r.at(size)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10.3.0.0/33", "invalid subnet"),
        ("10.3.0.9-10.3.0.1", "reversed"),
        ("10.3.0.1-fd00::1", "mixes IPv4 and IPv6"),
        ("10.3.0.x", "invalid address"),
        ("10.0.0.0/24,10.0.0.128/25", "overlap"),
        ("10.0.0.0/24,fd00::/64", "mixes IPv4 and IPv6"),
        ("", "no addresses"),
    ],
)
def test_malformed_ranges_name_the_problem(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words) as info:
        parse_ranges(text)
    assert info.value.exit_code == 2


def test_several_ranges_in_one_pool() -> None:
    ranges = parse_ranges("10.3.0.0/30, 10.3.1.10-10.3.1.12")
    assert [str(r) for r in ranges] == ["10.3.0.1-10.3.0.2", "10.3.1.10-10.3.1.12"]
    assert ip_address("10.3.1.11") in ranges[1]
    assert ip_address("10.3.1.13") not in ranges[1]
