"""The daemon's ``[radius]`` posture with the usual PEAP/TTLS deployment: every supplicant
sends the same anonymous outer identity (``anonymous@corp``) and authenticates as itself only
inside the tunnel.  Two such conversations at once must each get the verdict of their own
PT-EAP assessment (not each other's, not none), and reports (accounting, dynamic
authorization, the posture connection) must name the inner user while the NAS-facing keys
stay the outer User-Name and the Calling-Station-Id."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.daemon import Gateway, load_config
from gateway.daemon.radius import DaemonRadius, start_radius
from ike.eap.packet import EapRequest, EapType
from ike.eap.peer import EapPeer
from radius import (
    AcctStatusType,
    AttributeType,
    Code,
    IntegerAttribute,
    Packet,
    StringAttribute,
    TextAttribute,
    eap_message_attributes,
    encode_request,
    verify_response,
)
from radius.packet import decode_packet
from tests.ike.eap_tls.radius_loop import RadiusEapClient
from tests.nea.pb_tnc.pbtnc_fakes import command_collector

T = AttributeType
SECRET = "anonymous-outer-secret"
OUTER = b"anonymous@corp"
USERS = {"alice": "alice-pw", "carol": "carol-pw"}
_EAP_MESSAGE, _TUNNEL_GROUP = 79, 81


class Reactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.protocols: dict[int, Any] = {}

    def listenUDP(self, port: int, proto: Any, interface: str = "") -> Any:
        self.protocols[port] = proto
        return proto


def _gateway(
    tmp_path: Path, cert_factory: Any, nas: str, evidence_sink: Any = None
) -> tuple[Gateway, DaemonRadius, Any]:
    ca = cert_factory.ca("ca")
    server = cert_factory.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    secrets = "".join(
        f'[secrets.eap-{name}]\nid = "{name}"\nsecret = "{pw}"\n' for name, pw in USERS.items()
    )
    p = tmp_path / "gw.toml"
    p.write_text(
        f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = 10700
port_nat_t = 10701
[control]
socket = "ctl.sock"
[radius]
auth_port = 11812
acct_port = 11813
methods = ["ttls", "peap"]
inner_methods = ["mschapv2"]
certs = ["{server.chain_path}"]
posture = true
[[radius.clients]]
address = "{nas}/32"
secret = "{SECRET}"
[radius.vlans]
allow = "10"
isolate = "99"
[radius.dynauth]
port = 13799
timeout = 1.0
{secrets}
[secrets.private-radius]
file = "{server.key_path}"
[nea]
validators = ["test"]
database = false
"""
    )
    reactor = Reactor()
    gw = Gateway(load_config(p), reactor, evidence_sink=evidence_sink)
    front = start_radius(gw, reactor)
    assert isinstance(front, DaemonRadius)
    gw.radius = front
    return gw, front, ca


def _peer(ca: Any, method: str, user: str, command: str) -> EapPeer:
    """The project's supplicant: outer identity ``anonymous@corp``; inside TTLS/PEAP the
    user's MSCHAPv2 then PT-EAP with a collector reporting ``command``."""
    from ike.eap.methods.mschapv2 import MsChapV2PeerMethod
    from ike.eap_tls.tls import TlsPeerConfig
    from nea.pb_tnc import PbTncConfig, Tncc
    from nea.pt_eap import PtEapPeer

    def pt_eap() -> Any:
        return PtEapPeer(Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap()))

    inner = (
        (EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(user.encode(), USERS[user])),
        (EapType.PT_EAP, pt_eap),
    )
    tls = TlsPeerConfig(ca_pems=(ca.cert_pem,), server_name="radius.test")
    if method == "ttls":
        from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig

        ttls = TtlsPeerConfig(
            tls=tls, identity=user.encode(), inner=InnerAuth.EAP, eap_methods=inner
        )
        return EapPeer(OUTER, [(EapType.TTLS, lambda: EapTtlsPeer(ttls))])
    from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig

    peap = PeapPeerConfig(tls=tls, identity=user.encode(), eap_methods=inner)
    return EapPeer(OUTER, [(EapType.PEAP, lambda: EapPeapPeer(peap))])


class _LoopbackNas:
    """The daemon's RADIUS service on a loopback UDP socket (a thread answering datagrams
    through ``service.datagram``, as the daemon's UDP protocol does)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                answer = self.service.datagram(data, (addr[0], addr[1]))
            except BaseException as exc:  # surface crashes to the test
                self.errors.append(exc)
                continue
            if answer is not None:
                self.sock.sendto(answer, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class _UdpConversation:
    """One supplicant's conversation through :class:`RadiusEapClient`, one round per step."""

    def __init__(self, port: int, peer: EapPeer) -> None:
        self.client = RadiusEapClient(port, SECRET)
        self.peer = peer
        self.eap: bytes | None = peer.receive(EapRequest(0, EapType.IDENTITY).to_bytes())
        self.final: tuple[int, list[tuple[int, bytes]]] | None = None

    def step(self) -> None:
        if self.final is not None:
            return
        assert self.eap is not None, self.peer.failure_reason
        code, attrs = self.client.exchange(OUTER, self.eap)
        eap_in = b"".join(v for k, v in attrs if k == _EAP_MESSAGE)
        if code == Code.ACCESS_CHALLENGE:
            self.eap = self.peer.receive(eap_in)
        else:
            self.final = (code, attrs)

    def vlan(self) -> str | None:
        assert self.final is not None
        value = dict(self.final[1]).get(_TUNNEL_GROUP)
        return None if value is None else value.decode()


