"""The server engine driven by a scripted NAS and a tiny fake EAP server, fake clock."""

from __future__ import annotations

import itertools
import os
from collections.abc import ItemsView, Iterator, ValuesView

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radius import (
    AccessAccepted,
    AccessRejected,
    AccountingRecord,
    AcctStatusType,
    AttributeType,
    AuthorizationPolicy,
    Code,
    Conversation,
    IntegerAttribute,
    MicrosoftAttribute,
    Packet,
    PacketDropped,
    RadiusClient,
    RadiusServer,
    RequestContext,
    StringAttribute,
    TaggedIntegerAttribute,
    TaggedStringAttribute,
    TextAttribute,
    VendorSpecific,
    Verdict,
    VlanAssignment,
    decrypt_mppe_key,
    eap_message_attributes,
    encode_request,
    verify_response,
)

T = AttributeType
SECRET = b"s3cret-shared"
NAS = ("192.0.2.10", 40000)
MSK = bytes(range(64))


class FakeEapServer:
    """Pass-through EAP server: Identity Response in, one challenge of type 4, then done.

    The right answer is the type-data b"right"; ``big`` makes the challenge 600 octets."""

    def __init__(self, big: bool = False) -> None:
        self.ident = 0
        self.received: list[bytes] = []
        self.succeeded = False
        self.failed = False
        self.failure_reason: str | None = None
        self.big = big
        self.verdict: Verdict | None = None

    @property
    def msk(self) -> bytes | None:
        return MSK if self.succeeded else None

    def start(self) -> bytes:
        self.ident = 1
        return bytes([1, 1, 0, 5, 1])

    def receive(self, packet: bytes) -> bytes | None:
        self.received.append(packet)
        if packet[0] != 2:
            return None
        if packet[4] == 1:  # Identity Response
            self.ident = (packet[1] + 1) % 256
            data = bytes(595) if self.big else b"\x10" + bytes(16)
            return bytes([1, self.ident]) + (5 + len(data)).to_bytes(2, "big") + b"\x04" + data
        if packet[1] != self.ident:
            return None
        if packet[5:] == b"right":
            self.succeeded = True
            return bytes([3, self.ident, 0, 4])
        self.failed = True
        self.failure_reason = "wrong answer"
        return bytes([4, self.ident, 0, 4])


class Nas:
    def __init__(self, server: RadiusServer, secret: bytes = SECRET, source=NAS) -> None:
        self.server = server
        self.secret = secret
        self.source = source
        self.ids = itertools.count()
        self.state: bytes | None = None
        self.last_request: bytes = b""

    def request(self, eap: bytes | None, *extra, now: float = 0.0, raw: bytes | None = None):
        attributes = [TextAttribute(T.USER_NAME, "bob")]
        if eap is not None:
            attributes += (
                eap_message_attributes(eap) if eap else [StringAttribute(T.EAP_MESSAGE, b"")]
            )
        if self.state is not None:
            attributes.append(StringAttribute(T.STATE, self.state))
        attributes += extra
        packet = Packet(
            Code.ACCESS_REQUEST, next(self.ids) % 256, os.urandom(16), tuple(attributes)
        )
        self.last_request = raw or encode_request(packet, self.secret)
        out = self.server.receive_datagram(self.last_request, self.source, now)
        if out is None:
            return None
        answer = verify_response(
            out, self.last_request[4:20], self.secret, require_message_authenticator=True
        )
        assert answer.attributes[0].type == T.MESSAGE_AUTHENTICATOR  # Blast-RADIUS: first
        self.state = answer.string(T.STATE)
        return answer


def identity(ident: int = 7) -> bytes:
    return bytes([2, ident, 0, 8, 1]) + b"bob"


def response(server_eap: bytes, data: bytes) -> bytes:
    return bytes([2, server_eap[1]]) + (5 + len(data)).to_bytes(2, "big") + b"\x04" + data


def make_server(*, policy=None, fakes=None, big=False, **kw) -> RadiusServer:
    fakes = [] if fakes is None else fakes

    def factory(context: RequestContext) -> FakeEapServer:
        fake = FakeEapServer(big)
        fakes.append(fake)
        return fake

    clients = [
        RadiusClient.from_prefix("192.0.2.0/24", SECRET, "lab"),
        RadiusClient.from_prefix("192.0.2.99", b"other-secret", "special"),
    ]
    return RadiusServer(clients, factory, policy=policy, **kw)


