"""EAP-TLS server and peer back to back (RFC 5216, RFC 9190), positive and negative."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ike.eap.method import Decision, EapPeerMethod, EapServerMethod
from ike.eap_tls.method import EapTlsPeer, EapTlsServer
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsSessionCache, TlsVersion
from tests.harness.certs import CertFactory, Issued
from tests.ike.eap_tls.eap_tls_helpers import Pki, make_pki, run_pair

VERSIONS = [TlsVersion.TLS1_2, TlsVersion.TLS1_3]
IDENTITY = b"alice@example.com"


@pytest.fixture
def pki(cert_factory: CertFactory) -> Pki:
    return make_pki(cert_factory)


def server_config(pki: Pki, version: TlsVersion, **kw: object) -> TlsServerConfig:
    return TlsServerConfig(
        pki.server.chain_pem, pki.server.key_pem, (pki.ca.cert_pem,),
        max_version=version, **kw,  # type: ignore[arg-type]
    )


def peer_config(pki: Pki, version: TlsVersion, client: Issued | None = None,
                **kw: object) -> TlsPeerConfig:
    client = client or pki.client
    kw.setdefault("server_name", "gw.test")
    return TlsPeerConfig(
        (pki.ca.cert_pem,), client.chain_pem, client.key_pem,
        max_version=version, **kw,  # type: ignore[arg-type]
    )


def test_methods_implement_the_contract(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3), IDENTITY)
    peer = EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3))
    assert isinstance(server, EapServerMethod) and isinstance(peer, EapPeerMethod)
    assert server.eap_type == peer.eap_type == 13


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_full_handshake_keys_match(pki: Pki, cert_factory: CertFactory,
                                   version: TlsVersion, key_type: str) -> None:
    if key_type == "rsa":
        pki = make_pki(CertFactory(cert_factory.directory / "rsa"), key_type="rsa")
    server = EapTlsServer(server_config(pki, version), IDENTITY)
    peer = EapTlsPeer(peer_config(pki, version))
    assert server.msk() is None and peer.msk() is None
    out = run_pair(server, peer)
    assert (out.server, out.peer) == (Decision.SUCCESS, Decision.SUCCESS)
    assert server.tls.version is version and peer.tls.version is version
    msk, emsk = server.msk(), server.emsk()
    assert msk is not None and emsk is not None and len(msk) == len(emsk) == 64
    assert msk == peer.msk() and emsk == peer.emsk() and msk != emsk
    assert server.session_id == peer.session_id
    assert server.session_id is not None and server.session_id[0] == 13
    assert len(server.session_id) == 65
    assert server.failure_reason is None and peer.failure_reason is None
    # EAP-TLS Start carries only the S flag; the first response is a ClientHello record.
    assert out.requests[0] == b"\x20"
    first = out.responses[0]
    assert first[5 if first[0] & 0x80 else 1] == 0x16


def test_tls13_peer_withholds_keys_until_success_indication(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3), IDENTITY)
    peer = EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3))
    req = server.start()
    steps_after_handshake = []
    while True:
        step = peer.receive(req)
        assert step.reply is not None
        if peer.tls.handshake_complete:
            steps_after_handshake.append((step.decision, peer.msk()))
        if step.decision is Decision.SUCCESS:
            break
        s = server.receive(step.reply)
        assert s.decision is Decision.CONTINUE and s.reply is not None
        assert server.msk() is None  # the server waits for the peer's final empty response
        req = s.reply
    # The handshake finished on the peer several messages before it saw the 0x00 indication
    # (its Finished flight went out first); only the last step carries keys.
    assert len(steps_after_handshake) >= 2
    assert all(d is Decision.CONTINUE and m is None for d, m in steps_after_handshake[:-1])
    assert step.reply == b"\x00" and peer.msk() is not None
    assert server.receive(step.reply).decision is Decision.SUCCESS
    assert server.msk() == peer.msk()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("size", [16, 100])
def test_small_fragments(pki: Pki, version: TlsVersion, size: int) -> None:
    server = EapTlsServer(server_config(pki, version, fragment_size=size), IDENTITY)
    peer = EapTlsPeer(peer_config(pki, version, fragment_size=size))
    out = run_pair(server, peer)
    assert (out.server, out.peer) == (Decision.SUCCESS, Decision.SUCCESS)
    assert server.msk() == peer.msk()
    assert out.rounds > 20
    for message in out.requests + out.responses:
        header = 5 if message[0] & 0x80 else 1
        assert len(message) - header <= size


def test_oversize_reassembly_fails_cleanly(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3), IDENTITY)
    server.start()
    step = server.receive(b"\xc0" + (70000).to_bytes(4, "big") + b"\x16" * 100)
    assert step.decision is Decision.FAILURE
    assert server.failure_reason is not None and "limit" in server.failure_reason
    # A failed method refuses anything further.
    assert server.receive(b"\x00").decision is Decision.FAILURE


def test_fragments_growing_past_limit_fail(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3, max_message=4096), IDENTITY)
    server.start()
    for _ in range(4):
        step = server.receive(b"\x40" + b"\x16" * 1000)
        assert step.decision is Decision.CONTINUE and step.reply == b"\x00"
    step = server.receive(b"\x40" + b"\x16" * 1000)
    assert step.decision is Decision.FAILURE and "limit" in (server.failure_reason or "")


def test_garbage_tls_is_a_failure(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3), IDENTITY)
    server.start()
    step = server.receive(b"\x00" + b"GET / HTTP/1.1\r\n\r\n")
    assert step.decision is Decision.FAILURE and server.failure_reason


def expect_failure(server: EapTlsServer, peer: EapTlsPeer, server_words: tuple[str, ...],
                   peer_words: tuple[str, ...] = ()) -> None:
    out = run_pair(server, peer)
    assert out.server is Decision.FAILURE
    assert out.peer is not Decision.SUCCESS and peer.msk() is None
    reason = (server.failure_reason or "").lower()
    for word in server_words:
        assert word in reason, reason
    preason = (peer.failure_reason or "").lower()
    for word in peer_words:
        assert word in preason, preason
    assert server.msk() is None
    # The alert the server's log line names is the one the peer received.
    alert = server.tls.failure_alert
    if alert is not None:
        assert f"alert {alert.name.replace('_', ' ')}" in preason, (reason, preason)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_cert_from_other_ca(pki: Pki, cert_factory: CertFactory,
                                   version: TlsVersion) -> None:
    other = cert_factory.ca("otherca")
    rogue = cert_factory.issue(other, "alice@example.com", name="rogue",
                               san_email=["alice@example.com"], eku=("clientAuth",))
    expect_failure(
        EapTlsServer(server_config(pki, version), IDENTITY),
        EapTlsPeer(peer_config(pki, version, client=rogue)),
        ("unknown ca", "unknown_ca"),
        ("unknown ca",),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_expired_client_cert(pki: Pki, cert_factory: CertFactory, version: TlsVersion) -> None:
    old = cert_factory.expired(pki.ca, "alice@example.com", name="old",
                               san_email=["alice@example.com"], eku=("clientAuth",))
    expect_failure(
        EapTlsServer(server_config(pki, version), IDENTITY),
        EapTlsPeer(peer_config(pki, version, client=old)),
        ("expired", "certificate_expired"),
        ("certificate expired",),
    )


def test_expired_by_injected_clock(pki: Pki) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=800)
    expect_failure(
        EapTlsServer(server_config(pki, TlsVersion.TLS1_3, clock=lambda: later), IDENTITY),
        EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3)),
        ("expired",),
    )


def test_not_yet_valid_by_injected_clock(pki: Pki) -> None:
    earlier = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    expect_failure(
        EapTlsServer(server_config(pki, TlsVersion.TLS1_2, clock=lambda: earlier), IDENTITY),
        EapTlsPeer(peer_config(pki, TlsVersion.TLS1_2)),
        ("not yet valid",),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_client_cert_without_client_auth_eku(pki: Pki, cert_factory: CertFactory,
                                             version: TlsVersion) -> None:
    server_only = cert_factory.issue(pki.ca, "alice@example.com", name="srvonly",
                                     san_email=["alice@example.com"], eku=("serverAuth",))
    expect_failure(
        EapTlsServer(server_config(pki, version), IDENTITY),
        EapTlsPeer(peer_config(pki, version, client=server_only)),
        ("extended key usage", "unsupported_certificate"),
        ("unsupported certificate",),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_identity_not_bound_to_certificate(pki: Pki, version: TlsVersion) -> None:
    expect_failure(
        EapTlsServer(server_config(pki, version), b"mallory@example.com"),
        EapTlsPeer(peer_config(pki, version)),
        ("does not match eap identity", "mallory@example.com", "bad_certificate"),
        ("bad certificate",),
    )


def test_identity_binding_can_be_disabled(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3, bind_identity=False),
                          b"anonymous")
    assert run_pair(server, EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3))).server \
        is Decision.SUCCESS


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_client_cert(pki: Pki, version: TlsVersion) -> None:
    peer = EapTlsPeer(TlsPeerConfig((pki.ca.cert_pem,), server_name="gw.test",
                                    max_version=version))
    expect_failure(EapTlsServer(server_config(pki, version), IDENTITY), peer,
                   ("handshake failed",))


def make_crl(pki: Pki, revoked: Issued) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(revoked.cert.serial_number)
        .revocation_date(now - datetime.timedelta(minutes=5))
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca.cert.subject)
        .last_update(now - datetime.timedelta(minutes=10))
        .next_update(now + datetime.timedelta(days=7))
        .add_revoked_certificate(entry)
        .sign(pki.ca.key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("version", VERSIONS)
def test_revoked_client_cert(pki: Pki, version: TlsVersion) -> None:
    crl = make_crl(pki, pki.client)
    expect_failure(
        EapTlsServer(server_config(pki, version, crl_pems=(crl,)), IDENTITY),
        EapTlsPeer(peer_config(pki, version)),
        ("revoked", "certificate_revoked"),
        ("certificate revoked",),
    )


def test_issuer_without_crl_is_refused(pki: Pki, cert_factory: CertFactory) -> None:
    other = cert_factory.ca("crl-other")
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(other.cert.subject)
        .last_update(now - datetime.timedelta(minutes=10))
        .next_update(now + datetime.timedelta(days=7))
        .sign(other.key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)
    expect_failure(
        EapTlsServer(server_config(pki, TlsVersion.TLS1_3, crl_pems=(crl,)), IDENTITY),
        EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3)),
        ("no crl",),
    )


def test_crl_without_the_client_passes(pki: Pki, cert_factory: CertFactory) -> None:
    other = cert_factory.issue(pki.ca, "bob@example.com", name="bob", eku=("clientAuth",))
    crl = make_crl(pki, other)
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3, crl_pems=(crl,)), IDENTITY)
    assert run_pair(server, EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3))).server \
        is Decision.SUCCESS


@pytest.mark.parametrize("version", VERSIONS)
def test_peer_rejects_unknown_server(pki: Pki, cert_factory: CertFactory,
                                     version: TlsVersion) -> None:
    other = cert_factory.ca("peerca")
    peer = EapTlsPeer(TlsPeerConfig((other.cert_pem,), pki.client.chain_pem,
                                    pki.client.key_pem, max_version=version))
    server = EapTlsServer(server_config(pki, version), IDENTITY)
    out = run_pair(server, peer)
    assert out.peer is Decision.FAILURE and out.server is Decision.FAILURE
    assert "unknown ca" in (peer.failure_reason or "").lower()
    assert "unknown ca" in (server.failure_reason or "").lower()  # the alert it received


def test_peer_rejects_wrong_server_name(pki: Pki) -> None:
    peer = EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3, server_name="radius.test"))
    out = run_pair(EapTlsServer(server_config(pki, TlsVersion.TLS1_3), IDENTITY), peer)
    assert out.peer is Decision.FAILURE
    assert "does not match server name" in (peer.failure_reason or "")


def test_peer_refuses_start_less_first_request(pki: Pki) -> None:
    peer = EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3))
    assert peer.receive(b"\x00\x16").decision is Decision.FAILURE
    assert "S flag" in (peer.failure_reason or "")


@pytest.mark.parametrize("version", VERSIONS)
def test_session_resumption(pki: Pki, version: TlsVersion) -> None:
    cache = TlsSessionCache(max_entries=4)
    sconf = server_config(pki, version, session_resumption=True)
    pconf = peer_config(pki, version, session_cache=cache)
    first_s, first_p = EapTlsServer(sconf, IDENTITY), EapTlsPeer(pconf)
    first = run_pair(first_s, first_p)
    assert first.server is Decision.SUCCESS and not first_s.tls.session_reused
    assert len(cache) == 1
    second_s, second_p = EapTlsServer(sconf, IDENTITY), EapTlsPeer(pconf)
    second = run_pair(second_s, second_p)
    assert (second.server, second.peer) == (Decision.SUCCESS, Decision.SUCCESS)
    assert second_s.tls.session_reused and second_p.tls.session_reused
    assert second.rounds < first.rounds
    assert second_s.msk() == second_p.msk() != first_s.msk()


def test_resumed_session_checks_identity_again(pki: Pki) -> None:
    cache = TlsSessionCache()
    sconf = server_config(pki, TlsVersion.TLS1_2, session_resumption=True)
    pconf = peer_config(pki, TlsVersion.TLS1_2, session_cache=cache)
    assert run_pair(EapTlsServer(sconf, IDENTITY), EapTlsPeer(pconf)).server \
        is Decision.SUCCESS
    server = EapTlsServer(sconf, b"mallory@example.com")
    assert run_pair(server, EapTlsPeer(pconf)).server is Decision.FAILURE
    assert "does not match eap identity" in (server.failure_reason or "").lower()


def test_session_cache_is_bounded() -> None:
    cache = TlsSessionCache(max_entries=2)
    sessions = [object(), object(), object()]
    for i, s in enumerate(sessions):
        cache.put(str(i), s)  # type: ignore[arg-type]
    assert len(cache) == 2 and cache.get("0") is None and cache.get("2") is sessions[2]


def test_config_errors(pki: Pki, cert_factory: CertFactory) -> None:
    chain, key = pki.server.chain_pem, pki.server.key_pem
    with pytest.raises(ValueError, match="ca_pems"):
        TlsServerConfig(chain, key)  # client certificates need CAs
    with pytest.raises(ValueError, match="min_version"):
        TlsServerConfig(chain, key, (pki.ca.cert_pem,), min_version=TlsVersion.TLS1_3,
                        max_version=TlsVersion.TLS1_2)
    with pytest.raises(ValueError, match="fragment_size"):
        TlsServerConfig(chain, key, (pki.ca.cert_pem,), fragment_size=0)
    with pytest.raises(ValueError, match="verify_server"):
        TlsPeerConfig(())
    other = cert_factory.issue(pki.ca, "other.test", name="other")
    with pytest.raises(ValueError, match="private key does not match"):
        TlsServerConfig(chain, other.key_pem, (pki.ca.cert_pem,))
    # A server without client certificates needs no CA.
    TlsServerConfig(chain, key, require_client_cert=False)


def test_message_after_success_fails_and_drops_keys(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_2), IDENTITY)
    peer = EapTlsPeer(peer_config(pki, TlsVersion.TLS1_2))
    assert run_pair(server, peer).peer is Decision.SUCCESS and peer.msk() is not None
    assert peer.receive(b"\x00").decision is Decision.FAILURE
    assert "after the method ended" in (peer.failure_reason or "")
    assert peer.msk() is None and peer.session_id is None


@pytest.mark.parametrize("version", VERSIONS)
def test_chains_through_intermediates(cert_factory: CertFactory, version: TlsVersion) -> None:
    """Both sides trust only the root; each sends its leaf and intermediate."""
    root = cert_factory.ca("root")
    server_ica = cert_factory.ca("server-ica", parent=root)
    client_ica = cert_factory.ca("client-ica", parent=root)
    server_cert = cert_factory.issue(server_ica, "gw.test", san_dns=["gw.test"],
                                     eku=("serverAuth",))
    client_cert = cert_factory.issue(client_ica, "carol", san_email=["carol@example.com"],
                                     eku=("clientAuth",))
    server = EapTlsServer(TlsServerConfig(server_cert.chain_pem, server_cert.key_pem,
                                          (root.cert_pem,), max_version=version),
                          b"carol@example.com")
    peer = EapTlsPeer(TlsPeerConfig((root.cert_pem,), client_cert.chain_pem,
                                    client_cert.key_pem, server_name="gw.test",
                                    max_version=version))
    out = run_pair(server, peer)
    assert (out.server, out.peer) == (Decision.SUCCESS, Decision.SUCCESS), (
        server.failure_reason, peer.failure_reason)
    assert server.msk() == peer.msk()
    peer_cert = server.tls.peer_certificate()
    assert peer_cert is not None and peer_cert == client_cert.cert


def test_client_chain_missing_intermediate_fails(cert_factory: CertFactory) -> None:
    root = cert_factory.ca("root2")
    ica = cert_factory.ca("ica2", parent=root)
    server_cert = cert_factory.issue(root, "gw.test", san_dns=["gw.test"], eku=("serverAuth",))
    client_cert = cert_factory.issue(ica, "dave", eku=("clientAuth",))
    server = EapTlsServer(TlsServerConfig(server_cert.chain_pem, server_cert.key_pem,
                                          (root.cert_pem,)), b"dave")
    peer = EapTlsPeer(TlsPeerConfig((root.cert_pem,), client_cert.cert_pem,
                                    client_cert.key_pem))
    expect_failure(server, peer, ("unknown ca",))


def test_identity_with_nul_and_options_binds_on_the_name(pki: Pki) -> None:
    server = EapTlsServer(server_config(pki, TlsVersion.TLS1_3),
                          b"alice@example.com\x00networkid=x,nasid=y")
    assert run_pair(server, EapTlsPeer(peer_config(pki, TlsVersion.TLS1_3))).server \
        is Decision.SUCCESS


def test_identity_binding_rules(cert_factory: CertFactory) -> None:
    from ike.eap_tls.tls import identity_matches, server_name_matches

    ca = cert_factory.ca("rules-ca")
    machine = cert_factory.issue(ca, "pc1.corp.example", san_dns=["pc1.corp.example"],
                                 name="pc1")
    user = cert_factory.issue(ca, "Alice Example", san_email=["Alice@Example.com"],
                              name="alice-rules")
    wildcard = cert_factory.issue(ca, "wild", san_dns=["*.radius.example"], name="wild")
    assert identity_matches(machine.cert, "host/pc1.corp.example")
    assert identity_matches(machine.cert, "PC1.corp.example")
    assert not identity_matches(machine.cert, "host/pc2.corp.example")
    assert identity_matches(user.cert, "alice@example.com")
    assert identity_matches(user.cert, "Alice Example")
    assert not identity_matches(user.cert, "alice example")  # CN compared exactly
    assert not identity_matches(user.cert, "bob@example.com")
    assert server_name_matches(wildcard.cert, "a.radius.example")
    assert not server_name_matches(wildcard.cert, "a.b.radius.example")
    assert not server_name_matches(wildcard.cert, "wild")  # CN ignored when DNS SANs exist
    assert server_name_matches(machine.cert, "pc1.corp.example")
