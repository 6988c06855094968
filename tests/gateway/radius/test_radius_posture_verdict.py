"""The NEA hook end to end, in process: RADIUS engine + real EAP-TTLS (inner EAP-MD5) + a
posture method handed in through ``build_server(posture=..., verdict=...)``; the verdict it
reaches picks the VLAN (allow / quarantine) or turns the Accept into a Reject.

The posture method here is a stand-in for PT-EAP (same EAP type 54, trivial exchange): the
point is the wiring gateway -> tunnel method -> verdict -> RFC 3580 attributes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.radius import available_methods, build_server, parse_config
from ike.eap.method import Decision, Step
from ike.eap.methods.md5 import Md5PeerMethod
from radius import (
    Attribute,
    AttributeType,
    Code,
    Conversation,
    Packet,
    RadiusServer,
    StringAttribute,
    TextAttribute,
    Verdict,
    eap_message_attributes,
    encode_request,
    verify_response,
)
from tests.harness.certs import CertFactory, Issued

T = AttributeType
SECRET = b"posture-secret"
NAS = ("192.0.2.10", 1812)
PT_EAP = 54


class FakePostureServer:
    def __init__(self, identity: bytes, verdicts: dict[bytes, Verdict]) -> None:
        self.identity = identity
        self.verdicts = verdicts

    eap_type = PT_EAP
    failure_reason = None

    def start(self) -> bytes:
        return b"health?"

    def receive(self, type_data: bytes) -> Step:
        self.verdicts[self.identity] = {
            b"healthy": Verdict.ALLOW,
            b"outdated": Verdict.ISOLATE,
            b"infected": Verdict.NO_ACCESS,
        }[type_data]
        return Step(None, Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None


class FakePosturePeer:
    def __init__(self, health: bytes) -> None:
        self.health = health

    eap_type = PT_EAP
    failure_reason = None

    def receive(self, type_data: bytes) -> Step:
        assert type_data == b"health?"
        return Step(self.health, Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None


def _server(tmp_path: Path, verdicts: dict[bytes, Verdict]) -> tuple[RadiusServer, Issued]:
    certs = CertFactory(tmp_path / "certs")
    ca = certs.ca("ca")
    server_cert = certs.issue(ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",))
    config = parse_config(
        {
            "radius": {"clients": [{"address": "192.0.2.0/24", "secret": SECRET.decode()}]},
            "eap": {"methods": ["ttls"], "inner_methods": ["md5"]},
            "users": {"bob": "hello"},
            "tls": {"cert": str(server_cert.chain_path), "key": str(server_cert.key_path)},
            "vlans": {"allow": "10", "isolate": "99", "isolate_filter_id": "quarantine"},
        },
        tmp_path,
    )

    def verdict(conversation: Conversation) -> Verdict | None:
        name = conversation.context.user_name
        return verdicts.get(name.encode()) if name else None

    server = build_server(
        config,
        posture=[(PT_EAP, lambda identity: FakePostureServer(identity, verdicts))],
        verdict=verdict,
    )
    return server, ca


def _authenticate(server: RadiusServer, ca: Issued, health: bytes) -> Packet:
    from ike.eap_tls.tls import TlsPeerConfig
    from ike.eap_ttls.method import EapTtlsPeer, InnerAuth, TtlsPeerConfig

    ttls = TtlsPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,)),
        identity=b"bob",
        inner=InnerAuth.EAP,
        eap_methods=(
            (4, lambda: Md5PeerMethod("hello")),
            (PT_EAP, lambda: FakePosturePeer(health)),
        ),
    )
    # The TTLS peer method is driven directly (EAP header by hand): ike.eap.peer.EapPeer
    # treats a TTLS Request after the method said SUCCESS as a new method, which cuts off
    # posture that runs after the inner authentication (reported to the owners).
    method = EapTtlsPeer(ttls)
    eap: bytes | None = bytes([2, 1, 0, 14, 1]) + b"anonymous"
    state = None
    for identifier in range(50):
        assert eap is not None
        attributes: list[Attribute] = [
            TextAttribute(T.USER_NAME, "bob"),
            *eap_message_attributes(eap),
        ]
        if state is not None:
            attributes.append(StringAttribute(T.STATE, state))
        raw = encode_request(
            Packet(Code.ACCESS_REQUEST, identifier, os.urandom(16), tuple(attributes)), SECRET
        )
        out = server.receive_datagram(raw, NAS, float(identifier))
        assert out is not None
        answer = verify_response(out, raw[4:20], SECRET)
        if answer.code != Code.ACCESS_CHALLENGE:
            return answer
        state = answer.string(T.STATE)
        request = answer.eap_message()
        assert request is not None and request[0] == 1 and request[4] == 21
        step = method.receive(request[5:])
        data = step.reply or b""
        eap = bytes([2, request[1]]) + (5 + len(data)).to_bytes(2, "big") + b"\x15" + data
    raise AssertionError("no final answer")


@pytest.mark.parametrize(
    ("health", "code", "vlan", "filter_id"),
    [
        (b"healthy", Code.ACCESS_ACCEPT, b"10", None),
        (b"outdated", Code.ACCESS_ACCEPT, b"99", "quarantine"),
        (b"infected", Code.ACCESS_REJECT, None, None),
    ],
)
def test_posture_verdict_selects_vlan(
    tmp_path: Path, health: bytes, code: Code, vlan: bytes | None, filter_id: str | None
) -> None:
    assert "ttls" in available_methods()
    verdicts: dict[bytes, Verdict] = {}
    server, ca = _server(tmp_path, verdicts)
    answer = _authenticate(server, ca, health)
    assert answer.code == code
    group = answer.get(T.TUNNEL_PRIVATE_GROUP_ID)
    assert (group.value if group is not None else None) == vlan  # type: ignore[union-attr]
    assert answer.text(T.FILTER_ID) == filter_id
    assert verdicts  # the posture method really ran inside the tunnel
    if code == Code.ACCESS_ACCEPT:
        assert answer.get(T.VENDOR_SPECIFIC) is not None  # MPPE keys from the TTLS MSK
    else:
        failure = answer.eap_message()
        assert failure is not None and failure[0] == 4  # EAP-Failure
