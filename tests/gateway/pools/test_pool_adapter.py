"""DeferredPools: memory pools answer at once; SQL runs in a thread pool and its result comes
back through reactor.callFromThread (the reactor thread never blocks on the database)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from ipaddress import ip_address as ip
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from gateway.pools import DeferredPools, MemoryPools, PoolError, SqlPools
from gateway.pools.addresses import IPAddress


class FakeReactor:
    """Collects callFromThread calls; the test thread runs them, as the reactor would."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.calls.put((f, args))

    def run_one(self) -> None:
        f, args = self.calls.get(timeout=10)
        f(*args)


def result_of(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    return out[0]


def test_memory_pools_fire_immediately() -> None:
    pools = MemoryPools.from_config({"corp": {"addrs": "10.3.0.0/24", "dns": "10.3.0.53"}})
    dp = DeferredPools(pools)
    a = result_of(dp.acquire("corp", "alice"))
    assert a == ip("10.3.0.1")
    assert result_of(dp.attributes("corp", "alice")) == [(3, bytes([10, 3, 0, 53]))]
    assert result_of(dp.release("corp", a, "alice")) is True
    assert result_of(dp.status())[0].leased == 1


class RecordingSql(SqlPools):
    threads: list[int]

    def acquire(
        self, pool: str, identity: str, requested: IPAddress | None = None
    ) -> IPAddress | None:
        self.threads.append(threading.get_ident())
        return super().acquire(pool, identity, requested)


@pytest.fixture
def threadpool() -> Any:
    tp = ThreadPool(minthreads=1, maxthreads=2, name="pools-test")
    tp.start()
    yield tp
    tp.stop()


def test_sql_runs_in_the_thread_pool(tmp_path: Path, threadpool: ThreadPool) -> None:
    store = RecordingSql(f"sqlite:///{tmp_path / 'p.db'}")
    store.threads = []
    store.add_pool("corp", ip("10.3.0.1"), ip("10.3.0.9"), timeout=3600)
    reactor = FakeReactor()
    dp = DeferredPools(store, reactor=reactor, threadpool=threadpool)
    d: Deferred[Any] = dp.acquire("corp", "alice")
    reactor.run_one()
    assert result_of(d) == ip("10.3.0.1")
    assert store.threads and store.threads[0] != threading.get_ident()
    d = dp.release("corp", ip("10.3.0.1"), "alice")
    reactor.run_one()
    assert result_of(d) is True
    d = dp.status()
    reactor.run_one()
    assert result_of(d)[0].leased == 1
    store.close()


class Broken:
    blocking = True

    def acquire(
        self, pool: str, identity: str, requested: IPAddress | None = None
    ) -> IPAddress | None:
        raise PoolError("database contention: gave up")

    def release(self, pool: str, address: IPAddress, identity: str) -> bool:
        return False

    def attributes(self, pool: str, identity: str) -> list[tuple[int, bytes]]:
        return []

    def status(self) -> list[Any]:
        return []


def test_errors_arrive_as_failures(threadpool: ThreadPool) -> None:
    reactor = FakeReactor()
    dp = DeferredPools(Broken(), reactor=reactor, threadpool=threadpool)
    d = dp.acquire("corp", "alice")
    reactor.run_one()
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.check(PoolError)  # type: ignore[no-untyped-call]
