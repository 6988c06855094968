"""gateway.pt_tls: the Twisted adapter with StringTransport (no sockets), and our client
against our server over real TLS on a random loopback port (two subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from OpenSSL import crypto
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from gateway.pt_tls import (
    PtTlsClientFactory,
    PtTlsServerFactory,
    certificate_identity,
    client_tls_options,
    server_tls_options,
)
from nea.pb_tnc import AccessRecommendation, PbTncConfig, Tncc, Tncs
from nea.pt_tls import (
    ClientAuth,
    ClientAuthenticated,
    FrameParser,
    PlainServer,
    PtTlsServerConfig,
    SessionClosed,
    VersionRequest,
    decode_value,
    encode_message,
    plain_verifier,
)
from tests.harness.certs import CertFactory, Issued
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, command_collector

ROOT = Path(__file__).resolve().parents[2]


class TlsStringTransport(StringTransport):
    """StringTransport that reports a client certificate, like a TLS transport would."""

    def __init__(self, cert: Issued | None) -> None:
        super().__init__()
        self._cert = cert

    def getPeerCertificate(self) -> Any:
        if self._cert is None:
            return None
        return crypto.X509.from_cryptography(self._cert.cert)


def _server_factory(mode: ClientAuth, events: list[Any]) -> PtTlsServerFactory:
    sasl = {"PLAIN": lambda: PlainServer(plain_verifier({"alice": "pw"}))}
    return PtTlsServerFactory(
        lambda: Tncs([CommandValidator()], config=PbTncConfig(full_duplex=True)),
        PtTlsServerConfig(mode, sasl if mode is not ClientAuth.NONE else {}),
        on_event=lambda proto, ev: events.append(ev),
        clock=Clock(),
    )


def _pump(server_t: StringTransport, server_p: Any, client_t: StringTransport,
          client_p: Any) -> None:
    for _ in range(50):
        a, b = client_t.value(), server_t.value()
        client_t.clear()
        server_t.clear()
        if not a and not b:
            return
        if a and not server_t.disconnecting:
            server_p.dataReceived(a)
        if b and not client_t.disconnecting:
            client_p.dataReceived(b)


@pytest.fixture
def pki(cert_factory: CertFactory) -> tuple[Issued, Issued, Issued]:
    ca = cert_factory.ca("pt-tls-ca")
    server = cert_factory.issue(ca, "gw.test", san_dns=["gw.test"], eku=("serverAuth",))
    client = cert_factory.issue(ca, "alice", san_email=["alice@example.com"],
                                eku=("clientAuth",))
    return ca, server, client


def test_adapter_with_string_transports(pki: tuple[Issued, Issued, Issued]) -> None:
    _, _, client_cert = pki
    events: list[Any] = []
    sfactory = _server_factory(ClientAuth.TLS, events)
    server_p = sfactory.buildProtocol(None)
    server_t = TlsStringTransport(client_cert)
    server_p.makeConnection(server_t)
    server_p.handshakeCompleted()
    cfactory = PtTlsClientFactory(lambda: Tncc([command_collector("isolate")]), clock=Clock())
    client_p = cfactory.buildProtocol(None)
    client_t = StringTransport()
    client_p.makeConnection(client_t)
    client_p.handshakeCompleted()  # sends the Version Request
    frames = FrameParser().feed(client_t.value())
    assert [decode_value(f) for f in frames] == [VersionRequest()]
    _pump(server_t, server_p, client_t, client_p)
    assert server_t.disconnecting and client_t.disconnecting
    auth = [e for e in events if isinstance(e, ClientAuthenticated)]
    assert auth == [ClientAuthenticated("alice@example.com", "tls")]
    assert server_p.engine.recommendation is AccessRecommendation.QUARANTINED
    results: list[Any] = []
    cfactory.done.addCallback(results.append)
    client_p.connectionLost()
    assert results and results[0].recommendation is AccessRecommendation.QUARANTINED


def test_adapter_without_certificate_closes(pki: tuple[Issued, Issued, Issued]) -> None:
    events: list[Any] = []
    server_p = _server_factory(ClientAuth.TLS, events).buildProtocol(None)
    server_t = TlsStringTransport(None)
    server_p.makeConnection(server_t)
    server_p.dataReceived(encode_message(VersionRequest(), 0))  # engine built on first data
    assert server_t.disconnecting
    assert any(isinstance(e, SessionClosed) for e in events)


def test_adapter_garbage_gets_pt_tls_error() -> None:
    events: list[Any] = []
    server_p = _server_factory(ClientAuth.NONE, events).buildProtocol(None)
    server_t = StringTransport()
    server_p.makeConnection(server_t)
    server_p.handshakeCompleted()
    server_p.dataReceived(b"\x00" * 8 + b"\x00\x00\x00\x01" + b"\x00" * 4)  # length 1
    (frame,) = FrameParser().feed(server_t.value())
    assert decode_value(frame).error_code == 1  # type: ignore[union-attr]
    assert server_t.disconnecting
    server_p.connectionLost()


def test_idle_connection_is_dropped() -> None:
    events: list[Any] = []
    clock = Clock()
    sasl = {"PLAIN": lambda: PlainServer(plain_verifier({"alice": "pw"}))}
    factory = PtTlsServerFactory(
        lambda: Tncs([CommandValidator()]), PtTlsServerConfig(ClientAuth.SASL, sasl),
        on_event=lambda proto, ev: events.append(ev), idle_timeout=30, clock=clock,
    )
    server_p = factory.buildProtocol(None)
    server_t = StringTransport()
    server_p.makeConnection(server_t)
    server_p.handshakeCompleted()
    clock.advance(20)
    server_p.dataReceived(encode_message(VersionRequest(), 0))  # activity re-arms the timer
    clock.advance(20)
    assert not server_t.disconnecting
    assert not any(isinstance(e, SessionClosed) for e in events)
    clock.advance(11)
    assert server_t.disconnecting  # aborted
    assert [e.reason for e in events if isinstance(e, SessionClosed)] == ["idle timeout"]
    server_p.connectionLost()
    assert not clock.getDelayedCalls()


def test_certificate_identity(pki: tuple[Issued, Issued, Issued]) -> None:
    ca, server, client = pki
    assert certificate_identity(client.cert) == "alice@example.com"
    assert certificate_identity(server.cert) == "gw.test"
    assert certificate_identity(ca.cert) == "pt-tls-ca"


def test_tls_options_build(pki: tuple[Issued, Issued, Issued]) -> None:
    ca, server, client = pki
    assert server_tls_options(server.chain_pem, server.key_pem, [ca.cert_pem]) is not None
    assert client_tls_options("gw.test", [ca.cert_pem], cert_pem=client.cert_pem,
                              key_pem=client.key_pem) is not None


# --------------------------------------------------------------------------- real sockets


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.gateway.pt_tls_peer", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _loopback(pki: tuple[Issued, Issued, Issued], server_args: list[str],
              client_args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    ca, server, _ = pki
    srv = _spawn("server", "--cert", str(server.chain_path), "--key", str(server.key_path),
                 "--ca", str(ca.cert_path), *server_args)
    try:
        assert srv.stdout is not None
        line = srv.stdout.readline()
        assert line.startswith("PORT "), (line, srv.stderr.read() if srv.stderr else "")
        port = line.split()[1]
        cli = _spawn("client", "--port", port, "--ca", str(ca.cert_path), *client_args)
        cout, cerr = cli.communicate(timeout=60)
        sout, _serr = srv.communicate(timeout=60)
    finally:
        srv.kill()
    assert cli.returncode == 0, cerr
    return json.loads(sout.strip().splitlines()[-1]), json.loads(cout.strip().splitlines()[-1])


def test_loopback_sasl_plain(pki: tuple[Issued, Issued, Issued]) -> None:
    server, client = _loopback(pki, ["--auth", "sasl", "--user", "alice:pw"],
                               ["--user", "alice:pw", "--command", "isolate"])
    assert server["identity"] == "alice" and server["method"] == "sasl:PLAIN"
    assert server["recommendation"] == client["recommendation"] == "QUARANTINED"
    assert client["authenticated"] is True


def test_loopback_client_certificate(pki: tuple[Issued, Issued, Issued]) -> None:
    _, _, cert = pki
    server, client = _loopback(pki, ["--auth", "tls", "--require-cert"],
                               ["--cert", str(cert.cert_path), "--key", str(cert.key_path)])
    assert server["identity"] == "alice@example.com" and server["method"] == "tls"
    assert server["recommendation"] == client["recommendation"] == "ALLOWED"


def _client_only(pki: tuple[Issued, Issued, Issued], server_args: list[str],
                 client_args: list[str], ca_path: Path | None = None) -> dict[str, Any]:
    ca, server, _ = pki
    srv = _spawn("server", "--cert", str(server.chain_path), "--key", str(server.key_path),
                 "--ca", str(ca.cert_path), *server_args)
    try:
        assert srv.stdout is not None
        port = srv.stdout.readline().split()[1]
        cli = _spawn("client", "--port", port, "--ca", str(ca_path or ca.cert_path),
                     *client_args)
        cout, cerr = cli.communicate(timeout=60)
    finally:
        srv.kill()
        srv.communicate()
    assert cli.returncode == 0, cerr
    result: dict[str, Any] = json.loads(cout.strip().splitlines()[-1])
    return result


def test_loopback_missing_client_certificate_is_refused(
    pki: tuple[Issued, Issued, Issued]
) -> None:
    client = _client_only(pki, ["--auth", "tls", "--require-cert"], [])
    assert client.get("recommendation") is None
    assert not client.get("authenticated")


def test_loopback_untrusted_server_is_refused(pki: tuple[Issued, Issued, Issued],
                                              cert_factory: CertFactory) -> None:
    other = cert_factory.ca("other-ca")
    client = _client_only(pki, ["--auth", "none"], [], ca_path=other.cert_path)
    assert client.get("recommendation") is None
    assert not client.get("authenticated")
