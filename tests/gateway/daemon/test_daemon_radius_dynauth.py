"""The daemon's ``[radius]`` with ``[radius.dynauth]`` and accounting: a policy change that
affects a RADIUS endpoint's assessment sends its NAS a Disconnect-Request (RFC 5176), so the
supplicant authenticates again and is assessed under the new policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.daemon import Gateway, load_config
from gateway.daemon.radius import DaemonRadius, start_radius
from radius import Code
from tests.gateway.daemon.test_daemon_radius_posture import NAS, SECRET, Reactor, _authenticate


class _Udp:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


def _gateway(tmp_path: Path, cert_factory: Any, dynauth: bool) -> tuple[Gateway, Any, Reactor]:
    ca = cert_factory.ca("ca")
    server = cert_factory.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
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
methods = ["ttls"]
inner_methods = ["md5"]
certs = ["{server.chain_path}"]
posture = true
[[radius.clients]]
address = "192.0.2.0/24"
secret = "{SECRET}"
[radius.vlans]
allow = "10"
isolate = "99"
[secrets.eap-bob]
id = "bob"
secret = "hello"
[secrets.private-radius]
file = "{server.key_path}"
[nea]
validators = ["test"]
database = false
"""
        + ("[radius.dynauth]\nport = 13799\ntimeout = 1.0\n" if dynauth else "")
    )
    reactor = Reactor()
    gw = Gateway(load_config(p), reactor)
    gw.radius = start_radius(gw, reactor)
    return gw, ca, reactor


def test_config_hands_dynauth_and_accounting_through(tmp_path: Path, cert_factory: Any) -> None:
    gw, _, reactor = _gateway(tmp_path, cert_factory, dynauth=True)
    assert isinstance(gw.radius, DaemonRadius)
    assert gw.config.radius is not None and gw.config.radius.dynauth == {
        "port": 13799,
        "timeout": 1.0,
    }
    assert gw.radius.dynauth is not None and gw.radius.accounting is not None
    assert 0 in reactor.protocols  # the CoA / Disconnect client socket


def test_policy_change_disconnects_the_radius_session(tmp_path: Path, cert_factory: Any) -> None:
    gw, ca, reactor = _gateway(tmp_path, cert_factory, dynauth=True)
    udp = _Udp()
    reactor.protocols[0].transport = udp
    answer = _authenticate(gw.radius, ca, "isolate")
    assert answer.code == Code.ACCESS_ACCEPT
    assert gw.radius is not None and "bob" in gw.radius.identities
    assert gw._reassess_affected(set(), radius=False) == {"ike": [], "radius": 0}
    assert udp.sent == []
    result = gw._reassess_affected(set(), radius=True)  # the policy file changed
    assert result == {"ike": [], "radius": 1}
    ((data, addr),) = udp.sent
    assert data[0] == Code.DISCONNECT_REQUEST and addr == (NAS[0], 13799)
    # A user without a live session: nothing sent.
    assert gw.radius.reassess({"nobody"}) == 0 and len(udp.sent) == 1


def test_without_dynauth_nothing_is_sent(tmp_path: Path, cert_factory: Any) -> None:
    gw, ca, _ = _gateway(tmp_path, cert_factory, dynauth=False)
    assert _authenticate(gw.radius, ca, "allow").code == Code.ACCESS_ACCEPT
    assert gw.radius is not None and gw.radius.dynauth is None
    assert gw.radius.reassess({"bob"}) == 0


def test_accounting_start_is_recorded_and_completes_the_dynauth_session(
    tmp_path: Path, cert_factory: Any
) -> None:
    import os

    from radius import (
        AcctStatusType,
        AttributeType,
        IntegerAttribute,
        Packet,
        TextAttribute,
        encode_request,
        verify_response,
    )

    t = AttributeType
    gw, ca, _ = _gateway(tmp_path, cert_factory, dynauth=True)
    assert _authenticate(gw.radius, ca, "allow").code == Code.ACCESS_ACCEPT
    raw = encode_request(
        Packet(
            Code.ACCOUNTING_REQUEST,
            7,
            os.urandom(16),
            (
                IntegerAttribute(t.ACCT_STATUS_TYPE, AcctStatusType.START),
                TextAttribute(t.USER_NAME, "bob"),
                TextAttribute(t.ACCT_SESSION_ID, "sess-0001"),
            ),
        ),
        SECRET.encode(),
    )
    out = gw.radius.datagram(raw, (NAS[0], 1813))
    assert out is not None
    assert verify_response(out, raw[4:20], SECRET.encode()).code == Code.ACCOUNTING_RESPONSE
    recorder = gw.radius.accounting
    (session,) = recorder.sessions.values()
    assert session.user_name == "bob" and session.open
    (live,) = gw.radius.dynauth.sessions.values()
    assert live.acct_session_id == "sess-0001"
