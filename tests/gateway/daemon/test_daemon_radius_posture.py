"""The daemon's ``[radius]`` front-end with ``posture = true``: EAP-TTLS (inner EAP-MD5) then
PT-EAP with the ``[nea]`` validators (the real test validator); the verdict becomes the
allow/isolate VLAN or an Access-Reject."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.daemon import Gateway, load_config
from gateway.daemon.radius import start_radius
from ike.eap.methods.md5 import Md5PeerMethod
from radius import (
    AttributeType,
    Code,
    Packet,
    StringAttribute,
    TextAttribute,
    eap_message_attributes,
    encode_request,
    verify_response,
)
from tests.nea.pb_tnc.pbtnc_fakes import command_collector

T = AttributeType
SECRET = "posture-radius-secret"
NAS = ("192.0.2.10", 1812)


class Reactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.protocols: dict[int, Any] = {}

    def listenUDP(self, port: int, proto: Any, interface: str = "") -> Any:
        self.protocols[port] = proto
        return proto


def _gateway(tmp_path: Path, cert_factory: Any) -> tuple[Any, Any]:
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
isolate_filter_id = "quarantine"
[secrets.eap-bob]
id = "bob"
secret = "hello"
[secrets.private-radius]
file = "{server.key_path}"
[nea]
validators = ["test"]
database = false
"""
    )
    reactor = Reactor()
    gw = Gateway(load_config(p), reactor)
    service = start_radius(gw, reactor)
    assert sorted(reactor.protocols) == [11812, 11813]
    return service, ca


def _authenticate(service: Any, ca: Any, command: str) -> Packet:
    from ike.eap_tls.tls import TlsPeerConfig
    from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig
    from nea.pb_tnc import PbTncConfig, Tncc
    from nea.pt_eap import PtEapPeer

    method = EapTtlsPeer(
        TtlsPeerConfig(
            tls=TlsPeerConfig(ca_pems=(ca.cert_pem,)),
            identity=b"bob",
            inner=InnerAuth.EAP,
            eap_methods=(
                (4, lambda: Md5PeerMethod("hello")),
                (
                    54,
                    lambda: PtEapPeer(
                        Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap())
                    ),
                ),
            ),
        )
    )
    eap: bytes | None = bytes([2, 1, 0, 8, 1]) + b"bob"
    state = None
    for identifier in range(60):
        assert eap is not None
        attributes: list[Any] = [TextAttribute(T.USER_NAME, "bob"), *eap_message_attributes(eap)]
        if state is not None:
            attributes.append(StringAttribute(T.STATE, state))
        raw = encode_request(
            Packet(Code.ACCESS_REQUEST, identifier, os.urandom(16), tuple(attributes)),
            SECRET.encode(),
        )
        out = service.datagram(raw, NAS)
        assert out is not None
        answer = verify_response(out, raw[4:20], SECRET.encode())
        if answer.code != Code.ACCESS_CHALLENGE:
            return answer
        state = answer.string(T.STATE)
        request = answer.eap_message()
        assert request is not None and request[4] == 21
        data = method.receive(request[5:]).reply or b""
        eap = bytes([2, request[1]]) + (5 + len(data)).to_bytes(2, "big") + b"\x15" + data
    raise AssertionError("no final answer")


@pytest.mark.parametrize(
    ("command", "code", "vlan"),
    [
        ("allow", Code.ACCESS_ACCEPT, b"10"),
        ("isolate", Code.ACCESS_ACCEPT, b"99"),
        ("block", Code.ACCESS_REJECT, None),
    ],
)
def test_radius_posture_verdict_selects_vlan(
    tmp_path: Path, cert_factory: Any, command: str, code: Code, vlan: bytes | None
) -> None:
    service, ca = _gateway(tmp_path, cert_factory)
    answer = _authenticate(service, ca, command)
    assert answer.code == code
    group = answer.get(T.TUNNEL_PRIVATE_GROUP_ID)
    assert (group.value if group is not None else None) == vlan  # type: ignore[union-attr]
