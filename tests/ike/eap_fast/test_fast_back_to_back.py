"""Our EAP-FAST peer against our EAP-FAST server under ike.eap (no sockets): anonymous and
authenticated provisioning, PAC resumption (our own TLS 1.2 abbreviated handshake), inner
MS-CHAPv2 and GTC, PAC refresh, foreign/expired PACs, key rotation, crypto-binding tampering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ike.eap.method import Decision, Step
from ike.eap.methods import (
    GtcPeerMethod,
    MsChapV2PeerMethod,
    StaticPasswords,
    gtc_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap.packet import EapType
from ike.eap.peer import EapPeer
from ike.eap.server import EapServer
from ike.eap_fast import (
    EapFastPeer,
    EapFastServer,
    FastPeerConfig,
    FastServerConfig,
    PacKeyring,
    PacStore,
    Provisioning,
)
from ike.eap_tls import TlsPeerConfig, TlsServerConfig
from tests.harness.certs import CertFactory, Issued

PASSWORDS = StaticPasswords({"bob": "hello"})
A_ID = b"\x01" * 16


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issued, Issued]:
    factory = CertFactory(tmp_path_factory.mktemp("fast") / "certs")
    ca = factory.ca("ca", key_type="rsa", rsa_bits=2048)
    server = factory.issue(
        ca,
        "radius.test",
        san_dns=("radius.test",),
        eku=("serverAuth",),
        key_type="rsa",
        rsa_bits=2048,
    )
    return ca, server


def server_config(
    server: Issued,
    clock: Clock,
    keyring: PacKeyring | None = None,
    inner: str = "mschapv2",
    **kw: object,
) -> FastServerConfig:
    tls = TlsServerConfig(
        cert_chain_pem=server.chain_pem, key_pem=server.key_pem, require_client_cert=False
    )
    methods = {
        "mschapv2": ((EapType.MSCHAPV2, mschapv2_server_factory(PASSWORDS)),),
        "gtc": ((EapType.GTC, gtc_server_factory(password_check(PASSWORDS))),),
    }[inner]
    return FastServerConfig(
        tls=tls,
        a_id=A_ID,
        eap_methods=methods,
        password_lookup=PASSWORDS,
        keyring=keyring or PacKeyring(pac_lifetime=86400 * 30),
        clock=clock,
        **kw,
    )  # type: ignore[arg-type]


def peer_config(
    ca: Issued,
    store: PacStore,
    modes: Provisioning,
    inner: str = "mschapv2",
    password: str = "hello",
    **kw: object,
) -> FastPeerConfig:
    tls = TlsPeerConfig(ca_pems=(ca.cert_pem,), server_name="radius.test")
    factories: dict[str, tuple[tuple[int, Callable[[], object]], ...]] = {
        "mschapv2": ((EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"bob", password)),),
        "gtc": ((EapType.GTC, lambda: GtcPeerMethod(password)),),
    }
    return FastPeerConfig(
        tls=tls,
        identity=b"bob",
        eap_methods=factories[inner],  # type: ignore[arg-type]
        pac_store=store,
        provisioning=modes,
        password=password,
        **kw,
    )  # type: ignore[arg-type]


def run(sconf: FastServerConfig, pconf: FastPeerConfig) -> tuple[EapServer, EapPeer]:
    servers: list[EapFastServer] = []

    def factory(identity: bytes) -> EapFastServer:
        servers.append(EapFastServer(sconf, identity))
        return servers[-1]

    peers: list[EapFastPeer] = []

    def peer_factory() -> EapFastPeer:
        peers.append(EapFastPeer(pconf))
        return peers[-1]

    server = EapServer([(EapType.FAST, factory)])
    peer = EapPeer(b"anonymous", [(EapType.FAST, peer_factory)], idle_timeout=None)
    msg: bytes | None = server.start()
    for _ in range(60):
        assert msg is not None
        reply = peer.receive(msg)
        if server.done or reply is None:
            break
        msg = server.receive(reply)
        if server.done:
            assert msg is not None
            peer.receive(msg)
            break
    server.fast = servers  # type: ignore[attr-defined]
    peer.fast = peers  # type: ignore[attr-defined]
    return server, peer


def test_anonymous_provisioning_then_resumption(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    clock = Clock()
    sconf = server_config(srv, clock)
    store = PacStore()
    server, peer = run(sconf, peer_config(ca, store, Provisioning.ANONYMOUS))
    assert server.failed and len(store) == 1, server.failure_reason
    assert "anonymous provisioning complete" in (server.failure_reason or "")
    fast = server.fast[0]  # type: ignore[attr-defined]
    assert fast.anonymous and fast.pac_issued
    server, peer = run(sconf, peer_config(ca, store, Provisioning.ANONYMOUS))
    assert server.succeeded and peer.succeeded, server.failure_reason
    fast = server.fast[0]  # type: ignore[attr-defined]
    assert fast.resumed and fast.inner_identity == b"bob"
    assert server.msk is not None and server.msk == peer.msk and len(server.msk) == 64
    assert server.emsk == peer.emsk


def test_authenticated_provisioning_gets_keys_and_pac(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    sconf = server_config(srv, Clock())
    store = PacStore()
    server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))
    assert server.succeeded and peer.succeeded, server.failure_reason
    assert server.msk == peer.msk and len(store) == 1
    assert not server.fast[0].resumed  # type: ignore[attr-defined]
    server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))
    assert server.succeeded and server.fast[0].resumed  # type: ignore[attr-defined]
    assert server.msk == peer.msk


def test_gtc_inner(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    sconf = server_config(srv, Clock(), inner="gtc")
    store = PacStore()
    server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED, inner="gtc"))
    assert server.succeeded and peer.succeeded, server.failure_reason
    server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED, inner="gtc"))
    assert server.succeeded and server.fast[0].resumed  # type: ignore[attr-defined]
    assert server.msk == peer.msk


def test_wrong_password_fails(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    server, _peer = run(
        server_config(srv, Clock()),
        peer_config(ca, PacStore(), Provisioning.AUTHENTICATED, password="nope"),
    )
    assert server.failed and server.msk is None


def test_expired_and_foreign_pac_fall_back_to_provisioning(pki: tuple[Issued, Issued]) -> None:
    """RFC 4851 3.2.2: a PAC the server cannot use makes it run a full handshake; the peer
    (its resumption is our own TLS 1.2 code) goes on with it, checks the server certificate
    and gets a new PAC in the same conversation."""
    ca, srv = pki
    clock = Clock()
    sconf = server_config(srv, clock)
    store = PacStore()
    assert run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))[0].succeeded
    for label in ("expired", "foreign"):
        before = store.get(A_ID)
        if label == "expired":
            clock.now += 86400 * 31
        else:
            sconf = server_config(srv, clock)  # another server key: the PAC is foreign there
        server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))
        assert server.succeeded and peer.succeeded, (label, server.failure_reason)
        fast = server.fast[0]  # type: ignore[attr-defined]
        assert not fast.resumed and fast.pac_issued, label
        assert server.msk == peer.msk and server.emsk == peer.emsk
        assert store.get(A_ID) not in (None, before)
        server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))
        assert server.succeeded and server.fast[0].resumed  # type: ignore[attr-defined]


def test_refused_pac_fallback_checks_the_server(pki: tuple[Issued, Issued], tmp_path: Path) -> None:
    """The fallback is a full handshake: the server certificate is checked like any other
    (trust anchor, usage, name), and it is server-authenticated provisioning, so a peer that allows
    only anonymous provisioning refuses it.  A refused fallback drops the PAC."""
    ca, srv = pki
    factory = CertFactory(tmp_path / "certs")
    other_ca = factory.ca("other", key_type="rsa", rsa_bits=2048)
    stranger = factory.issue(
        other_ca,
        "radius.test",
        san_dns=("radius.test",),
        eku=("serverAuth",),
        key_type="rsa",
        rsa_bits=2048,
    )
    misnamed = factory.issue(
        ca,
        "evil.test",
        san_dns=("evil.test",),
        eku=("serverAuth",),
        key_type="rsa",
        rsa_bits=2048,
    )
    client_only = factory.issue(
        ca,
        "radius.test",
        san_dns=("radius.test",),
        eku=("clientAuth",),
        key_type="rsa",
        rsa_bits=2048,
        name="client-only",
    )
    cases = [
        (stranger, Provisioning.AUTHENTICATED, "issuer not among the trusted CAs"),
        (client_only, Provisioning.AUTHENTICATED, "not for TLS servers"),
        (misnamed, Provisioning.AUTHENTICATED, "does not match server name 'radius.test'"),
        (srv, Provisioning.ANONYMOUS, "full handshake instead of resuming"),
    ]
    for server_cert, modes, reason in cases:
        store = PacStore()
        clock = Clock()
        run(server_config(srv, clock), peer_config(ca, store, modes))  # provisioned
        assert len(store) == 1
        # a new server key: the PAC does not open, the server runs a full handshake
        server, peer = run(server_config(server_cert, clock), peer_config(ca, store, modes))
        reason_text = peer.fast[0].failure_reason or ""  # type: ignore[attr-defined]
        assert not server.succeeded and server.msk is None
        assert reason in reason_text, reason_text
        assert len(store) == 0


def test_key_rotation_keeps_old_pacs_until_expiry(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    clock = Clock()
    keyring = PacKeyring(pac_lifetime=86400 * 30)
    sconf = server_config(srv, clock, keyring)
    store = PacStore()
    assert run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))[0].succeeded
    old = store.get(A_ID)
    keyring.rotate(clock.now)
    server, _ = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))
    assert server.succeeded and server.fast[0].resumed  # type: ignore[attr-defined]
    assert old is not None
    clock.now += 86400 * 30 + 1
    keyring.prune(clock.now)
    assert len(keyring.key_ids) == 1


def test_pac_refresh_before_expiry(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    clock = Clock()
    sconf = server_config(srv, clock, pac_refresh=86400 * 10)
    store = PacStore()
    assert run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))[0].succeeded
    first = store.get(A_ID)
    clock.now += 86400 * 25  # five days left: refresh
    server, peer = run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))
    assert server.succeeded and peer.succeeded, server.failure_reason
    assert server.fast[0].resumed and server.fast[0].pac_issued  # type: ignore[attr-defined]
    assert store.get(A_ID) != first and server.msk == peer.msk


@pytest.mark.parametrize("side", ["server", "peer"])
def test_tampered_crypto_binding_fails(
    pki: tuple[Issued, Issued], side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, srv = pki
    cls = EapFastServer if side == "server" else EapFastPeer
    honest = cls._binding_mac

    def tampered(self: object, cmk: bytes, data: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in honest(self, cmk, data))  # type: ignore[arg-type]

    monkeypatch.setattr(cls, "_binding_mac", tampered)
    sconf = server_config(srv, Clock())
    pconf = peer_config(ca, PacStore(), Provisioning.AUTHENTICATED)
    server, peer = run(sconf, pconf)
    assert server.failed and not peer.succeeded
    assert server.msk is None


class _PostureServer:
    """Stand-in for PT-EAP (type 54): one round trip, no keys."""

    eap_type = 54

    def __init__(self, identity: bytes) -> None:
        self.identity = identity

    def start(self) -> bytes:
        return b"posture?"

    def receive(self, type_data: bytes) -> Step:
        ok = type_data == b"compliant"
        return Step(None, Decision.SUCCESS if ok else Decision.FAILURE)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    failure_reason = "not compliant"


class _PosturePeer:
    eap_type = 54
    failure_reason = None

    def __init__(self, answer: bytes = b"compliant") -> None:
        self.answer = answer

    def receive(self, type_data: bytes) -> Step:
        return Step(self.answer, Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None


@pytest.mark.parametrize("answer", [b"compliant", b"infected"])
def test_posture_method_chained_with_two_crypto_bindings(
    pki: tuple[Issued, Issued], answer: bytes
) -> None:
    ca, srv = pki
    sconf = server_config(srv, Clock(), posture=((54, _PostureServer),))
    store = PacStore()
    pconf = peer_config(ca, store, Provisioning.AUTHENTICATED)
    pconf = FastPeerConfig(
        tls=pconf.tls,
        identity=b"bob",
        eap_methods=(*pconf.eap_methods, (54, lambda: _PosturePeer(answer))),
        pac_store=store,
        provisioning=Provisioning.AUTHENTICATED,
    )
    server, peer = run(sconf, pconf)
    fast = server.fast[0]  # type: ignore[attr-defined]
    if answer == b"compliant":
        assert server.succeeded and peer.succeeded, server.failure_reason
        assert fast.completed_methods == [EapType.MSCHAPV2, 54]
        assert fast._chain.index == 2
        assert server.msk == peer.msk
        # Resumed: identity from the PAC-Opaque, then MS-CHAPv2 and posture again.
        server, peer = run(sconf, pconf)
        assert server.succeeded and server.fast[0].resumed  # type: ignore[attr-defined]
        assert server.fast[0].completed_methods == [EapType.MSCHAPV2, 54]  # type: ignore[attr-defined]
    else:
        assert server.failed and server.msk is None
        assert "not compliant" in (server.failure_reason or "")


def test_inner_nak_picks_the_next_method(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    tls = TlsServerConfig(
        cert_chain_pem=srv.chain_pem, key_pem=srv.key_pem, require_client_cert=False
    )
    sconf = FastServerConfig(
        tls=tls,
        a_id=A_ID,
        eap_methods=(
            (EapType.GTC, gtc_server_factory(password_check(PASSWORDS))),
            (EapType.MSCHAPV2, mschapv2_server_factory(PASSWORDS)),
        ),
        provisioning=Provisioning.AUTHENTICATED,
    )
    server, peer = run(sconf, peer_config(ca, PacStore(), Provisioning.AUTHENTICATED))
    assert server.succeeded and peer.succeeded, server.failure_reason
    assert server.fast[0].completed_methods == [EapType.MSCHAPV2]  # type: ignore[attr-defined]


def test_fragmented_messages_and_session_id(pki: tuple[Issued, Issued]) -> None:
    ca, srv = pki
    tls = TlsServerConfig(
        cert_chain_pem=srv.chain_pem,
        key_pem=srv.key_pem,
        require_client_cert=False,
        fragment_size=100,
        max_message=64 * 1024,
    )
    sconf = FastServerConfig(
        tls=tls,
        a_id=A_ID,
        eap_methods=((EapType.MSCHAPV2, mschapv2_server_factory(PASSWORDS)),),
        provisioning=Provisioning.AUTHENTICATED,
    )
    store = PacStore()
    pconf = FastPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,), server_name="radius.test", fragment_size=100),
        identity=b"bob",
        eap_methods=((EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"bob", "hello")),),
        pac_store=store,
    )
    for resumed in (False, True):
        servers: list[EapFastServer] = []
        peers: list[EapFastPeer] = []

        def sfactory(identity: bytes, servers: list[EapFastServer] = servers) -> EapFastServer:
            servers.append(EapFastServer(sconf, identity))
            return servers[-1]

        def pfactory(peers: list[EapFastPeer] = peers) -> EapFastPeer:
            peers.append(EapFastPeer(pconf))
            return peers[-1]

        server = EapServer([(EapType.FAST, sfactory)])
        peer = EapPeer(b"anonymous", [(EapType.FAST, pfactory)], idle_timeout=None)
        msg: bytes | None = server.start()
        while msg is not None and not peer.done:
            reply = peer.receive(msg)
            if reply is None:
                break
            msg = server.receive(reply)
        assert server.succeeded and peer.succeeded, server.failure_reason
        assert servers[0].resumed is resumed
        assert servers[0].session_id == peers[0].session_id is not None
        assert len(servers[0].session_id) == 65


JUNK = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda b: bytes([1]) + b, st.binary(max_size=64)),
    st.builds(lambda b: b"\x01\x16\x03\x03" + b, st.binary(max_size=64)),
)


def _exchange(
    sconf: FastServerConfig,
    pconf: FastPeerConfig,
    target: str,
    at: int,
    mutate: Callable[[bytes], bytes],
) -> None:
    server = EapFastServer(sconf, b"anonymous")
    peer = EapFastPeer(pconf)
    msg = server.start()
    for i in range(40):
        if target == "peer" and i == at:
            msg = mutate(msg)
        step = peer.receive(msg)
        assert isinstance(step, Step)
        if step.reply is None or step.decision is not Decision.CONTINUE:
            return
        reply = step.reply
        if target == "server" and i == at:
            reply = mutate(reply)
        answer = server.receive(reply)
        assert isinstance(answer, Step)
        if answer.decision is Decision.FAILURE:
            assert server.msk() is None
        if answer.reply is None or answer.decision is not Decision.CONTINUE:
            return
        msg = answer.reply


@pytest.fixture(scope="module")
def provisioned(pki: tuple[Issued, Issued]) -> tuple[FastServerConfig, PacStore]:
    """A server configuration and a peer store holding a PAC it issued."""
    ca, srv = pki
    sconf = server_config(srv, Clock())
    store = PacStore()
    assert run(sconf, peer_config(ca, store, Provisioning.AUTHENTICATED))[0].succeeded
    return sconf, store


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    resumed=st.booleans(),
    target=st.sampled_from(["server", "peer"]),
    at=st.integers(0, 8),
    junk=JUNK,
    flip=st.booleans(),
    where=st.integers(0, 10_000),
)
def test_junk_or_bit_flips_end_cleanly(
    pki: tuple[Issued, Issued],
    provisioned: tuple[FastServerConfig, PacStore],
    resumed: bool,
    target: str,
    at: int,
    junk: bytes,
    flip: bool,
    where: int,
) -> None:
    """Junk or a flipped bit at any step of a provisioning or a resumption ends in a clean
    Step (FAILURE without keys), never an exception."""
    ca, srv = pki
    if resumed:
        sconf, stored = provisioned
        store = PacStore()
        store.pacs = dict(stored.pacs)
    else:
        sconf, store = server_config(srv, Clock()), PacStore()
    pconf = peer_config(ca, store, Provisioning.AUTHENTICATED)

    def mutate(data: bytes) -> bytes:
        if flip and len(data) > 1:
            i = 1 + where % (len(data) - 1)
            return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1 :]
        return junk

    _exchange(sconf, pconf, target, at, mutate)
