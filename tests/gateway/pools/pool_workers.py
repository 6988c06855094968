"""Helpers shared by the SQL pool tests (not a test module): concurrent allocators and a
schema drift check."""

from __future__ import annotations

import multiprocessing
from ipaddress import ip_address
from ipaddress import ip_address as ip

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.pools.schema import VERSION_TABLE, metadata
from gateway.pools.sql import SqlPools


def _allocate(
    url: str,
    pool: str,
    worker: int,
    count: int,
    queue: multiprocessing.Queue[tuple[int, list[str | None], str | None]],
) -> None:
    try:
        store = SqlPools(url, crash_recovery=False, create_schema=False)
        got: list[str | None] = []
        for i in range(count):
            address = store.acquire(pool, f"w{worker}-u{i}")
            got.append(None if address is None else str(address))
            # release every third one again: exercises reuse under contention
            if address is not None and i % 3 == 2:
                store.release(pool, address, f"w{worker}-u{i}")
                got[-1] = "released:" + str(address)
        store.close()
        queue.put((worker, got, None))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put((worker, [], repr(exc)))


def run_concurrent_allocators(url: str, pool: str, workers: int, count: int) -> list[str]:
    """Fork ``workers`` processes, each acquiring ``count`` addresses for distinct identities.
    Returns the addresses still held at the end (released ones left out), in no order."""
    # forkserver: the workers come from a clean single-threaded server process, never from a
    # pytest process that may hold threads (a fork there can inherit a held lock)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    queue: multiprocessing.Queue[tuple[int, list[str | None], str | None]] = ctx.Queue()
    procs = [
        ctx.Process(target=_allocate, args=(url, pool, w, count, queue)) for w in range(workers)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [err for _, _, err in results if err]
    assert not errors, errors
    held = [a for _, got, _ in results for a in got if a and not a.startswith("released:")]
    for a in held:
        ip_address(a)
    return held


def schema_drift(store: SqlPools) -> list[object]:
    """Differences between the migrated database and the tables the code uses."""
    with store.engine.connect() as c:
        ctx = MigrationContext.configure(c, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, metadata) if VERSION_TABLE not in repr(d)]


def prepare_pool(url: str, size: int, timeout: int, expired: bool) -> None:
    """Pool "p" of ``size`` addresses from 10.3.0.1; with ``expired`` every address was leased
    and released long ago, so allocators race for old rows instead of fresh ones."""
    store = SqlPools(url)
    store.add_pool("p", ip("10.3.0.1"), ip(int(ip("10.3.0.1")) + size - 1), timeout=timeout)
    if expired:
        past = SqlPools(url, crash_recovery=False, clock=lambda: 1_000_000.0)
        for i in range(size):
            address = past.acquire("p", f"old{i}")
            assert address is not None and past.release("p", address, f"old{i}")
        past.close()
    store.close()