def events(server: RadiusServer) -> list[object]:
    out = []
    while (event := server.next_event()) is not None:
        out.append(event)
    return out


def test_full_conversation_accept_with_keys_and_vlan() -> None:
    policy = AuthorizationPolicy(
        session_timeout=3600, allow=VlanAssignment("10", "allow-all"), isolate=None
    )
    server = make_server(policy=policy)
    nas = Nas(server)
    challenge = nas.request(identity())
    assert challenge.code == Code.ACCESS_CHALLENGE
    first_state = nas.state
    assert first_state is not None and len(first_state) == 16
    eap = challenge.eap_message()
    assert eap is not None and eap[0] == 1 and eap[1] == 8
    accept = nas.request(response(eap, b"right"))
    assert accept.code == Code.ACCESS_ACCEPT
    assert accept.eap_message() == bytes([3, 8, 0, 4])
    assert accept.integer(T.SESSION_TIMEOUT) == 3600
    assert accept.integer(T.TERMINATION_ACTION) == 1
    assert accept.get(T.TUNNEL_TYPE) == TaggedIntegerAttribute(T.TUNNEL_TYPE, 0, 13)
    assert accept.get(T.TUNNEL_MEDIUM_TYPE) == TaggedIntegerAttribute(T.TUNNEL_MEDIUM_TYPE, 0, 6)
    assert accept.get(T.TUNNEL_PRIVATE_GROUP_ID) == TaggedStringAttribute(
        T.TUNNEL_PRIVATE_GROUP_ID, None, b"10"
    )
    assert accept.text(T.FILTER_ID) == "allow-all"
    keys = {}
    salts = set()
    for vsa in accept.get_all(T.VENDOR_SPECIFIC):
        assert isinstance(vsa, VendorSpecific) and vsa.vendor_id == 311
        for sub in vsa.attributes:
            salts.add(sub.value[:2])
            keys[sub.vendor_type] = decrypt_mppe_key(sub.value, SECRET, nas.last_request[4:20])
    assert keys[MicrosoftAttribute.MS_MPPE_RECV_KEY] == MSK[:32]
    assert keys[MicrosoftAttribute.MS_MPPE_SEND_KEY] == MSK[32:]
    assert len(salts) == 2 and all(s[0] & 0x80 for s in salts)
    (accepted,) = [e for e in events(server) if isinstance(e, AccessAccepted)]
    assert accepted.vlan == "10" and accepted.has_keys and accepted.client == "lab"
    assert server.conversations == 0


def test_wrong_answer_is_rejected_with_eap_failure_and_reply_message() -> None:
    server = make_server()
    nas = Nas(server)
    challenge = nas.request(identity())
    reject = nas.request(response(challenge.eap_message(), b"wrong"))
    assert reject.code == Code.ACCESS_REJECT
    assert reject.eap_message()[0] == 4
    assert reject.text(T.REPLY_MESSAGE)
    assert reject.get(T.VENDOR_SPECIFIC) is None
    (rejected,) = [e for e in events(server) if isinstance(e, AccessRejected)]
    assert rejected.reason == "wrong answer"


def test_large_eap_request_is_split_into_eap_message_attributes() -> None:
    server = make_server(big=True)
    nas = Nas(server)
    challenge = nas.request(identity())
    parts = challenge.get_all(T.EAP_MESSAGE)
    assert [len(p.value) for p in parts] == [253, 253, 94]
    assert len(challenge.eap_message()) == 600


def test_unknown_client_is_dropped_with_event() -> None:
    server = make_server()
    nas = Nas(server, source=("198.51.100.1", 1812))
    assert nas.request(identity()) is None
    (dropped,) = events(server)
    assert isinstance(dropped, PacketDropped) and "unknown client" in dropped.reason


def test_wrong_secret_is_dropped() -> None:
    server = make_server()
    assert Nas(server, secret=b"wrong").request(identity()) is None
    (dropped,) = events(server)
    assert isinstance(dropped, PacketDropped) and "Message-Authenticator" in dropped.reason


