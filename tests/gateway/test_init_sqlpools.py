"""``nea-gateway init --sql-pools``: the pools ``rw`` and ``quarantine`` are created in the pool
database (SQLite in the directory, or ``--pool-database`` PostgreSQL shared by gateways), the
written configuration points the daemon at them (``crash_recovery = false`` when shared), an
existing pool and its leases survive a second gateway's init and ``--force``."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from gateway.daemon.compose import compose
from gateway.daemon.config import load_config
from gateway.init import main
from gateway.pools import SqlPools
from tests.harness.postgres import fresh_database, postgres_url

__all__ = ["postgres_url"]  # the fixture, re-exported for pytest


def _ranges(url: str) -> dict[str, tuple[tuple[str, ...], int]]:
    store = SqlPools(url, crash_recovery=False)
    try:
        return {s.name: (s.ranges, s.timeout) for s in store.status()}
    finally:
        store.close()


def test_sqlite_sql_pools(tmp_path: Path) -> None:
    d = tmp_path / "gw"
    args = [str(d), "--name", "gw.test", "--sql-pools", "--database", "none"]
    assert main([*args, "--pool", "10.7.0.0/28", "--isolate-pool", "10.77.0.0/29"]) == 0
    url = f"sqlite:///{(d / 'var/nea-pool.db').resolve()}"
    pools = _ranges(url)
    assert set(pools) == {"rw", "quarantine"}
    assert "10.7.0.1" in pools["rw"][0][0] and "10.7.0.14" in pools["rw"][0][0]
    assert "10.77.0.1" in pools["quarantine"][0][0] and "10.77.0.6" in pools["quarantine"][0][0]
    assert pools["rw"][1] == 86400
    text_ = (d / "gateway.toml").read_text()
    assert "addrs =" not in text_ and "crash_recovery" not in text_  # one gateway: recovery on
    config = load_config(d / "gateway.toml")
    assert set(config.pools) == {"rw", "quarantine"}
    assert all(p.get("database") == url for p in config.pools.values())
    compose(config)
    # a lease taken by the running gateway survives --force
    store = SqlPools(url, crash_recovery=False)
    leased = store.acquire("rw", "alice")
    store.close()
    assert leased == ip_address("10.7.0.1")
    assert main([*args, "--force", "--pool", "10.8.0.0/24"]) == 0
    assert "10.7.0.1" in _ranges(url)["rw"][0][0]  # the existing pool was kept, not replaced
    store = SqlPools(url, crash_recovery=False)
    (rw,) = [st for st in store.status() if st.name == "rw"]
    assert rw.online == 1  # alice's lease is still online: init ran no crash recovery
    store.close()


def test_sql_pools_need_the_pool_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "gw"), "--sql-pools", "--no-pool-db"]) == 2
    assert "needs the pool database" in capsys.readouterr().err


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "initpools_") as url:
        yield url


@pytest.mark.slow
def test_two_gateways_share_postgresql_pools(tmp_path: Path, pg_url: str) -> None:
    common = ["--sql-pools", "--pool-database", pg_url, "--database", "none"]
    assert main([str(tmp_path / "gw1"), "--name", "gw1.test", *common]) == 0
    store = SqlPools(pg_url, crash_recovery=False)
    first = store.acquire("rw", "alice")
    store.close()
    assert main([str(tmp_path / "gw2"), "--name", "gw2.test", *common]) == 0
    for gw in ("gw1", "gw2"):
        text_ = (tmp_path / gw / "gateway.toml").read_text()
        assert text_.count("crash_recovery = false") == 2
        config = load_config(tmp_path / gw / "gateway.toml")
        assert {p["database"] for p in config.pools.values()} == {pg_url}
    assert not (tmp_path / "gw1" / "var" / "nea-pool.db").exists()
    store = SqlPools(pg_url, crash_recovery=False)
    try:
        assert {s.name for s in store.status()} == {"rw", "quarantine"}
        (rw,) = [st for st in store.status() if st.name == "rw"]
        assert rw.online == 1  # the second gateway's init kept the first one's lease
        assert store.acquire("rw", "bob") != first
    finally:
        store.close()