def _interleave(conversations: list[Any]) -> None:
    for _ in range(80):
        if all(c.final is not None for c in conversations):
            return
        for c in conversations:
            c.step()
    raise AssertionError("no final answer")


@pytest.mark.parametrize("method", ["ttls", "peap"])
def test_same_anonymous_outer_identity_each_gets_its_own_verdict(
    tmp_path: Path, cert_factory: Any, method: str
) -> None:
    _, front, ca = _gateway(tmp_path, cert_factory, "127.0.0.1")
    nas = _LoopbackNas(front.service)
    alice = _UdpConversation(nas.port, _peer(ca, method, "alice", "allow"))
    carol = _UdpConversation(nas.port, _peer(ca, method, "carol", "isolate"))
    try:
        _interleave([alice, carol])
    finally:
        alice.client.close()
        carol.client.close()
        nas.close()
    assert nas.errors == []
    assert alice.final is not None and alice.final[0] == Code.ACCESS_ACCEPT
    assert carol.final is not None and carol.final[0] == Code.ACCESS_ACCEPT
    assert (alice.vlan(), carol.vlan()) == ("10", "99")
    assert set(front.identities) == {"alice", "carol"}


# -- reports: the inner identity where known, the outer User-Name / station towards the NAS --

NAS = ("192.0.2.10", 1812)


class _Conversation:
    """A conversation sent straight into the service, with a Calling-Station-Id (an 802.1X
    NAS names the supplicant's MAC there)."""

    def __init__(self, service: Any, peer: EapPeer, station: str) -> None:
        self.service = service
        self.peer = peer
        self.station = station
        self.eap: bytes | None = peer.receive(EapRequest(0, EapType.IDENTITY).to_bytes())
        self.state: bytes | None = None
        self.identifier = 0
        self.final: Packet | None = None

    def step(self) -> None:
        if self.final is not None:
            return
        assert self.eap is not None, self.peer.failure_reason
        attributes: list[Any] = [
            TextAttribute(T.USER_NAME, OUTER.decode()),
            TextAttribute(T.CALLING_STATION_ID, self.station),
            *eap_message_attributes(self.eap),
        ]
        if self.state is not None:
            attributes.append(StringAttribute(T.STATE, self.state))
        self.identifier = (self.identifier + 1) % 256
        raw = encode_request(
            Packet(Code.ACCESS_REQUEST, self.identifier, os.urandom(16), tuple(attributes)),
            SECRET.encode(),
        )
        out = self.service.datagram(raw, NAS)
        assert out is not None
        answer = verify_response(out, raw[4:20], SECRET.encode())
        if answer.code != Code.ACCESS_CHALLENGE:
            self.final = answer
            return
        self.state = answer.string(T.STATE)
        self.eap = self.peer.receive(answer.eap_message() or b"")


def _group(answer: Packet) -> bytes | None:
    attribute = answer.get(T.TUNNEL_PRIVATE_GROUP_ID)
    value = getattr(attribute, "value", None)
    return value if isinstance(value, bytes) else None


def _accounting_start(
    service: Any, station: str, session_id: str, status: int = AcctStatusType.START
) -> None:
    raw = encode_request(
        Packet(
            Code.ACCOUNTING_REQUEST,
            9,
            os.urandom(16),
            (
                IntegerAttribute(T.ACCT_STATUS_TYPE, status),
                TextAttribute(T.USER_NAME, OUTER.decode()),
                TextAttribute(T.CALLING_STATION_ID, station),
                TextAttribute(T.ACCT_SESSION_ID, session_id),
            ),
        ),
        SECRET.encode(),
    )
    out = service.datagram(raw, (NAS[0], 1813))
    assert out is not None
    assert verify_response(out, raw[4:20], SECRET.encode()).code == Code.ACCOUNTING_RESPONSE