def test_most_specific_client_prefix_wins() -> None:
    server = make_server()
    assert Nas(server, source=("192.0.2.99", 1)).request(identity()) is None
    assert Nas(server, secret=b"other-secret", source=("192.0.2.99", 1)).request(identity())
    assert server.client_for("::ffff:192.0.2.99").name == "special"


def test_access_request_without_message_authenticator_is_dropped() -> None:
    server = make_server()
    raw = Packet(Code.ACCESS_REQUEST, 1, os.urandom(16), (TextAttribute(T.USER_NAME, "x"),))
    assert server.receive_datagram(raw.encode(), NAS, 0.0) is None
    (dropped,) = events(server)
    assert "without Message-Authenticator" in dropped.reason


def test_duplicate_request_gets_the_cached_answer_without_reprocessing() -> None:
    fakes: list[FakeEapServer] = []
    server = make_server(fakes=fakes)
    nas = Nas(server)
    challenge = nas.request(identity())
    raw = encode_request(
        Packet(
            Code.ACCESS_REQUEST,
            200,
            os.urandom(16),
            (
                *eap_message_attributes(response(challenge.eap_message(), b"right")),
                StringAttribute(T.STATE, nas.state),
            ),
        ),
        SECRET,
    )
    first = server.receive_datagram(raw, NAS, 1.0)
    again = server.receive_datagram(raw, NAS, 2.0)
    assert first is not None and first == again
    assert len(fakes[0].received) == 2  # identity + one answer, the duplicate not re-run
    # Once the cache entry expired the same bytes are a new request whose State is gone.
    late = server.receive_datagram(raw, NAS, 100.0)
    assert late is not None and late[0] == Code.ACCESS_REJECT


def test_unknown_state_is_rejected() -> None:
    server = make_server()
    nas = Nas(server)
    nas.state = b"no-such-state-xx"
    answer = nas.request(identity())
    assert answer.code == Code.ACCESS_REJECT
    assert answer.eap_message() == bytes([4, 7, 0, 4])


def test_state_from_another_client_is_rejected() -> None:
    server = make_server()
    nas = Nas(server)
    challenge = nas.request(identity())
    thief = Nas(server, secret=b"other-secret", source=("192.0.2.99", 5))
    thief.state = nas.state
    assert thief.request(identity(9)).code == Code.ACCESS_REJECT
    # The owner's conversation is untouched and completes.
    assert server.conversations == 1
    assert nas.request(response(challenge.eap_message(), b"right")).code == Code.ACCESS_ACCEPT


def test_conversation_times_out() -> None:
    server = make_server(conversation_timeout=30.0)
    nas = Nas(server)
    challenge = nas.request(identity(), now=0.0)
    assert server.get_timer() is not None
    server.handle_timer(31.0)
    assert server.conversations == 0
    late = nas.request(response(challenge.eap_message(), b"right"), now=31.0)
    assert late.code == Code.ACCESS_REJECT


def test_eap_start_gets_identity_request() -> None:
    server = make_server()
    nas = Nas(server)
    challenge = nas.request(b"")
    assert challenge.code == Code.ACCESS_CHALLENGE
    assert challenge.eap_message() == bytes([1, 1, 0, 5, 1])


def test_no_eap_message_is_rejected() -> None:
    server = make_server()
    answer = Nas(server).request(None)
    assert answer.code == Code.ACCESS_REJECT
    assert answer.eap_message() is None


def test_proxy_state_is_copied_in_order() -> None:
    server = make_server()
    a = StringAttribute(T.PROXY_STATE, b"one")
    b = StringAttribute(T.PROXY_STATE, b"two")
    answer = Nas(server).request(identity(), a, b)
    assert answer.get_all(T.PROXY_STATE) == (a, b)


def _verdict(value: Verdict | None):
    def source(conversation: Conversation) -> Verdict | None:
        return value

    return source


