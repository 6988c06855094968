"""DynamicAuthorizer over real UDP on loopback against a NAS listener of the test's own.

The requests go through the real Twisted protocol (``DynamicAuthorizationProtocol``) and the
sans-I/O client engine; the protocol's transport writes to a real UDP socket and the test
feeds what comes back, with Twisted's ``Clock`` standing in for time so retransmission and
give-up happen without sleeping.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from gateway.radius.coa import DynamicAuthorizationProtocol
from gateway.radius.compose import build_server
from gateway.radius.config import parse_config
from gateway.radius.dynauth import (
    Action,
    DynamicAuthorizer,
    EndpointKey,
    Outcome,
    Result,
)
from ike.eap.methods.md5 import Md5PeerMethod
from ike.eap.peer import EapPeer
from radius import (
    AccessAccepted,
    AccountingRecord,
    AcctStatusType,
    AddressAttribute,
    AttributeType,
    AuthorizationPolicy,
    Code,
    DynamicAuthorizationClient,
    ErrorCause,
    IntegerAttribute,
    Packet,
    RemoteProtocolError,
    StringAttribute,
    TextAttribute,
    Verdict,
    VlanAssignment,
    eap_message_attributes,
    encode_request,
    encode_response,
    verify_request,
    verify_response,
)

T = AttributeType
SECRET = b"dynauth-secret"
HOST = "127.0.0.1"
STAMP = 1_800_000_000
POLICY = AuthorizationPolicy(
    None, VlanAssignment("10", "employees"), VlanAssignment("99", "quarantine")
)


class Nas:
    """Answers by Calling-Station-Id: ``behaviour[station][code]`` is "ack", "nak:<cause>",
    "silent" or "wrong-secret" (default "ack")."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.behaviour: dict[str, dict[Code, str]] = {}
        self.received: list[Packet] = []
        self.raw: list[bytes] = []
        self.handled = 0
        """Datagrams fully dealt with (answer already sent, or dropped)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                self._answer(data, addr)
            finally:
                self.handled += 1

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = verify_request(data, SECRET)
        except RemoteProtocolError:
            return
        self.received.append(request)
        self.raw.append(data)
        station = request.text(T.CALLING_STATION_ID) or ""
        what = self.behaviour.get(station, {}).get(request.code, "ack")
        if what == "silent":
            return
        ack, nak = (
            (Code.COA_ACK, Code.COA_NAK)
            if request.code == Code.COA_REQUEST
            else (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK)
        )
        secret = SECRET
        if what == "wrong-secret":
            answer, secret = Packet(ack, request.identifier), b"not-the-secret"
        elif what.startswith("nak:"):
            cause = IntegerAttribute(T.ERROR_CAUSE, int(what[4:]))
            answer = Packet(nak, request.identifier, attributes=(cause,))
        else:
            answer = Packet(ack, request.identifier)
        self.sock.sendto(encode_response(answer, request.authenticator, secret), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class UdpTransport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = 0

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)
        self.sent += 1


class Rig:
    """Our side: the DynamicAuthorizer on a real UDP socket, time from a fake clock."""

    def __init__(self, nas: Nas | int, *, fallback: bool = True) -> None:
        nas_port = nas if isinstance(nas, int) else nas.port
        self.test_nas = None if isinstance(nas, int) else nas
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.clock = Clock()
        self.protocol = DynamicAuthorizationProtocol(
            self.clock, DynamicAuthorizationClient(initial_timeout=1.0, max_transmissions=3)
        )
        self.transport = UdpTransport(self.sock)
        self.protocol.makeConnection(self.transport)  # type: ignore[arg-type]
        self.authorizer = DynamicAuthorizer(
            self.protocol,
            lambda host: SECRET if host == HOST else None,
            POLICY,
            port=nas_port,
            fallback_disconnect=fallback,
            event_timestamp=lambda: STAMP,
        )

    def accept(
        self,
        station: str = "02-00-00-00-00-01",
        verdict: Verdict = Verdict.ISOLATE,
        user: str = "bob",
        nas: str = HOST,
    ) -> EndpointKey:
        assignment = POLICY.isolate if verdict == Verdict.ISOLATE else POLICY.allow
        assert assignment is not None
        key = self.authorizer.access_accepted(
            AccessAccepted(
                "loopback",
                (nas, 50000),
                user,
                station,
                verdict,
                assignment.vlan,
                assignment.filter_id,
                None,
                True,
            )
        )
        assert key is not None
        return key

    def acct(
        self,
        status: AcctStatusType,
        station: str | None = "02-00-00-00-00-01",
        session: str | None = "0A1B",
        user: str | None = "bob",
    ) -> None:
        attributes: tuple[Any, ...] = (
            IntegerAttribute(T.ACCT_STATUS_TYPE, status),
            TextAttribute(T.NAS_IDENTIFIER, "sw1"),
            AddressAttribute(T.NAS_IP_ADDRESS, ipaddress.IPv4Address("192.0.2.10")),
        )
        self.authorizer.handle(
            AccountingRecord(
                "loopback",
                (HOST, 50001),
                status,
                session,
                user,
                station,
                None,
                None,
                None,
                None,
                attributes,
            )
        )

    def _settled(self) -> bool:
        """Nothing more will come back for what we sent: our own NAS has handled every
        datagram (its answer is then already in our socket buffer on loopback); another NAS
        gets the recv time-out as its time to answer."""
        return self.test_nas is None or self.test_nas.handled >= self.transport.sent

    def wait(self, deferred: Deferred[Result]) -> Result:
        """Feed answers until ``deferred`` fires; time moves on (fake clock: retransmission,
        give-up) only once no answer can still arrive, so a slow machine cannot cause
        retransmissions the test did not ask for."""
        results: list[Result] = []
        deferred.addCallback(results.append)
        for _ in range(500):
            if results:
                return results[0]
            own = self.test_nas is not None
            self.sock.settimeout(0.05 if own and self._settled() else 0.5)
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                if not self._settled():
                    continue
                try:  # an answer that landed between the checks
                    self.sock.settimeout(0)
                    data, addr = self.sock.recvfrom(4096)
                except BlockingIOError:
                    times = [c.time for c in self.clock.calls if c.active()]
                    if times:
                        self.clock.advance(max(0.0, min(times) - self.clock.seconds()))
                    continue
            self.protocol.datagramReceived(data, addr)
        raise AssertionError("no result")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def nas() -> Iterator[Nas]:
    listener = Nas()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def rig(nas: Nas) -> Iterator[Rig]:
    r = Rig(nas)
    try:
        yield r
    finally:
        r.close()


def test_isolate_to_allow_sends_coa_with_the_allow_vlan(
    rig: Rig, nas: Nas, caplog: pytest.LogCaptureFixture
) -> None:
    key = rig.accept(verdict=Verdict.ISOLATE)
    rig.acct(AcctStatusType.START)
    with caplog.at_level(logging.INFO, logger="gateway.radius.dynauth"):
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ALLOW))
    assert result == Result(key, Verdict.ALLOW, Action.COA, Outcome.ACK)
    (request,) = nas.received
    assert request.code == Code.COA_REQUEST
    assert request.text(T.USER_NAME) == "bob"
    assert request.text(T.ACCT_SESSION_ID) == "0A1B"
    assert request.text(T.CALLING_STATION_ID) == "02-00-00-00-00-01"
    assert request.text(T.NAS_IDENTIFIER) == "sw1"
    nas_ip = request.get(T.NAS_IP_ADDRESS)
    assert isinstance(nas_ip, AddressAttribute) and str(nas_ip.value) == "192.0.2.10"
    group = request.get(T.TUNNEL_PRIVATE_GROUP_ID)
    assert group is not None and group.value == b"10"  # type: ignore[union-attr]
    assert request.text(T.FILTER_ID) == "employees"
    assert request.integer(T.EVENT_TIMESTAMP) == STAMP
    session = rig.authorizer.sessions[key]
    assert session.verdict == Verdict.ALLOW
    assert session.assignment == VlanAssignment("10", "employees")
    assert "CoA-Request ACKed" in caplog.text


def test_no_access_sends_disconnect_and_forgets_the_session(rig: Rig, nas: Nas) -> None:
    key = rig.accept(verdict=Verdict.ALLOW)
    result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.NO_ACCESS))
    assert (result.action, result.outcome) == (Action.DISCONNECT, Outcome.ACK)
    (request,) = nas.received
    assert request.code == Code.DISCONNECT_REQUEST
    assert request.get(T.TUNNEL_PRIVATE_GROUP_ID) is None and request.get(T.FILTER_ID) is None
    assert request.get(T.ACCT_SESSION_ID) is None  # no accounting seen: not invented
    assert request.text(T.CALLING_STATION_ID) == "02-00-00-00-00-01"
    assert key not in rig.authorizer.sessions


def test_isolate_without_quarantine_vlan_disconnects(nas: Nas) -> None:
    rig = Rig(nas)
    rig.authorizer.policy = AuthorizationPolicy(None, VlanAssignment("10"), None)
    try:
        key = rig.accept(verdict=Verdict.ALLOW)
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ISOLATE))
    finally:
        rig.close()
    assert (result.action, result.outcome) == (Action.DISCONNECT, Outcome.ACK)
    assert [r.code for r in nas.received] == [Code.DISCONNECT_REQUEST]


def test_coa_nak_to_isolate_falls_back_to_disconnect(
    rig: Rig, nas: Nas, caplog: pytest.LogCaptureFixture
) -> None:
    nas.behaviour["02-00-00-00-00-01"] = {
        Code.COA_REQUEST: f"nak:{ErrorCause.UNSUPPORTED_ATTRIBUTE}",
    }
    key = rig.accept(verdict=Verdict.ALLOW)
    with caplog.at_level(logging.INFO, logger="gateway.radius.dynauth"):
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ISOLATE))
    assert (result.action, result.outcome) == (Action.COA, Outcome.NAK)
    assert result.error_cause == ErrorCause.UNSUPPORTED_ATTRIBUTE
    assert result.fallback is not None
    assert (result.fallback.action, result.fallback.outcome) == (Action.DISCONNECT, Outcome.ACK)
    assert [r.code for r in nas.received] == [Code.COA_REQUEST, Code.DISCONNECT_REQUEST]
    assert key not in rig.authorizer.sessions
    assert "NAKed by 127.0.0.1" in caplog.text and "401 UNSUPPORTED_ATTRIBUTE" in caplog.text


def test_coa_nak_to_allow_is_reported_not_escalated(rig: Rig, nas: Nas) -> None:
    nas.behaviour["02-00-00-00-00-01"] = {
        Code.COA_REQUEST: f"nak:{ErrorCause.RESOURCES_UNAVAILABLE}",
    }
    key = rig.accept(verdict=Verdict.ISOLATE)
    result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ALLOW))
    assert (result.outcome, result.error_cause, result.fallback) == (
        Outcome.NAK,
        ErrorCause.RESOURCES_UNAVAILABLE,
        None,
    )
    assert [r.code for r in nas.received] == [Code.COA_REQUEST]
    assert rig.authorizer.sessions[key].verdict == Verdict.ISOLATE  # unchanged


def test_nak_session_not_found_forgets_the_session(rig: Rig, nas: Nas) -> None:
    nas.behaviour["02-00-00-00-00-01"] = {
        Code.DISCONNECT_REQUEST: f"nak:{ErrorCause.SESSION_CONTEXT_NOT_FOUND}",
    }
    key = rig.accept(verdict=Verdict.ALLOW)
    result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.NO_ACCESS))
    assert (result.outcome, result.error_cause) == (
        Outcome.NAK,
        ErrorCause.SESSION_CONTEXT_NOT_FOUND,
    )
    assert key not in rig.authorizer.sessions


def test_timeout_retransmits_identically_then_gives_up(
    rig: Rig, nas: Nas, caplog: pytest.LogCaptureFixture
) -> None:
    nas.behaviour["02-00-00-00-00-01"] = {Code.COA_REQUEST: "silent"}
    key = rig.accept(verdict=Verdict.ISOLATE)
    with caplog.at_level(logging.INFO, logger="gateway.radius.dynauth"):
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ALLOW))
    assert (result.action, result.outcome) == (Action.COA, Outcome.TIMEOUT)
    assert len(nas.raw) == 3 and len(set(nas.raw)) == 1  # RFC 5080 2.2.1
    assert rig.clock.seconds() >= 1.0 + 2.0 + 4.0  # exponential back-off
    assert rig.authorizer.sessions[key].verdict == Verdict.ISOLATE
    assert "no answer" in caplog.text


def test_restricting_coa_timeout_then_disconnect_timeout(rig: Rig, nas: Nas) -> None:
    nas.behaviour["02-00-00-00-00-01"] = {
        Code.COA_REQUEST: "silent",
        Code.DISCONNECT_REQUEST: "silent",
    }
    key = rig.accept(verdict=Verdict.ALLOW)
    result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ISOLATE))
    assert result.outcome == Outcome.TIMEOUT
    assert result.fallback is not None and result.fallback.outcome == Outcome.TIMEOUT
    assert [r.code for r in nas.received] == [Code.COA_REQUEST] * 3 + [Code.DISCONNECT_REQUEST] * 3


def test_answer_with_the_wrong_secret_counts_as_no_answer(nas: Nas) -> None:
    rig = Rig(nas, fallback=False)
    nas.behaviour["02-00-00-00-00-01"] = {Code.COA_REQUEST: "wrong-secret"}
    try:
        key = rig.accept(verdict=Verdict.ALLOW)
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ISOLATE))
    finally:
        rig.close()
    assert (result.outcome, result.fallback) == (Outcome.TIMEOUT, None)
    assert len(nas.received) == 3


def test_nothing_sent_for_unchanged_unknown_or_secretless(rig: Rig, nas: Nas) -> None:
    key = rig.accept(verdict=Verdict.ISOLATE)
    assert rig.wait(rig.authorizer.verdict_changed(key, Verdict.ISOLATE)).outcome == (
        Outcome.UNCHANGED
    )
    other = EndpointKey(HOST, "02-00-00-00-00-99")
    assert rig.wait(rig.authorizer.verdict_changed(other, Verdict.NO_ACCESS)).outcome == (
        Outcome.UNKNOWN_SESSION
    )
    stranger = rig.accept(nas="192.0.2.77", verdict=Verdict.ALLOW)
    assert rig.wait(rig.authorizer.verdict_changed(stranger, Verdict.NO_ACCESS)).outcome == (
        Outcome.NO_SECRET
    )
    assert nas.received == []


def test_accounting_stop_and_accounting_on_end_live_sessions(rig: Rig) -> None:
    first = rig.accept(station="02-00-00-00-00-01")
    second = rig.accept(station="02-00-00-00-00-02", user="carol")
    rig.acct(AcctStatusType.START, station="02-00-00-00-00-02", session="S2", user="carol")
    assert rig.authorizer.sessions[second].acct_session_id == "S2"
    assert rig.authorizer.find(user_name="carol") == [second]
    rig.acct(AcctStatusType.STOP, station="02-00-00-00-00-02", session="S2", user="carol")
    assert set(rig.authorizer.sessions) == {first}
    rig.acct(AcctStatusType.ACCOUNTING_ON, station=None, session=None, user=None)
    assert rig.authorizer.sessions == {}


def test_reauthentication_keeps_accounting_identity(rig: Rig) -> None:
    key = rig.accept(verdict=Verdict.ISOLATE)
    rig.acct(AcctStatusType.START)
    again = rig.accept(verdict=Verdict.ALLOW)
    assert again == key
    session = rig.authorizer.sessions[key]
    assert (session.verdict, session.acct_session_id, session.nas_identifier) == (
        Verdict.ALLOW,
        "0A1B",
        "sw1",
    )


def test_station_falls_back_to_user_name(rig: Rig) -> None:
    key = rig.authorizer.access_accepted(
        AccessAccepted("loopback", (HOST, 1), "dave", None, None, "10", None, None, True)
    )
    assert key == EndpointKey(HOST, "dave")
    assert (
        rig.authorizer.access_accepted(
            AccessAccepted("loopback", (HOST, 1), None, None, None, None, None, None, True)
        )
        is None
    )


def test_sessions_learnt_from_the_engine_then_coa(nas: Nas, tmp_path: Path) -> None:
    """Real events: an EAP-MD5 authentication through RadiusServer (posture says isolate),
    an Accounting Start, then a re-assessment allows the endpoint: CoA to the allow VLAN
    naming the accounting session."""
    config = parse_config(
        {
            "radius": {"clients": [{"address": "127.0.0.1/32", "secret": SECRET.decode()}]},
            "eap": {"methods": ["md5"]},
            "users": {"bob": "hello"},
            "vlans": {
                "allow": "10",
                "allow_filter_id": "employees",
                "isolate": "99",
                "isolate_filter_id": "quarantine",
            },
        },
        tmp_path,
    )
    engine = build_server(config, verdict=lambda conversation: Verdict.ISOLATE)
    rig = Rig(nas)
    rig.authorizer.policy = config.policy

    def secret_for(host: str) -> bytes | None:
        client = engine.client_for(host)
        return client.secret if client is not None else None

    rig.authorizer.secret_for = secret_for
    source = (HOST, 41000)
    station = "02-00-00-00-00-07"

    def request(code: Code, attributes: list[Any], identifier: int) -> Packet:
        packet = Packet(code, identifier, os.urandom(16), tuple(attributes))
        wire = encode_request(packet, SECRET)
        answer = engine.receive_datagram(wire, source, float(identifier))
        assert answer is not None
        while (event := engine.next_event()) is not None:
            rig.authorizer.handle(event)
        return verify_response(answer, wire[4:20], SECRET)

    try:
        peer = EapPeer(b"bob", [(4, lambda: Md5PeerMethod("hello"))])
        eap = peer.receive(bytes([1, 0, 0, 5, 1]))
        state: bytes | None = None
        for identifier in range(10):
            assert eap is not None
            attributes: list[Any] = [
                TextAttribute(T.USER_NAME, "bob"),
                TextAttribute(T.CALLING_STATION_ID, station),
                *eap_message_attributes(eap),
            ]
            if state is not None:
                attributes.append(StringAttribute(T.STATE, state))
            answer = request(Code.ACCESS_REQUEST, attributes, identifier)
            if answer.code != Code.ACCESS_CHALLENGE:
                break
            state = answer.string(T.STATE)
            eap = peer.receive(answer.eap_message() or b"")
        assert answer.code == Code.ACCESS_ACCEPT
        key = EndpointKey(HOST, station)
        assert rig.authorizer.sessions[key].verdict == Verdict.ISOLATE
        assert rig.authorizer.sessions[key].assignment == VlanAssignment("99", "quarantine")
        acct = request(
            Code.ACCOUNTING_REQUEST,
            [
                IntegerAttribute(T.ACCT_STATUS_TYPE, AcctStatusType.START),
                TextAttribute(T.ACCT_SESSION_ID, "80000007"),
                TextAttribute(T.USER_NAME, "bob"),
                TextAttribute(T.CALLING_STATION_ID, station),
                TextAttribute(T.NAS_IDENTIFIER, "sw7"),
            ],
            20,
        )
        assert acct.code == Code.ACCOUNTING_RESPONSE
        result = rig.wait(rig.authorizer.verdict_changed(key, Verdict.ALLOW))
    finally:
        rig.close()
    assert (result.action, result.outcome) == (Action.COA, Outcome.ACK)
    (coa,) = nas.received
    assert coa.text(T.ACCT_SESSION_ID) == "80000007"
    assert coa.text(T.NAS_IDENTIFIER) == "sw7"
    assert coa.text(T.FILTER_ID) == "employees"
