"""``[pools.NAME] database = URL``: virtual IPs and attributes from an attr-sql style pool
(SQLite here) through the daemon composition, without blocking the reactor: the engine holds
the IKE_AUTH response until the pool's worker answers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer

from gateway.daemon import load_config
from gateway.daemon.config import ConfigError
from gateway.pools import ConfigAttributeType, SqlPools
from ike.config import AddressPending
from ike.payloads import ConfigPayload
from ike.sa import IkeSaClosed, IkeSaEstablished
from tests.gateway.daemon.daemon_rig import PSK_CONFIG, Rig, psk_client

SQL_DNS = "198.51.100.53"


class HeldRunner:
    """Runs pool work only when the test says so (a worker thread that takes its time)."""

    def __init__(self) -> None:
        self.queue: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []

    def __call__(self, fn: Callable[[], Any]) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.queue.append((fn, d))
        return d

    def run_all(self) -> int:
        n = 0
        while self.queue:
            fn, d = self.queue.pop(0)
            try:
                d.callback(fn())
            except Exception as exc:
                d.errback(exc)
            n += 1
        return n


def _db(tmp_path: Path, first: str = "10.4.0.1", last: str = "10.4.0.14") -> str:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    p = SqlPools(url)
    p.add_pool("sqlrw", ipaddress.ip_address(first), ipaddress.ip_address(last), timeout=3600)
    p.add_attribute(
        ConfigAttributeType.INTERNAL_IP4_DNS, ipaddress.ip_address(SQL_DNS).packed, pool="sqlrw"
    )
    p.close()
    return url


def _config(tmp_path: Path, url: str, extra: str = "") -> Path:
    text = PSK_CONFIG.replace('pools = ["rw"]', 'pools = ["sqlrw"]') + (
        f'\n[pools.sqlrw]\ndatabase = "{url}"\n{extra}'
    )
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


def _sql_rig(tmp_path: Path, url: str, runner: Any) -> Rig:
    from twisted.internet.task import Clock

    from gateway.daemon import Gateway
    from tests.gateway.daemon.daemon_rig import FakeUdp, RecordingDataplane

    path = _config(tmp_path, url)
    clock = Clock()
    dp = RecordingDataplane()
    gw = Gateway(load_config(path), clock, config_path=path, dataplane=dp, pool_runner=runner)
    transports = {}
    for port, proto in gw.udp.ports.items():
        t = FakeUdp()
        proto.transport = t  # type: ignore[assignment]
        transports[port] = t
    return Rig(gw, clock, dp, transports)


def _capture_cfg_replies(monkeypatch: pytest.MonkeyPatch) -> list[ConfigPayload]:
    """Every CFG_REPLY the responder builds (the client engine does not keep DNS)."""
    from ike.sa import IkeSa

    replies: list[ConfigPayload] = []
    original = IkeSa._assign_vips

    def spy(self: Any, peer: Any, cp: ConfigPayload) -> Any:
        out = original(self, peer, cp)
        assert isinstance(out, ConfigPayload)
        replies.append(out)
        return out

    monkeypatch.setattr(IkeSa, "_assign_vips", spy)
    return replies


def _dns(reply: ConfigPayload) -> list[str]:
    return [
        str(ipaddress.ip_address(a.value))
        for a in reply.attributes
        if a.attr_type == ConfigAttributeType.INTERNAL_IP4_DNS
    ]


def test_config_reads_database_pools(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "sqlite:///var/p.db", "crash_recovery = false\n"))
    body = config.pools["sqlrw"]
    assert body["database"] == f"sqlite:///{(tmp_path / 'var' / 'p.db').resolve()}"
    assert body["crash_recovery"] is False and body["lease_history"] is True


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('addrs = "10.9.0.0/24"\n', "pools.sqlrw.addrs"),
        ("crash_recovery = 3\n", "pools.sqlrw.crash_recovery"),
    ],
)
def test_config_refuses_mixed_or_bad_sql_pool(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, "sqlite:///p.db", extra))
    assert key in str(err.value)


def test_config_refuses_a_database_that_is_no_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pools\.sqlrw\.database"):
        load_config(_config(tmp_path, "pool.db"))


def test_vip_and_dns_from_sql_pool_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = _capture_cfg_replies(monkeypatch)
    url = _db(tmp_path)
    runner = HeldRunner()
    rig = _sql_rig(tmp_path, url, runner)
    client = psk_client()
    rig.connect(client)
    # IKE_SA_INIT answered; IKE_AUTH held: the pool's work is queued, nothing sent yet.
    assert not rig.events(IkeSaEstablished)
    assert runner.queue
    assert rig.gateway.list_sas()[0]["state"] == "CONNECTING"
    assert runner.run_all() >= 1
    rig.clock.advance(0)  # the answer resumes IKE_AUTH on the reactor
    rig.pump()
    (est,) = rig.events(IkeSaEstablished)
    assert [str(v) for v in est.virtual_ips] == ["10.4.0.1"]
    (sa,) = rig.gateway.list_sas()
    assert sa["remote_vips"] == ["10.4.0.1"] and sa["children"][0]["remote_ts"] == ["10.4.0.1/32"]
    # The CFG_REPLY carries the SQL pool's DNS attribute (the client asked for DNS).
    assert _dns(replies[-1]) == [SQL_DNS]
    # In the database: one online lease for the client's identity.
    p = SqlPools(url, crash_recovery=False)
    (st,) = [s for s in p.status() if s.name == "sqlrw"]
    assert st.online == 1
    # Reconnect (after terminate): the same address again, the lease offline in between.
    rig.gateway.terminate("rw")
    rig.pump()
    runner.run_all()
    assert [s.online for s in p.status() if s.name == "sqlrw"] == [0]
    rig.client_events.clear()
    rig.connect(client)
    runner.run_all()
    rig.clock.advance(0)
    rig.pump()
    (est2,) = rig.events(IkeSaEstablished)
    assert [str(v) for v in est2.virtual_ips] == ["10.4.0.1"]
    p.close()


def test_exhausted_sql_pool_fails_the_child_not_the_reactor(tmp_path: Path) -> None:
    url = _db(tmp_path, "10.4.0.1", "10.4.0.1")
    p = SqlPools(url, crash_recovery=False)
    assert p.acquire("sqlrw", "someone-else") is not None
    p.close()
    runner = HeldRunner()
    rig = _sql_rig(tmp_path, url, runner)
    rig.connect(psk_client())
    runner.run_all()
    rig.clock.advance(0)
    rig.pump()
    # RFC 7296, 3.15.4: INTERNAL_ADDRESS_FAILURE; the IKE_SA comes up without a CHILD_SA.
    (sa,) = rig.gateway.list_sas()
    assert sa["remote_vips"] == [] and sa["children"] == []
    assert not rig.events(IkeSaClosed)


def test_sql_pool_with_the_reactor_thread_pool(tmp_path: Path) -> None:
    """The default runner (deferToThreadPool) with a real reactor-like thread pool."""
    from twisted.python.threadpool import ThreadPool

    url = _db(tmp_path)
    pool = ThreadPool(1, 1, "test-sql-pool")
    pool.start()
    try:
        import threading

        done = threading.Event()
        results: list[Any] = []

        def runner(fn: Callable[[], Any]) -> defer.Deferred[Any]:
            d: defer.Deferred[Any] = defer.Deferred()

            def work() -> None:
                try:
                    results.append((d, fn(), None))
                except Exception as exc:
                    results.append((d, None, exc))
                done.set()

            pool.callInThread(work)
            return d

        rig = _sql_rig(tmp_path, url, runner)
        rig.connect(psk_client())
        assert done.wait(10)
        d, value, exc = results.pop()
        assert exc is None
        d.callback(value)
        rig.clock.advance(0)
        rig.pump()
        (est,) = rig.events(IkeSaEstablished)
        assert [str(v) for v in est.virtual_ips] == ["10.4.0.1"]
        rig.gateway._close_resources()
    finally:
        pool.stop()


@pytest.mark.parametrize("recovery", [True, False])
def test_crash_recovery_on_open(tmp_path: Path, recovery: bool) -> None:
    """attr-sql's crash_recovery: leases left online by a previous run go offline when the
    daemon opens the database; off for a database several gateways share."""
    from gateway.daemon.config import sql_pools
    from gateway.daemon.sqlpool import SqlPoolBackend

    url = _db(tmp_path)
    p = SqlPools(url, crash_recovery=False)
    assert p.acquire("sqlrw", "left-over") is not None
    extra = "" if recovery else "crash_recovery = false\n"
    config = load_config(_config(tmp_path, url, extra))
    backend = SqlPoolBackend(sql_pools(config.pools))
    backend.open_all()
    assert [s.online for s in p.status() if s.name == "sqlrw"] == [0 if recovery else 1]
    backend.close()
    p.close()


def test_list_pools_shows_sql_pools(tmp_path: Path) -> None:
    url = _db(tmp_path)
    runner = HeldRunner()
    rig = _sql_rig(tmp_path, url, runner)
    d = rig.gateway.command("list-pools", {})
    got: list[Any] = []
    d.addCallback(got.append)
    runner.run_all()
    (pools,) = got
    assert [p["name"] for p in pools] == ["rw", "sqlrw"]
    pool = pools[1]
    assert pool["backend"] == "sql" and pool["size"] == 14 and pool["online"] == 0
    rig.gateway._close_resources()


def test_sql_work_runs_one_at_a_time_in_order(tmp_path: Path) -> None:
    """An INITIAL_CONTACT closes the old IKE_SA (release) just before the new one asks for
    an address (acquire): the release must reach the database first, so the identity gets
    its own address back."""
    from gateway.daemon.config import sql_pools
    from gateway.daemon.sqlpool import SqlPoolBackend

    url = _db(tmp_path)
    config = load_config(_config(tmp_path, url))
    runner = HeldRunner()
    backend = SqlPoolBackend(sql_pools(config.pools), runner=runner)
    first = ipaddress.ip_address("10.4.0.1")
    p = SqlPools(url, crash_recovery=False)
    assert p.acquire("sqlrw", "carol") == first
    backend.release("sqlrw", first, "carol")
    with pytest.raises(AddressPending):
        backend.lookup(b"new-sa", "sqlrw", "carol", None, 4)
    assert len(runner.queue) == 1  # the acquire waits for the release
    runner.run_all()
    answer = backend.lookup(b"new-sa", "sqlrw", "carol", None, 4)
    assert answer.address == first and answer.attributes
    backend.close()
    p.close()
