"""Version negotiation (RFC 4851 3.1) and TLV-level refusals (NAK TLV 4.2.3, Error TLV 4.2.4)."""

from __future__ import annotations

import struct

import pytest

from ike.eap.method import Decision
from ike.eap.methods import MsChapV2PeerMethod, StaticPasswords, mschapv2_server_factory
from ike.eap.packet import EapType
from ike.eap_fast import (
    EapFastPeer,
    EapFastServer,
    FastPeerConfig,
    FastServerConfig,
    PacStore,
    Provisioning,
    Tlv,
    TlvType,
    parse_tlvs,
)
from ike.eap_fast.method import Phase
from ike.eap_tls import TlsPeerConfig, TlsServerConfig
from tests.harness.certs import CertFactory

PASSWORDS = StaticPasswords({"bob": "hello"})


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> tuple[FastServerConfig, FastPeerConfig]:
    certs = CertFactory(tmp_path_factory.mktemp("neg") / "certs")
    ca = certs.ca("ca", key_type="rsa", rsa_bits=2048)
    cert = certs.issue(ca, "radius.test", san_dns=("radius.test",), key_type="rsa", rsa_bits=2048)
    sconf = FastServerConfig(
        tls=TlsServerConfig(cert.chain_pem, cert.key_pem, require_client_cert=False),
        a_id=b"aid",
        eap_methods=((EapType.MSCHAPV2, mschapv2_server_factory(PASSWORDS)),),
        provisioning=Provisioning.AUTHENTICATED,
    )
    pconf = FastPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,), server_name="radius.test"),
        identity=b"bob",
        eap_methods=((EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"bob", "hello")),),
        pac_store=PacStore(),
    )
    return sconf, pconf


def test_start_carries_version_and_authority_id(
    configs: tuple[FastServerConfig, FastPeerConfig],
) -> None:
    start = EapFastServer(configs[0], b"x").start()
    assert start[0] == 0x21  # S flag, version 1
    assert start[1:] == struct.pack("!HH", 4, 3) + b"aid"


@pytest.mark.parametrize("offered", [1, 2, 7])
def test_peer_answers_with_version_1(
    configs: tuple[FastServerConfig, FastPeerConfig], offered: int
) -> None:
    peer = EapFastPeer(configs[1])
    step = peer.receive(bytes([0x20 | offered]) + struct.pack("!HH", 4, 3) + b"aid")
    assert step.decision is Decision.CONTINUE and step.reply is not None
    assert step.reply[0] & 0x07 == 1


def test_peer_refuses_version_0(configs: tuple[FastServerConfig, FastPeerConfig]) -> None:
    step = EapFastPeer(configs[1]).receive(b"\x20")
    assert step.decision is Decision.FAILURE


@pytest.mark.parametrize("version", [0, 2])
def test_server_refuses_other_versions(
    configs: tuple[FastServerConfig, FastPeerConfig], version: int
) -> None:
    server = EapFastServer(configs[0], b"x")
    server.start()
    step = server.receive(bytes([version]) + b"\x16\x03\x01\x00\x00")
    assert step.decision is Decision.FAILURE and "version" in (server.failure_reason or "")


def _to_phase2(sconf: FastServerConfig, pconf: FastPeerConfig) -> tuple[EapFastServer, EapFastPeer]:
    """Both sides in phase 2; the peer has answered the Identity Request, and the server
    has read that answer off its TLS channel without acting on it (the test speaks next)."""
    server, peer = EapFastServer(sconf, b"anonymous"), EapFastPeer(pconf)
    msg = server.start()
    while peer.phase is not Phase.INNER or server.phase is not Phase.INNER:
        step = peer.receive(msg)
        assert step.reply is not None
        answer = server.receive(step.reply)
        assert answer.reply is not None
        msg = answer.reply
    reply = peer.receive(msg)  # the Identity Response
    assert reply.reply is not None
    tlvs = _server_reads(server, reply.reply)
    assert [t.tlv_type for t in tlvs] == [TlvType.EAP_PAYLOAD]
    return server, peer


def _server_sends(server: EapFastServer, tlvs: list[Tlv]) -> bytes:
    server.channel.write_application_data(b"".join(t.to_bytes() for t in tlvs))
    return server.framing.send(server.channel.data_to_send())


def _server_reads(server: EapFastServer, type_data: bytes) -> list[Tlv]:
    server.channel.receive(type_data[1:])
    return parse_tlvs(server.channel.read_application_data())


def test_peer_naks_unknown_mandatory_tlv(configs: tuple[FastServerConfig, FastPeerConfig]) -> None:
    server, peer = _to_phase2(*configs)
    step = peer.receive(_server_sends(server, [Tlv(0x123, b"", mandatory=True)]))
    assert step.decision is Decision.FAILURE and step.reply is not None
    answer = _server_reads(server, step.reply)
    nak = [t for t in answer if t.tlv_type == TlvType.NAK]
    assert nak and nak[0].value == struct.pack("!IH", 0, 0x123)
    assert any(t.tlv_type == TlvType.RESULT and t.value == b"\x00\x02" for t in answer)


def test_peer_ignores_unknown_optional_tlv(
    configs: tuple[FastServerConfig, FastPeerConfig],
) -> None:
    server, peer = _to_phase2(*configs)
    step = peer.receive(_server_sends(server, [Tlv(0x123, b"xyz")]))
    assert step.decision is Decision.CONTINUE


def test_error_tlv_from_server_fails_the_peer(
    configs: tuple[FastServerConfig, FastPeerConfig],
) -> None:
    server, peer = _to_phase2(*configs)
    step = peer.receive(_server_sends(server, [Tlv.error(2001)]))  # type: ignore[arg-type]
    assert step.decision is Decision.FAILURE
    assert "TUNNEL_COMPROMISE" in (peer.failure_reason or "")
