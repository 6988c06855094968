"""Lease throughput of the pools: acquire + release per second.

Backends: memory, SQLite (a file) and PostgreSQL (a throw-away server started with
tests/harness/postgres.py when Debian's postgresql is installed). Pool sizes 1,000 and
1,000,000 addresses. Two workloads of N cycles each:

* churn -- every cycle a new identity acquires and releases. The pool timeout is 60 s and the
  (fake) clock advances 1 s per cycle, so the 1,000-address pool runs out of never-used
  addresses after 1,000 cycles and then reuses expired rows; the 1,000,000 pool never does.
* return -- 500 identities come back again and again (identity reuse).

Run: ``python bench/bench_pools.py [cycles]`` (default 2000). Not part of the tests.
"""

from __future__ import annotations

import ipaddress
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.common import Figure, Result, Skipped, progress  # noqa: E402
from gateway.pools import MemoryPools, PoolProvider, SqlPools  # noqa: E402
from gateway.pools.schema import addresses  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _cycles(provider: PoolProvider, clock: Clock, n: int, workload: str) -> float:
    start = time.perf_counter()
    for i in range(n):
        identity = f"user{i}" if workload == "churn" else f"user{i % 500}"
        address = provider.acquire("bench", identity)
        if address is None:
            raise RuntimeError(f"pool exhausted at cycle {i}")
        if not provider.release("bench", address, identity):
            raise RuntimeError(f"release failed at cycle {i}")
        clock.now += 1
    return time.perf_counter() - start


def _last(size: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.1")) + size - 1)


@contextmanager
def _sql(url: str, size: int, clock: Clock) -> Iterator[tuple[SqlPools, float]]:
    store = SqlPools(url, clock=clock)
    t = time.perf_counter()
    store.add_pool("bench", ipaddress.IPv4Address("10.0.0.1"), _last(size), timeout=60)
    setup = time.perf_counter() - t
    try:
        yield store, setup
    finally:
        store.delete_pool("bench")
        store.close()


@dataclass(frozen=True)
class Row:
    backend: str
    size: int
    workload: str
    setup: float
    """seconds to create the pool"""
    rate: float
    """cycles per second"""
    rows: str


def run(n: int, say: Callable[[str], None] = print) -> tuple[list[Row], list[str]]:
    """Every backend x pool size x workload; and why a backend did not run, if one did not."""
    out: list[Row] = []
    missing: list[str] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pools-")))
        backends: list[tuple[str, str | None]] = [
            ("memory", None),
            ("sqlite", f"sqlite:///{tmp / 'bench.db'}"),
        ]
        try:
            from tests.harness.postgres import find_pg_bin, postgres_server

            if find_pg_bin() is not None:
                backends.append(("postgresql", stack.enter_context(postgres_server())))
            else:
                missing.append("PostgreSQL not installed (Debian package postgresql)")
        except Exception as exc:  # the benchmark still reports the other backends
            missing.append(f"PostgreSQL unavailable: {exc}")
        for reason in missing:
            say(f"{reason}: skipped")
        for name, url in backends:
            for size in (1_000, 1_000_000):
                for workload in ("churn", "return"):
                    say(f"{name}, {size:,} addresses, {workload}, {n} cycles")
                    clock = Clock()
                    if url is None:
                        t = time.perf_counter()
                        mem = MemoryPools(clock)
                        mem.add_pool("bench", f"10.0.0.1-{_last(size)}", reassign_after=60)
                        setup = time.perf_counter() - t
                        elapsed = _cycles(mem, clock, n, workload)
                        rows = "-"
                    else:
                        with _sql(url, size, clock) as (store, setup):
                            elapsed = _cycles(store, clock, n, workload)
                            with store.engine.connect() as c:
                                count: Callable[[], int] = lambda: c.execute(  # noqa: E731
                                    select(func.count()).select_from(addresses)
                                ).scalar_one()
                                rows = f"{count():,}"
                    out.append(Row(name, size, workload, setup, n / elapsed, rows))
    return out, missing


def collect(quick: bool) -> list[Result]:
    """cycles/s per backend, pool size and workload, and the pool setup time per backend
    and size (from the churn run): the runner's figures."""
    n = 300 if quick else 2000
    rows, missing = run(n, progress)
    results: list[Result] = []
    for r in rows:
        what = f"{r.backend}, {r.size:,} addresses"
        results.append(
            Figure(
                "pools",
                f"{what}, {r.workload}",
                "cycles/s",
                r.rate,
                better="higher",
                note=f"{n} cycles",
            )
        )
        if r.workload == "churn":
            results.append(Figure("pools", f"{what}, pool setup", "ms", r.setup * 1e3))
    results += [Skipped("pools", "postgresql", reason) for reason in missing]
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 2000
    table = Table(title=f"pool lease cycles (acquire + release), {n} per run")
    for col in ("backend", "pool size", "workload", "pool setup", "cycles/s", "address rows"):
        table.add_column(col, justify="right" if col not in ("backend", "workload") else "left")
    rows, _ = run(n)
    for r in rows:
        table.add_row(
            r.backend,
            f"{r.size:,}",
            r.workload,
            f"{r.setup * 1000:.1f} ms",
            f"{r.rate:,.0f}",
            r.rows,
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
