"""Accounting-Requests through the real RADIUS engine into AccountingRecorder and its sinks
(in memory, and the evidence database on SQLite)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.db import open_evidence_sink
from gateway.db.store import AccountingUpdate
from gateway.radius.accounting import (
    AccountingRecorder,
    AccountingSession,
    EvidenceAccountingSink,
    MemoryAccountingSink,
    SessionKey,
    TerminateCause,
)
from nea.imv.evidence import SessionStart
from radius import (
    AcctStatusType,
    AddressAttribute,
    AttributeType,
    Code,
    IntegerAttribute,
    Packet,
    RadiusClient,
    RadiusServer,
    TextAttribute,
    encode_request,
    verify_response,
)

T = AttributeType
SECRET = b"acct-secret"
NAS = ("192.0.2.10", 40000)
T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class Rig:
    def __init__(self, sink: object) -> None:
        self.engine = RadiusServer(
            [RadiusClient.from_prefix("192.0.2.0/24", SECRET, "switches")],
            lambda context: None,  # type: ignore[arg-type,return-value]
        )
        self.clock = Clock()
        self.recorder = AccountingRecorder(sink, clock=self.clock)  # type: ignore[arg-type]
        self.identifier = 0

    def send(
        self,
        status: int,
        session: str | None = "S1",
        source: tuple[str, int] = NAS,
        **extra: int | str | ipaddress.IPv4Address,
    ) -> None:
        attributes: list[object] = [IntegerAttribute(T.ACCT_STATUS_TYPE, status)]
        if session is not None:
            attributes.append(TextAttribute(T.ACCT_SESSION_ID, session))
        names = {
            "user": (T.USER_NAME, TextAttribute),
            "station": (T.CALLING_STATION_ID, TextAttribute),
            "nas_id": (T.NAS_IDENTIFIER, TextAttribute),
            "nas_ip": (T.NAS_IP_ADDRESS, AddressAttribute),
            "framed_ip": (T.FRAMED_IP_ADDRESS, AddressAttribute),
            "time": (T.ACCT_SESSION_TIME, IntegerAttribute),
            "delay": (T.ACCT_DELAY_TIME, IntegerAttribute),
            "in_octets": (T.ACCT_INPUT_OCTETS, IntegerAttribute),
            "out_octets": (T.ACCT_OUTPUT_OCTETS, IntegerAttribute),
            "in_giga": (T.ACCT_INPUT_GIGAWORDS, IntegerAttribute),
            "in_packets": (T.ACCT_INPUT_PACKETS, IntegerAttribute),
            "out_packets": (T.ACCT_OUTPUT_PACKETS, IntegerAttribute),
            "cause": (T.ACCT_TERMINATE_CAUSE, IntegerAttribute),
        }
        for name, value in extra.items():
            kind, cls = names[name]
            if cls is AddressAttribute:
                value = ipaddress.IPv4Address(value)
            attributes.append(cls(kind, value))
        self.identifier = (self.identifier + 1) % 256
        request = Packet(Code.ACCOUNTING_REQUEST, self.identifier, attributes=tuple(attributes))  # type: ignore[arg-type]
        wire = encode_request(request, SECRET)
        answer = self.engine.receive_datagram(wire, source, 0.0)
        assert answer is not None
        response = verify_response(answer, wire[4:20], SECRET)
        assert response.code == Code.ACCOUNTING_RESPONSE
        while (event := self.engine.next_event()) is not None:
            self.recorder.handle(event)


def test_start_interim_stop_make_one_session() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(
        AcctStatusType.START,
        user="bob",
        station="02-00-00-00-00-01",
        nas_id="sw1",
        framed_ip="198.51.100.7",
    )
    rig.clock.now = T0 + dt.timedelta(seconds=300)
    rig.send(
        AcctStatusType.INTERIM_UPDATE,
        time=300,
        in_octets=1000,
        out_octets=2000,
        in_giga=1,
        nas_id="sw1",
    )
    rig.clock.now = T0 + dt.timedelta(seconds=600)
    rig.send(
        AcctStatusType.STOP,
        time=600,
        in_octets=5000,
        out_octets=9000,
        in_packets=70,
        cause=TerminateCause.USER_REQUEST,
        nas_id="sw1",
    )
    assert [kind for kind, _ in sink.calls] == ["started", "updated", "stopped"]
    key = SessionKey("sw1", "S1")
    session = sink.sessions[key]
    assert session.user_name == "bob"  # from the Start, kept
    assert session.calling_station_id == "02-00-00-00-00-01"
    assert session.framed_ip == "198.51.100.7"
    assert session.nas_address == "192.0.2.10" and session.client == "switches"
    assert session.started_at == T0 and session.stopped_at == T0 + dt.timedelta(seconds=600)
    assert session.duration == 600
    assert session.input_octets == 5000 and session.output_octets == 9000
    assert session.input_packets == 70
    assert session.terminate_cause is TerminateCause.USER_REQUEST
    assert sink.calls[1][1].input_octets == 1000 + (1 << 32)  # Gigawords (RFC 2869 5.1)
    assert rig.recorder.sessions == {} and sink.open_sessions() == []


def test_delay_time_backdates_the_event() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(AcctStatusType.START, delay=30)
    (session,) = sink.sessions.values()
    assert session.started_at == T0 - dt.timedelta(seconds=30)
    assert session.key == SessionKey("192.0.2.10", "S1")  # no NAS-Identifier: source address


def test_nas_ip_names_the_nas_and_same_id_on_two_nases_are_two_sessions() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(AcctStatusType.START, nas_ip="192.0.2.10")
    rig.send(AcctStatusType.START, source=("192.0.2.11", 1), nas_ip="192.0.2.11")
    assert set(sink.sessions) == {SessionKey("192.0.2.10", "S1"), SessionKey("192.0.2.11", "S1")}


def test_stop_without_start_opens_and_closes_the_session() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(AcctStatusType.STOP, time=120, user="carol", cause=TerminateCause.IDLE_TIMEOUT)
    assert [kind for kind, _ in sink.calls] == ["started", "stopped"]
    session = sink.calls[-1][1]
    assert session.started_at == T0 - dt.timedelta(seconds=120)
    assert session.stopped_at == T0 and session.duration == 120
    assert session.terminate_cause is TerminateCause.IDLE_TIMEOUT


def test_repeated_start_and_late_records_after_stop_are_ignored() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(AcctStatusType.START)
    rig.send(AcctStatusType.START)
    rig.send(AcctStatusType.STOP, time=5)
    rig.send(AcctStatusType.STOP, time=5)  # resent with a new identifier
    rig.send(AcctStatusType.INTERIM_UPDATE, time=4)
    assert [kind for kind, _ in sink.calls] == ["started", "stopped"]
    rig.send(AcctStatusType.START)  # the NAS reuses the id: a new session
    assert [kind for kind, _ in sink.calls][-1] == "started"


def test_accounting_on_stops_every_open_session_of_that_nas_only() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(AcctStatusType.START, session="A", nas_id="sw1")
    rig.send(AcctStatusType.START, session="B", nas_id="sw1")
    rig.send(AcctStatusType.START, session="C", nas_id="sw2")
    rig.clock.now = T0 + dt.timedelta(seconds=60)
    rig.send(AcctStatusType.ACCOUNTING_ON, session=None, nas_id="sw1")
    stopped = {s.key.session_id: s for kind, s in sink.calls if kind == "stopped"}
    assert set(stopped) == {"A", "B"}
    assert all(s.terminate_cause is TerminateCause.NAS_REBOOT for s in stopped.values())
    assert all(s.stopped_at == T0 + dt.timedelta(seconds=60) for s in stopped.values())
    assert [k.session_id for k in rig.recorder.sessions] == ["C"]


def test_records_without_session_id_or_with_other_status_are_answered_not_recorded() -> None:
    sink = MemoryAccountingSink()
    rig = Rig(sink)
    rig.send(AcctStatusType.START, session=None)
    rig.send(15)  # Failed (RFC 2866 5.1), not a session record
    assert not sink.calls


def test_a_failing_sink_does_not_break_the_recorder() -> None:
    class Broken(MemoryAccountingSink):
        def session_started(self, session: AccountingSession) -> None:
            raise RuntimeError("disk full")

    sink = Broken()
    rig = Rig(sink)
    rig.send(AcctStatusType.START)
    rig.send(AcctStatusType.STOP, time=1)
    assert [kind for kind, _ in sink.calls] == ["stopped"]


def test_onto_the_evidence_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    evidence = open_evidence_sink(url, threaded=False)
    try:
        evidence.session_started(SessionStart(7, "bob", T0))
        memory = MemoryAccountingSink()
        connections = {"bob": 7}

        def connection_for(session: AccountingSession) -> int | None:
            return connections.get(session.user_name or "")

        rig = Rig(EvidenceAccountingSink(evidence, connection_for, also=[memory]))
        rig.send(AcctStatusType.START, user="bob", framed_ip="198.51.100.7", nas_id="sw1")
        rig.send(AcctStatusType.START, session="S2", user="mallory")  # no posture connection
        rig.clock.now = T0 + dt.timedelta(seconds=60)
        rig.send(AcctStatusType.INTERIM_UPDATE, time=60, in_octets=1000, nas_id="sw1")
        rig.clock.now = T0 + dt.timedelta(seconds=90)
        rig.send(
            AcctStatusType.STOP,
            time=90,
            cause=TerminateCause.LOST_CARRIER,
            in_octets=5,
            in_giga=2,
            out_octets=7000,
            in_packets=40,
            out_packets=50,
            nas_id="sw1",
        )
        rig.send(AcctStatusType.STOP, session="S2", time=90)
        assert len(memory.calls) == 5
    finally:
        evidence.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, connection_id, address, ended_at FROM nea_sessions")
        ).all()
        accounting = conn.execute(
            sa.text(
                "SELECT nas, acct_session_id, nas_address, session_id, connection_id, user_name,"
                " framed_ip, input_octets, output_octets, input_packets, output_packets,"
                " duration, terminate_cause, stopped_at FROM nea_accounting ORDER BY id"
            )
        ).all()
    engine.dispose()
    assert len(rows) == 1
    session_id, connection_id, address, ended_at = rows[0]
    assert connection_id == 7 and address == "198.51.100.7"
    assert ended_at is not None and str(ended_at).startswith("2026-11-28 12:01:30")
    bob, mallory = accounting
    assert bob[:7] == ("sw1", "S1", NAS[0], session_id, 7, "bob", "198.51.100.7")
    # RFC 2869 5.1: Acct-Input-Gigawords counts 2**32 overflows of Acct-Input-Octets
    assert bob[7:13] == (2 * 2**32 + 5, 7000, 40, 50, 90, int(TerminateCause.LOST_CARRIER))
    assert str(bob[13]).startswith("2026-11-28 12:01:30")
    assert mallory[:7] == (NAS[0], "S2", NAS[0], None, None, "mallory", None)
    assert mallory[11] == 90 and mallory[13] is not None


@pytest.mark.parametrize(
    "framed, station, expected",
    [
        ("198.51.100.9", "02-00-00-00-00-09", "198.51.100.9"),
        (None, "02-00-00-00-00-09", "02-00-00-00-00-09"),
    ],
)
def test_evidence_address_prefers_framed_ip(
    framed: str | None, station: str, expected: str
) -> None:
    bound: list[tuple[int, str]] = []

    class Writer:
        def accounting(self, acct: AccountingUpdate) -> None:
            pass

        def bind_address(self, connection_id: int, address: str) -> None:
            bound.append((connection_id, address))

        def session_ended(self, connection_id: int, at: dt.datetime) -> None:
            raise AssertionError("not stopped")

    rig = Rig(EvidenceAccountingSink(Writer(), lambda session: 3))
    extra: dict[str, str] = {"station": station}
    if framed:
        extra["framed_ip"] = framed
    rig.send(AcctStatusType.START, **extra)  # type: ignore[arg-type]
    rig.send(AcctStatusType.INTERIM_UPDATE, time=10)  # same address: not bound again
    assert bound == [(3, expected)]


def test_memory_sink_keeps_a_bounded_number_of_stopped_sessions() -> None:
    sink = MemoryAccountingSink(keep_stopped=2, keep_calls=3)
    rig = Rig(sink)
    rig.send(AcctStatusType.START, session="live")
    for name in ("a", "b", "c"):
        rig.send(AcctStatusType.STOP, session=name, time=1)
    assert {k.session_id for k in sink.sessions} == {"live", "b", "c"}
    assert len(sink.calls) == 3 and sink.calls[-1][1].key.session_id == "c"
    assert [s.key.session_id for s in sink.open_sessions()] == ["live"]
