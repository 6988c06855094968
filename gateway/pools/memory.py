"""In-memory pools (``[pools.NAME] addrs = ...``), the counterpart of strongSwan's mem_pool.

Memory is spent on leases only. A pool is a list of ranges and a counter of the next address
never handed out; an address is ``range.first + offset``. A /8 (or an IPv6 /64) costs what its
leases cost.

Allocation order for ``acquire(identity, requested)``:

1. ``requested`` is an address this identity holds online (a second IKE_SA of the same peer,
   or a reauthentication that asks for its address): share it (reference-counted);
2. the identity has an offline lease (it was here before): it gets that address back;
3. the next never-used address;
4. the offline lease released longest ago by another identity, if it has been offline for at
   least ``reassign_after`` seconds (0: as soon as the fresh addresses run out);
5. otherwise None (exhausted).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.pools.addresses import AddressRange, IPAddress, parse_ranges
from gateway.pools.attributes import AttributeStore, lookup_keyword
from gateway.pools.base import Lease, LeaseState, PoolStatus
from gateway.pools.errors import InvalidArgument, PoolExists, PoolOverlap

__all__ = ["MemoryPool", "MemoryPools"]

Clock = Callable[[], float]


@dataclass
class _State:
    next_fresh: int = 0
    owner: dict[int, str] = field(default_factory=dict)  # offset -> identity holding it
    by_identity: dict[str, list[int]] = field(default_factory=dict)
    online: dict[int, int] = field(default_factory=dict)  # offset -> reference count
    acquired: dict[int, int] = field(default_factory=dict)  # offset -> time acquired
    offline: OrderedDict[int, int] = field(default_factory=OrderedDict)  # offset -> released


class MemoryPool:
    """One in-memory pool over one or more ranges of one address family."""

    def __init__(
        self,
        name: str,
        ranges: str | Iterable[str] | Iterable[AddressRange],
        *,
        reassign_after: int = 0,
        quarantine: bool = False,
        clock: Clock = time.time,
    ) -> None:
        items = list(ranges) if not isinstance(ranges, str) else [ranges]
        if items and all(isinstance(r, AddressRange) for r in items):
            self.ranges: tuple[AddressRange, ...] = tuple(
                r for r in items if isinstance(r, AddressRange)
            )
        else:
            self.ranges = tuple(parse_ranges([str(r) for r in items]))
        if reassign_after < 0:
            raise InvalidArgument(f"pool '{name}': reassign_after must not be negative")
        self.name = name
        self.reassign_after = reassign_after
        self.quarantine = quarantine
        self.version = self.ranges[0].version
        self._clock = clock
        self._starts: list[int] = []
        total = 0
        for r in self.ranges:
            self._starts.append(total)
            total += r.size
        self.size = total
        self._s = _State()
        self._lock = threading.Lock()

    # offsets <-> addresses -------------------------------------------------------------
    def _address(self, offset: int) -> IPAddress:
        i = bisect.bisect_right(self._starts, offset) - 1
        return self.ranges[i].at(offset - self._starts[i])

    def _offset(self, address: IPAddress) -> int | None:
        for start, r in zip(self._starts, self.ranges, strict=True):
            if address in r:
                return start + r.offset_of(address)
        return None

    def __contains__(self, address: object) -> bool:
        return any(address in r for r in self.ranges)

    # allocation ------------------------------------------------------------------------
    def _take(self, offset: int, identity: str, now: int) -> IPAddress:
        s = self._s
        previous = s.owner.get(offset)
        if previous is not None and previous != identity:
            held = s.by_identity[previous]
            held.remove(offset)
            if not held:
                del s.by_identity[previous]
        if previous != identity:
            s.owner[offset] = identity
            s.by_identity.setdefault(identity, []).append(offset)
        s.offline.pop(offset, None)
        if offset not in s.online:
            s.acquired[offset] = now
        s.online[offset] = s.online.get(offset, 0) + 1
        return self._address(offset)

    def acquire(self, identity: str, requested: IPAddress | None = None) -> IPAddress | None:
        if requested is not None and requested.version != self.version:
            return None
        with self._lock:
            s = self._s
            now = int(self._clock())
            if requested is not None and not requested.is_unspecified:
                offset = self._offset(requested)
                if offset is not None and s.owner.get(offset) == identity:
                    return self._take(offset, identity, now)
            for offset in s.by_identity.get(identity, ()):
                if offset in s.offline:
                    return self._take(offset, identity, now)
            if s.next_fresh < self.size:
                offset = s.next_fresh
                s.next_fresh += 1
                return self._take(offset, identity, now)
            if s.offline:
                offset, released = next(iter(s.offline.items()))
                if now - released >= self.reassign_after:
                    return self._take(offset, identity, now)
            return None

    def release(self, address: IPAddress, identity: str) -> bool:
        with self._lock:
            s = self._s
            offset = self._offset(address)
            if offset is None or s.owner.get(offset) != identity or offset not in s.online:
                return False
            s.online[offset] -= 1
            if s.online[offset] == 0:
                del s.online[offset]
                s.offline[offset] = int(self._clock())
            return True

    def status(self) -> PoolStatus:
        with self._lock:
            return PoolStatus(
                name=self.name,
                backend="memory",
                ranges=tuple(str(r) for r in self.ranges),
                size=self.size,
                online=len(self._s.online),
                leased=len(self._s.owner),
                timeout=self.reassign_after,
                quarantine=self.quarantine,
            )

    def leases(self) -> list[Lease]:
        with self._lock:
            s = self._s
            out = []
            now = int(self._clock())
            for offset, identity in s.owner.items():
                released = s.offline.get(offset, 0)
                if offset in s.online:
                    state = LeaseState.ONLINE
                elif self.reassign_after and now - released >= self.reassign_after:
                    state = LeaseState.EXPIRED  # may go to another identity
                else:
                    state = LeaseState.VALID  # kept for its identity
                out.append(
                    Lease(
                        self.name,
                        self._address(offset),
                        identity,
                        s.acquired.get(offset, 0),
                        released,
                        state,
                    )
                )
            return out


_POOL_KEYS = {"addrs", "quarantine", "reassign_after", "identities"}


class MemoryPools:
    """A set of named :class:`MemoryPool` plus their attributes; a :class:`PoolProvider`.

    Several connections may name the same pool: leases are per pool, so an identity keeps its
    address whichever connection it comes in on."""

    blocking = False

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self.pools: dict[str, MemoryPool] = {}
        self.attrs = AttributeStore()

    def add_pool(
        self,
        name: str,
        addrs: str | Iterable[str],
        *,
        reassign_after: int = 0,
        quarantine: bool = False,
    ) -> MemoryPool:
        if name in self.pools:
            raise PoolExists(name)
        pool = MemoryPool(
            name, addrs, reassign_after=reassign_after, quarantine=quarantine, clock=self._clock
        )
        for other in self.pools.values():
            for a in pool.ranges:
                for b in other.ranges:
                    if a.overlaps(b):
                        raise PoolOverlap(
                            f"pool '{name}' range {a} overlaps pool '{other.name}' range {b}; "
                            "pools must not share addresses"
                        )
        self.pools[name] = pool
        return pool

    @classmethod
    def from_config(
        cls,
        pools: Mapping[str, Mapping[str, object]],
        attributes: Mapping[str, object] | None = None,
        clock: Clock = time.time,
    ) -> MemoryPools:
        """Build from the ``[pools.NAME]`` tables (and an optional global ``[attributes]``)::

        [pools.corp]
        addrs = "10.3.0.0/16"            # or ["10.3.0.0/24", "10.3.1.10-10.3.1.99"]
        dns = ["10.3.0.53", "fd00::53"]
        split-include = ["10.0.0.0/8"]
        [pools.corp.identities."carol@example.org"]
        banner = "carol's own banner"
        [pools.isolate]
        addrs = "10.99.0.0/24"
        quarantine = true
        dns = "10.99.0.53"
        banner = "Your device is isolated: see https://remediation.example/"
        """
        self = cls(clock)
        for name, section in pools.items():
            if "addrs" not in section:
                raise InvalidArgument(f"[pools.{name}] needs addrs (a subnet or range list)")
            for key in section:
                if key not in _POOL_KEYS:
                    try:
                        lookup_keyword(key)
                    except InvalidArgument:
                        raise InvalidArgument(
                            f"[pools.{name}]: unknown key '{key}' (expected addrs, quarantine, "
                            "reassign_after, identities or an attribute keyword)"
                        ) from None
            addrs = section["addrs"]
            if not isinstance(addrs, str | list):
                raise InvalidArgument(f"[pools.{name}] addrs must be a string or a list")
            reassign_after = section.get("reassign_after", 0)
            if not isinstance(reassign_after, int):
                raise InvalidArgument(f"[pools.{name}] reassign_after must be seconds (integer)")
            self.add_pool(
                name,
                addrs if isinstance(addrs, str) else [str(a) for a in addrs],
                reassign_after=reassign_after,
                quarantine=bool(section.get("quarantine", False)),
            )
            self.attrs.load(name, {k: v for k, v in section.items() if k not in _POOL_KEYS})
            identities = section.get("identities", {})
            if not isinstance(identities, Mapping):
                raise InvalidArgument(f"[pools.{name}.identities] must be a table")
            for identity, values in identities.items():
                if not isinstance(values, Mapping):
                    raise InvalidArgument(f'[pools.{name}.identities."{identity}"] must be a table')
                for key, value in values.items():
                    items = value if isinstance(value, list) else [value]
                    self.attrs.add_values(key, [str(v) for v in items], name, str(identity))
        if attributes:
            self.attrs.load(None, attributes)
        return self

    # PoolProvider --------------------------------------------------------------------------
    def acquire(
        self, pool: str, identity: str, requested: IPAddress | None = None
    ) -> IPAddress | None:
        p = self.pools.get(pool)
        return p.acquire(identity, requested) if p is not None else None

    def release(self, pool: str, address: IPAddress, identity: str) -> bool:
        p = self.pools.get(pool)
        return p.release(address, identity) if p is not None else False

    def attributes(self, pool: str, identity: str) -> list[tuple[int, bytes]]:
        return self.attrs.resolve(pool, identity)

    def status(self) -> list[PoolStatus]:
        return [p.status() for p in self.pools.values()]

    def leases(self) -> list[Lease]:
        return [lease for p in self.pools.values() for lease in p.leases()]
