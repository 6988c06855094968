"""Reports name the user authenticated inside the tunnel: the accounting recorder and the
dynamic-authorization table learn the inner identity from the engine's Access-Accept, while
the keys the NAS knows (outer User-Name, Calling-Station-Id, Acct-Session-Id) stay as sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.db.store import AccountingUpdate
from gateway.radius.accounting import (
    AccountingRecorder,
    EvidenceAccountingSink,
    MemoryAccountingSink,
)
from gateway.radius.dynauth import Action, DynamicAuthorizer
from radius import (
    AccessAccepted,
    AccountingRecord,
    AcctStatusType,
    AttributeType,
    AuthorizationPolicy,
    Verdict,
    VlanAssignment,
)

NAS = ("192.0.2.10", 40000)
OUTER = "anonymous@corp"
T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _accepted(station: str | None, inner: str | None, source: tuple[str, int] = NAS) -> Any:
    return AccessAccepted(
        "switches", source, OUTER, station, Verdict.ALLOW, "10", None, None, True, inner
    )


def _start(station: str | None, session_id: str, source: tuple[str, int] = NAS) -> Any:
    return AccountingRecord(
        "switches",
        source,
        AcctStatusType.START,
        session_id,
        OUTER,
        station,
        None,
        None,
        None,
        None,
        (),
    )


class _Evidence:
    def __init__(self) -> None:
        self.rows: list[AccountingUpdate] = []

    def accounting(self, acct: AccountingUpdate) -> None:
        self.rows.append(acct)

    def bind_address(self, connection_id: int, address: str) -> None:
        pass

    def session_ended(self, connection_id: int, at: dt.datetime) -> None:
        pass


def test_accounting_sessions_carry_the_inner_identity_of_their_station() -> None:
    evidence = _Evidence()
    memory = MemoryAccountingSink()
    recorder = AccountingRecorder(
        EvidenceAccountingSink(evidence, lambda s: None, also=(memory,)), clock=lambda: T0
    )
    recorder.handle(_accepted("02-00-00-00-00-01", "alice"))
    recorder.handle(_accepted("02-00-00-00-00-02", "carol"))
    recorder.handle(_accepted("02-00-00-00-00-03", None))  # a bare method: no inner user
    for n in (1, 2, 3):
        recorder.handle(_start(f"02-00-00-00-00-0{n}", f"S{n}"))
    # the same station behind another NAS is another endpoint
    recorder.handle(_start("02-00-00-00-00-01", "S9", ("192.0.2.11", 40000)))
    sessions = {s.key.session_id: s for s in recorder.sessions.values()}
    assert {k: s.identity for k, s in sessions.items()} == {
        "S1": "alice",
        "S2": "carol",
        "S3": None,
        "S9": None,
    }
    assert all(s.user_name == OUTER for s in sessions.values())
    assert sessions["S3"].report_name == OUTER
    # the evidence row names the user; the NAS's keys are kept as they came
    rows = {r.acct_session_id: r for r in evidence.rows}
    assert (rows["S1"].user_name, rows["S2"].user_name, rows["S3"].user_name) == (
        "alice",
        "carol",
        OUTER,
    )
    assert rows["S1"].calling_station_id == "02-00-00-00-00-01"
    assert len(memory.sessions) == 4


def test_reauthentication_without_inner_identity_forgets_the_old_one() -> None:
    recorder = AccountingRecorder(MemoryAccountingSink(), clock=lambda: T0)
    recorder.handle(_accepted("02-00-00-00-00-01", "alice"))
    recorder.handle(_accepted("02-00-00-00-00-01", None))
    recorder.handle(_start("02-00-00-00-00-01", "S1"))
    (session,) = recorder.sessions.values()
    assert session.identity is None


def test_dynauth_live_sessions_report_the_inner_user_and_keep_the_nas_keys() -> None:
    policy = AuthorizationPolicy(allow=VlanAssignment("10"), isolate=VlanAssignment("99"))
    authorizer = DynamicAuthorizer(None, lambda host: None, policy)  # type: ignore[arg-type]
    a = authorizer.access_accepted(_accepted("02-00-00-00-00-01", "alice"))
    c = authorizer.access_accepted(_accepted("02-00-00-00-00-02", "carol"))
    assert a is not None and c is not None and a != c
    live = authorizer.sessions
    assert (live[a].identity, live[c].identity) == ("alice", "carol")
    assert live[a].user_name == live[c].user_name == OUTER
    assert authorizer.find(identity="carol") == [c]
    assert sorted(authorizer.find(user_name=OUTER), key=str) == sorted([a, c], key=str)
    attributes = authorizer.request_attributes(live[c], Action.DISCONNECT, None)
    texts = {getattr(x, "type", None): getattr(x, "value", None) for x in attributes}
    assert texts[AttributeType.USER_NAME] == OUTER
    assert texts[AttributeType.CALLING_STATION_ID] == "02-00-00-00-00-02"
    # without an inner identity the User-Name is who the session is reported as
    b = authorizer.access_accepted(_accepted("02-00-00-00-00-03", None))
    assert b is not None and authorizer.sessions[b].report_name == OUTER