@pytest.mark.parametrize(
    ("verdict", "isolate", "code", "vlan", "filter_id"),
    [
        (None, None, Code.ACCESS_ACCEPT, "10", None),
        (Verdict.ALLOW, None, Code.ACCESS_ACCEPT, "10", None),
        (
            Verdict.ISOLATE,
            VlanAssignment("99", "quarantine"),
            Code.ACCESS_ACCEPT,
            "99",
            "quarantine",
        ),
        (Verdict.ISOLATE, None, Code.ACCESS_REJECT, None, None),
        (Verdict.NO_ACCESS, VlanAssignment("99"), Code.ACCESS_REJECT, None, None),
    ],
)
def test_verdict_selects_vlan(verdict, isolate, code, vlan, filter_id) -> None:
    policy = AuthorizationPolicy(allow=VlanAssignment("10"), isolate=isolate)
    server = make_server(policy=policy, verdict=_verdict(verdict))
    nas = Nas(server)
    challenge = nas.request(identity())
    answer = nas.request(response(challenge.eap_message(), b"right"))
    assert answer.code == code
    group = answer.get(T.TUNNEL_PRIVATE_GROUP_ID)
    assert (group.value.decode() if group else None) == vlan
    assert answer.text(T.FILTER_ID) == filter_id
    if code == Code.ACCESS_REJECT:
        assert answer.eap_message()[0] == 4  # EAP-Failure, never EAP-Success
        assert answer.get(T.VENDOR_SPECIFIC) is None
        (rejected,) = [e for e in events(server) if isinstance(e, AccessRejected)]
        assert rejected.verdict == verdict


def test_default_verdict_reads_the_eap_server_attribute() -> None:
    fakes: list[FakeEapServer] = []
    policy = AuthorizationPolicy(allow=VlanAssignment("10"), isolate=VlanAssignment("99"))
    server = make_server(policy=policy, fakes=fakes)
    nas = Nas(server)
    challenge = nas.request(identity())
    fakes[0].verdict = Verdict.ISOLATE
    answer = nas.request(response(challenge.eap_message(), b"right"))
    assert answer.get(T.TUNNEL_PRIVATE_GROUP_ID).value == b"99"


def _accounting(status: int, session: str) -> bytes:
    packet = Packet(
        Code.ACCOUNTING_REQUEST,
        5,
        attributes=(
            IntegerAttribute(T.ACCT_STATUS_TYPE, status),
            TextAttribute(T.ACCT_SESSION_ID, session),
            TextAttribute(T.USER_NAME, "bob"),
            IntegerAttribute(T.ACCT_SESSION_TIME, 42),
        ),
    )
    return encode_request(packet, SECRET)


def test_accounting_start_and_stop_become_events() -> None:
    server = make_server()
    for status in (AcctStatusType.START, AcctStatusType.STOP):
        raw = _accounting(status, "abc")
        out = server.receive_datagram(raw, NAS, 0.0)
        answer = verify_response(out, raw[4:20], SECRET)
        assert answer.code == Code.ACCOUNTING_RESPONSE
    records = [e for e in events(server) if isinstance(e, AccountingRecord)]
    assert [r.status for r in records] == [AcctStatusType.START, AcctStatusType.STOP]
    assert records[1].session_id == "abc" and records[1].session_time == 42


def test_accounting_with_bad_authenticator_is_dropped() -> None:
    server = make_server()
    raw = bytearray(_accounting(AcctStatusType.START, "abc"))
    raw[5] ^= 1
    assert server.receive_datagram(bytes(raw), NAS, 0.0) is None
    assert isinstance(events(server)[0], PacketDropped)


def test_status_server_is_answered() -> None:
    server = make_server()
    raw = encode_request(Packet(Code.STATUS_SERVER, 9, os.urandom(16)), SECRET)
    answer = verify_response(server.receive_datagram(raw, NAS, 0.0), raw[4:20], SECRET)
    assert answer.code == Code.ACCESS_ACCEPT


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 255))
def test_garbage_from_a_known_client_never_crashes(body: bytes, code: int) -> None:
    server = make_server()
    header = bytes([code, 1]) + (20 + len(body)).to_bytes(2, "big") + os.urandom(16)
    assert server.receive_datagram(header + body, NAS, 0.0) is None or code in (1, 4, 12)
    for event in events(server):
        assert isinstance(event, (PacketDropped, AccessRejected, AccountingRecord))