def test_reports_name_the_inner_user_and_the_nas_keys_stay_outer(
    tmp_path: Path, cert_factory: Any
) -> None:
    _, front, ca = _gateway(tmp_path, cert_factory, "192.0.2.10")
    alice_mac, carol_mac = "02-00-00-00-00-01", "02-00-00-00-00-02"
    alice = _Conversation(front.service, _peer(ca, "ttls", "alice", "allow"), alice_mac)
    carol = _Conversation(front.service, _peer(ca, "peap", "carol", "isolate"), carol_mac)
    _interleave([carol, alice])
    finals = [c.final for c in (alice, carol)]
    assert all(f is not None and f.code == Code.ACCESS_ACCEPT for f in finals)
    assert [_group(f) for f in finals if f] == [b"10", b"99"]
    # Access-Accept echoes the outer User-Name: the NAS knows the session by it.
    assert [f.text(T.USER_NAME) for f in finals if f] == [OUTER.decode()] * 2

    _accounting_start(front.service, alice_mac, "acct-a")
    _accounting_start(front.service, carol_mac, "acct-c")
    by_station = {s.calling_station_id: s for s in front.accounting.sessions.values()}
    assert by_station[alice_mac].user_name == OUTER.decode()
    assert (by_station[alice_mac].identity, by_station[carol_mac].identity) == ("alice", "carol")
    # Each accounting session is tied to its own posture connection.
    cids = {front.connection_for(by_station[m]) for m in (alice_mac, carol_mac)}
    assert cids == {front.identities["alice"], front.identities["carol"]}
    assert len(cids) == 2

    dynauth = front.dynauth
    assert dynauth is not None
    live = {s.calling_station_id: s for s in dynauth.sessions.values()}
    assert live[alice_mac].user_name == OUTER.decode()
    assert (live[alice_mac].identity, live[carol_mac].identity) == ("alice", "carol")
    assert live[carol_mac].acct_session_id == "acct-c"
    assert [k.station for k in dynauth.find(identity="carol")] == [carol_mac]
    # A Disconnect for carol names the session as the NAS knows it (outer User-Name, MAC).
    udp: list[tuple[bytes, Any]] = []
    front.service.dynauth_port.transport = type(
        "U", (), {"write": lambda self, d, a: udp.append((d, a))}
    )()
    assert front.reassess({"carol"}) == 1
    ((data, addr),) = udp
    request = decode_packet(data)
    assert request.code == Code.DISCONNECT_REQUEST and addr == (NAS[0], 13799)
    assert request.text(T.USER_NAME) == OUTER.decode()
    assert request.text(T.CALLING_STATION_ID) == carol_mac
    assert request.text(T.ACCT_SESSION_ID) == "acct-c"


def test_evidence_sessions_and_accounting_rows_are_each_users_own(
    tmp_path: Path, cert_factory: Any
) -> None:
    """With an evidence database: the posture connection (evidence session) is opened for
    the inner user, its decision is that user's, and the NAS's accounting for a station is
    written against that station's own connection (bound to its MAC, ended by its Stop)."""
    from nea.imv import MemoryEvidenceSink
    from nea.pb_tnc import AccessRecommendation

    class Sink(MemoryEvidenceSink):
        def __init__(self) -> None:
            super().__init__()
            self.bound: list[tuple[int, str]] = []
            self.rows: list[Any] = []

        def bind_address(self, connection_id: int, address: str) -> None:
            self.bound.append((connection_id, address))

        def accounting(self, acct: Any) -> None:
            self.rows.append(acct)

    sink = Sink()
    _, front, ca = _gateway(tmp_path, cert_factory, "192.0.2.10", evidence_sink=sink)
    alice_mac, carol_mac = "02-00-00-00-00-01", "02-00-00-00-00-02"
    alice = _Conversation(front.service, _peer(ca, "peap", "alice", "allow"), alice_mac)
    carol = _Conversation(front.service, _peer(ca, "ttls", "carol", "isolate"), carol_mac)
    _interleave([alice, carol])
    assert [_group(c.final) for c in (alice, carol) if c.final] == [b"10", b"99"]
    cid = {s.identity: s.connection_id for s in sink.starts}
    assert set(cid) == {"alice", "carol"} and cid["alice"] != cid["carol"]
    access = {d.identity: (d.connection_id, d.access) for d in sink.decisions}
    assert access == {
        "alice": (cid["alice"], AccessRecommendation.ALLOWED),
        "carol": (cid["carol"], AccessRecommendation.QUARANTINED),
    }

    _accounting_start(front.service, carol_mac, "acct-c")
    _accounting_start(front.service, alice_mac, "acct-a")
    rows = {r.acct_session_id: r for r in sink.rows}
    assert (rows["acct-a"].connection_id, rows["acct-a"].user_name) == (cid["alice"], "alice")
    assert (rows["acct-c"].connection_id, rows["acct-c"].user_name) == (cid["carol"], "carol")
    assert rows["acct-c"].calling_station_id == carol_mac
    assert sorted(sink.bound) == sorted([(cid["alice"], alice_mac), (cid["carol"], carol_mac)])
    before = len(sink.ended)  # (the assessment's own end is recorded when it finishes)
    _accounting_start(front.service, carol_mac, "acct-c", AcctStatusType.STOP)
    assert [c for c, _ in sink.ended[before:]] == [cid["carol"]]
