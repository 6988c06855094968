"""Twisted-facing wrapper: every call returns a Deferred and never blocks the reactor.

A non-blocking provider (:class:`~gateway.pools.memory.MemoryPools`) is called directly and its
result wrapped in an already-fired Deferred; a blocking one (:class:`~gateway.pools.sql.SqlPools`)
runs in a thread pool (the reactor's by default) and its result comes back through
``reactor.callFromThread``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from gateway.pools.addresses import IPAddress
from gateway.pools.base import PoolProvider, PoolStatus

__all__ = ["DeferredPools"]

R = TypeVar("R")


class DeferredPools:
    """``acquire``/``release``/``attributes``/``status`` of a :class:`PoolProvider`, as
    Deferreds."""

    def __init__(
        self,
        provider: PoolProvider,
        *,
        reactor: Any = None,
        threadpool: ThreadPool | None = None,
    ) -> None:
        self.provider = provider
        if reactor is None and provider.blocking:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self._reactor = reactor
        self._threadpool = threadpool

    def _call(self, fn: Callable[..., R], *args: Any) -> defer.Deferred[R]:
        if not self.provider.blocking:
            return defer.maybeDeferred(fn, *args)
        pool = self._threadpool if self._threadpool is not None else self._reactor.getThreadPool()
        return deferToThreadPool(self._reactor, pool, fn, *args)

    def acquire(
        self, pool: str, identity: str, requested: IPAddress | None = None
    ) -> defer.Deferred[IPAddress | None]:
        return self._call(self.provider.acquire, pool, identity, requested)

    def release(self, pool: str, address: IPAddress, identity: str) -> defer.Deferred[bool]:
        return self._call(self.provider.release, pool, address, identity)

    def attributes(self, pool: str, identity: str) -> defer.Deferred[list[tuple[int, bytes]]]:
        return self._call(self.provider.attributes, pool, identity)

    def status(self) -> defer.Deferred[list[PoolStatus]]:
        return self._call(self.provider.status)
