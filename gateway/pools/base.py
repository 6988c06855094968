"""The interface both pool kinds implement, and the records they report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from gateway.pools.addresses import IPAddress

__all__ = ["Lease", "LeaseState", "PoolProvider", "PoolStatus", "lease_state"]


class LeaseState(Enum):
    """States of a lease as ``ipsec pool --leases`` reports them."""

    ONLINE = "online"  # in use by an IKE_SA
    VALID = "valid"  # released, still reserved for its identity (within the pool timeout)
    EXPIRED = "expired"  # released longer ago than the timeout: may go to another identity
    STATIC = "static"  # released, but the pool has no timeout: the address stays with its identity


def lease_state(released: int, timeout: int, now: float) -> LeaseState:
    """attr-sql's rule (``released`` 0 = online; timeout 0 = static pool)."""
    if released == 0:
        return LeaseState.ONLINE
    if timeout == 0:
        return LeaseState.STATIC
    if released >= now - timeout:
        return LeaseState.VALID
    return LeaseState.EXPIRED


@dataclass(frozen=True)
class Lease:
    """One lease: current (from the addresses) or historical (lease history)."""

    pool: str
    address: IPAddress
    identity: str
    acquired: int
    released: int  # 0 while online
    state: LeaseState


@dataclass(frozen=True)
class PoolStatus:
    """One pool in ``status()``: ``size`` addresses, ``online`` in use, ``leased`` in use or
    reserved for an identity (online + valid, or every assigned address of a static pool)."""

    name: str
    backend: str  # "memory" or "sql"
    ranges: tuple[str, ...]
    size: int
    online: int
    leased: int
    timeout: int  # seconds; 0 = static (memory pools: 0 = no expiry)
    quarantine: bool = False


@runtime_checkable
class PoolProvider(Protocol):
    """What the gateway asks of a pool backend. Addresses are ``ipaddress`` objects; an
    identity is the peer's EAP or IKE identity as text.

    ``blocking`` tells the Twisted adapter whether calls must run in a thread."""

    blocking: bool

    def acquire(
        self, pool: str, identity: str, requested: IPAddress | None = None
    ) -> IPAddress | None:
        """A virtual IP for ``identity`` from ``pool``, or None (exhausted, unknown pool, or a
        ``requested`` family the pool does not serve)."""
        ...

    def release(self, pool: str, address: IPAddress, identity: str) -> bool:
        """Give back ``address`` when the IKE_SA goes; False if it was not leased to
        ``identity``."""
        ...

    def attributes(self, pool: str, identity: str) -> list[tuple[int, bytes]]:
        """Configuration attributes ``(type, value)`` for the CP payload."""
        ...

    def status(self) -> list[PoolStatus]: ...