def test_eap_server_exceptions_end_only_that_conversation() -> None:
    class Broken(FakeEapServer):
        def receive(self, packet: bytes) -> bytes | None:
            raise RuntimeError("engine bug")

    def broken_factory(context: RequestContext) -> FakeEapServer:
        return Broken()

    def failing_factory(context: RequestContext) -> FakeEapServer:
        raise OSError("cert file missing")

    for factory in (broken_factory, failing_factory):
        server = RadiusServer([RadiusClient.from_prefix("192.0.2.0/24", SECRET)], factory)
        answer = Nas(server).request(identity())
        assert answer.code == Code.ACCESS_REJECT
        assert answer.eap_message() == bytes([4, 7, 0, 4])
        assert server.conversations == 0


class _CountingDict(dict[bytes, Conversation]):
    """The conversation table, counting whole-table walks."""

    walks = 0

    def values(self) -> ValuesView[Conversation]:  # type: ignore[override]
        self.walks += 1
        return super().values()

    def items(self) -> ItemsView[bytes, Conversation]:  # type: ignore[override]
        self.walks += 1
        return super().items()

    def __iter__(self) -> Iterator[bytes]:
        self.walks += 1
        return super().__iter__()


def test_many_conversations_expire_on_time() -> None:
    """Thousands of concurrent conversations, some of them stepped on later (new State) or
    re-sent (same State kept): each one ends exactly at last activity + timeout."""
    timeout = 30.0
    server = make_server(conversation_timeout=timeout, duplicate_lifetime=0.5)
    count = 2000
    nases = [Nas(server, source=("192.0.2.10", 20000 + i)) for i in range(count)]
    last_seen: dict[int, float] = {}
    challenges = {}
    for i, nas in enumerate(nases):
        now = i * 0.01  # 0 .. 20 s
        challenges[i] = nas.request(identity(), now=now)
        last_seen[i] = now
    for i in range(0, count, 3):  # a new round: the conversation moves to a new State
        now = 20.0 + i * 0.001
        challenges[i] = nas_round = nases[i].request(identity(9), now=now)
        assert nas_round.code == Code.ACCESS_CHALLENGE
        last_seen[i] = now
    for i in range(1, count, 7):  # discarded Response: same State kept, clock restarted
        now = 22.0 + i * 0.001
        bad = bytes([2, 200, 0, 6, 4, 0])  # wrong identifier: the EAP server drops it
        assert nases[i].request(bad, now=now) is None
        last_seen[i] = now
    assert server.conversations == count
    server.handle_timer(25.0)  # the duplicate cache empties; no conversation is due yet
    assert server.conversations == count
    while last_seen:
        expected = min(last_seen.values()) + timeout
        assert server.get_timer() == expected
        server.handle_timer(expected - 1e-6)
        assert server.conversations == len(last_seen)
        server.handle_timer(expected)
        for i in [i for i, t in last_seen.items() if t + timeout <= expected]:
            del last_seen[i]
        assert server.conversations == len(last_seen)
    assert server.get_timer() is None
    # An expired State is refused; a conversation that is still live would have completed.
    late = nases[5].request(response(challenges[5].eap_message(), b"right"), now=100.0)
    assert late.code == Code.ACCESS_REJECT


def test_timer_does_not_walk_every_conversation() -> None:
    server = make_server(conversation_timeout=30.0, duplicate_lifetime=0.5)
    nases = [Nas(server, source=("192.0.2.10", 20000 + i)) for i in range(500)]
    for i, nas in enumerate(nases):
        nas.request(identity(), now=i * 0.001)
    counting = _CountingDict(server._conversations)
    server._conversations = counting
    for step in range(100):
        now = 1.0 + step * 0.01
        assert server.get_timer() is not None
        server.handle_timer(now)
        nases[step].request(identity(9), now=now)  # a new round for one conversation
    assert server.conversations == 500
    assert counting.walks == 0


def test_superseded_deadlines_do_not_pile_up() -> None:
    server = make_server(conversation_timeout=30.0)
    nas = Nas(server)
    nas.request(identity(), now=0.0)
    now = 0.0
    for step in range(1000):  # one long conversation: a new State every round
        now = step * 0.01
        nas.request(identity(9), now=now)
    assert server.conversations == 1
    assert len(server._deadlines) <= 2 + 64  # compacted, not one entry per round
    server.handle_timer(now + 10.0)  # the duplicate cache empties
    assert server.get_timer() == now + 30.0
