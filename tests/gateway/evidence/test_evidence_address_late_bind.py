"""A bind_address that arrives after the connection's session ended still lands on that
session: IKEv2 runs PT-EAP inside IKE_AUTH, so the posture session is over before the
daemon knows the virtual IP it hands out with the IKE_SA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import EvidenceStore, SqlEvidenceSink
from gateway.db.models import SESSIONS_TABLE
from nea.imv.evidence import SessionStart

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvidenceStore]:
    s = EvidenceStore(f"sqlite:///{tmp_path / 'evidence.db'}")
    yield s
    s.close()


def _rows(store: EvidenceStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(SESSIONS_TABLE).order_by(SESSIONS_TABLE.c.id)))


def test_vip_bound_after_the_session_ended_reaches_that_session(store: EvidenceStore) -> None:
    # the IKEv2 order: start, (decision), end inside IKE_AUTH, then the IKE_SA is up
    store.session_started(SessionStart(7, "carol@corp", T0))
    store.session_ended(7, T0 + M)
    store.bind_address(7, "10.3.0.1")
    (row,) = _rows(store)
    assert row.address == "10.3.0.1"
    assert row.ended_at is not None


def test_late_bind_goes_to_the_latest_session_of_the_connection(store: EvidenceStore) -> None:
    store.session_started(SessionStart(8, "d@corp", T0))
    store.session_started(SessionStart(8, "d@corp", T0 + M, retry=True))
    store.session_ended(8, T0 + 2 * M)
    store.session_started(SessionStart(9, "e@corp", T0 + 2 * M))
    store.session_ended(9, T0 + 3 * M)
    store.bind_address(8, "10.3.0.8")
    first, second, other = _rows(store)
    assert (first.address, second.address, other.address) == (None, "10.3.0.8", None)
    store.bind_address(8, "10.3.0.9")  # a later bind still wins
    assert _rows(store)[1].address == "10.3.0.9"


def test_late_bind_through_the_threaded_sink(tmp_path: Path) -> None:
    sink = SqlEvidenceSink(EvidenceStore(f"sqlite:///{tmp_path / 'e.db'}"))
    try:
        sink.session_started(SessionStart(3, "f@corp", T0))
        sink.session_ended(3, T0 + M)
        sink.bind_address(3, "10.3.0.3")
        assert sink.flush(10)
        (row,) = _rows(sink.store)
        assert row.address == "10.3.0.3"
    finally:
        sink.close()


def test_ended_connections_remembered_are_bounded(store: EvidenceStore) -> None:
    store.ended_cache_size = 4
    for cid in range(1, 11):
        store.session_started(SessionStart(cid, f"u{cid}@corp", T0))
        store.session_ended(cid, T0 + M)
    store.bind_address(1, "10.3.0.1")  # forgotten: too long ago
    store.bind_address(10, "10.3.0.10")
    rows = _rows(store)
    assert rows[0].address is None and rows[9].address == "10.3.0.10"
    assert len(store._ended_sessions) == 4


def test_a_new_run_reusing_the_connection_id_keeps_the_old_address(
    store: EvidenceStore,
) -> None:
    # a bind followed by a start on a reused connection id (another gateway run writing
    # through the same store) belongs to the new session, not to the ended one
    store.bind_address(1, "192.0.2.10")
    store.session_started(SessionStart(1, "a@corp", T0))
    store.session_ended(1, T0 + M)
    store.bind_address(1, "192.0.2.11")
    store.session_started(SessionStart(1, "a@corp", T0 + 60 * M))
    first, second = _rows(store)
    assert (first.address, second.address) == ("192.0.2.10", "192.0.2.11")


def test_late_bind_rolled_back_with_its_batch(store: EvidenceStore) -> None:
    from gateway.db.store import AddressBound, SessionEnded

    store.session_started(SessionStart(4, "g@corp", T0))

    class Boom(Exception):
        pass

    original = store._address

    def failing(conn: Any, bound: AddressBound) -> None:
        original(conn, bound)
        raise Boom

    store._address = failing  # type: ignore[method-assign]
    failed = store.apply([SessionEnded(4, T0 + M), AddressBound(4, "10.3.0.4")])
    store._address = original  # type: ignore[method-assign]
    assert failed == 1  # the end is written alone, the bind refused
    (row,) = _rows(store)
    assert row.ended_at is not None and row.address is None
    store.bind_address(4, "10.3.0.4")
    assert _rows(store)[0].address == "10.3.0.4"
