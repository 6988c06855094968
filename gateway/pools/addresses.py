"""Address ranges: parsing ``addrs`` values and mapping offsets to addresses.

A pool is a list of inclusive ranges. Nothing here enumerates a range: an address is
``first + offset``, so a /8 costs two integers.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from gateway.pools.errors import InvalidArgument

__all__ = [
    "AddressRange",
    "IPAddress",
    "parse_address",
    "parse_ranges",
    "ranges_overlap",
]

IPAddress = IPv4Address | IPv6Address


def parse_address(text: str, what: str = "address") -> IPAddress:
    """Parse one IPv4/IPv6 address; :class:`InvalidArgument` names ``what`` on failure."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidArgument(
            f"invalid {what} '{text}': expected an IPv4 or IPv6 address"
        ) from None


@dataclass(frozen=True)
class AddressRange:
    """An inclusive range ``first`` .. ``last`` of one address family."""

    first: IPAddress
    last: IPAddress

    def __post_init__(self) -> None:
        if self.first.version != self.last.version:
            raise InvalidArgument(
                f"range {self.first}-{self.last} mixes IPv4 and IPv6; use one family per range"
            )
        if int(self.first) > int(self.last):
            raise InvalidArgument(
                f"range {self.first}-{self.last} is reversed: the start must not be after the end"
            )

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, IPv4Address | IPv6Address):
            return False
        return address.version == self.version and int(self.first) <= int(address) <= int(self.last)

    def offset_of(self, address: IPAddress) -> int:
        return int(address) - int(self.first)

    def at(self, offset: int) -> IPAddress:
        if not 0 <= offset < self.size:
            raise IndexError(offset)
        return ipaddress.ip_address(int(self.first) + offset)

    def overlaps(self, other: AddressRange) -> bool:
        return (
            self.version == other.version
            and int(self.first) <= int(other.last)
            and int(other.first) <= int(self.last)
        )

    def __str__(self) -> str:
        if self.first == self.last:
            return str(self.first)
        return f"{self.first}-{self.last}"

    @classmethod
    def parse(cls, text: str) -> AddressRange:
        """Parse ``10.0.0.0/24``, ``10.0.0.10-10.0.0.99`` or a single address.

        A subnet of more than two addresses leaves out its first and last address (the
        network and broadcast address for IPv4; for IPv6 the subnet-router anycast address and
        its mirror), as strongSwan's in-memory pools do; a /31, /32, /127 or /128 is used whole.
        """
        text = text.strip()
        if not text:
            raise InvalidArgument("empty address range")
        if "/" in text:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise InvalidArgument(
                    f"invalid subnet '{text}': expected e.g. 10.3.0.0/16 or fd00::/64"
                ) from None
            if net.num_addresses > 2:
                return cls(
                    ipaddress.ip_address(int(net.network_address) + 1),
                    ipaddress.ip_address(int(net.broadcast_address) - 1),
                )
            return cls(net.network_address, net.broadcast_address)
        if "-" in text:
            start, _, end = text.partition("-")
            return cls(parse_address(start, "range start"), parse_address(end, "range end"))
        address = parse_address(text)
        return cls(address, address)


def parse_ranges(spec: str | Iterable[str]) -> list[AddressRange]:
    """Parse a comma-separated string (or a list) of ranges; rejects overlaps and mixed families."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    ranges = [AddressRange.parse(item) for item in items if item.strip()]
    if not ranges:
        raise InvalidArgument("no addresses given: addrs needs at least one subnet or range")
    if len({r.version for r in ranges}) > 1:
        raise InvalidArgument(
            f"pool mixes IPv4 and IPv6 ranges ({', '.join(map(str, ranges))}); "
            "define one pool per address family"
        )
    clash = ranges_overlap(ranges)
    if clash:
        raise InvalidArgument(f"ranges {clash[0]} and {clash[1]} overlap")
    return ranges


def ranges_overlap(ranges: Sequence[AddressRange]) -> tuple[AddressRange, AddressRange] | None:
    """The first overlapping pair in ``ranges``, or None."""
    ordered = sorted(ranges, key=lambda r: (r.version, int(r.first)))
    for a, b in itertools.pairwise(ordered):
        if a.overlaps(b):
            return a, b
    return None
