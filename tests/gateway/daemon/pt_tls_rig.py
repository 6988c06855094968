"""Shared by the daemon PT-TLS tests: a PT-TLS client (``gateway.pt_tls``, real TLS on
loopback) that records what happened to it, and the glue to run the daemon's ``[pt_tls]``
front-end in a subprocess (one Twisted reactor per process).

The test side calls :func:`run_script` with a script (``python -c``) that imports the
subprocess side from here::

    from tests.gateway.daemon.pt_tls_rig import PtTlsTestClient, run, start_gateway, wait

    @defer.inlineCallbacks
    def main(args, out):
        gw = start_gateway(args["config"])
        ...

    run(main)

``run`` prints ``out`` as JSON on the last line (with ``error`` holding a traceback when
``main`` failed); :func:`run_script` returns it.  Twisted is only imported in the subprocess.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.harness.certs import CertFactory, Issued

__all__ = [
    "PASSWORD",
    "PtTlsTestClient",
    "ServerEvents",
    "daemon_config",
    "free_port",
    "run",
    "run_script",
    "start_gateway",
    "wait",
]


# --------------------------------------------------------------------------- test side

PASSWORD = "pt-tls-pw"
"""The SASL PLAIN password of alice, bob and carol in :func:`daemon_config`."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_config(
    tmp_path: Path,
    cert_factory: CertFactory,
    policy: Path,
    *,
    client_auth: str = "sasl",
    extra: str = "",
    ca: Issued | None = None,
    authorities: bool = True,
) -> Path:
    """``gw.toml`` for a daemon with ``[pt_tls]`` on a free loopback port: server certificate
    ``gw.test`` from ``ca`` (else a new CA ``ca``), written to ``tmp_path / "ca.pem"`` and,
    unless ``authorities`` is false, the only ``[authorities]`` entry; SASL PLAIN users alice,
    bob and carol (password :data:`PASSWORD`); the ``os`` and ``ports`` validators with
    ``policy``; the evidence database ``tmp_path / "evidence.db"``.  ``extra`` goes into the
    ``[pt_tls]`` section."""
    if ca is None:
        ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    authority = f'[authorities.ca]\ncacert = "{tmp_path / "ca.pem"}"' if authorities else ""
    p = tmp_path / "gw.toml"
    p.write_text(
        f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = {free_port()}
port_nat_t = {free_port()}
[control]
socket = "ctl.sock"
[pt_tls]
listen = "127.0.0.1"
port = {free_port()}
client_auth = "{client_auth}"
certs = ["{gw.chain_path}"]
{extra}
[secrets.eap-users]
id = ["alice", "bob", "carol"]
secret = "{PASSWORD}"
[secrets.private-gw]
file = "{gw.key_path}"
{authority}
[nea]
validators = ["os", "ports"]
policy = "{policy}"
database = "sqlite:///{tmp_path / 'evidence.db'}"
"""
    )
    return p


def run_script(script: str, args: dict[str, Any], cwd: Path, timeout: float = 150) -> Any:
    """Run ``script`` with ``args`` (JSON in argv[1]); its JSON result (no ``error`` in it)."""
    from tests.scenarios.scenario_rig import ENV

    r = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        capture_output=True, text=True, env=ENV, timeout=timeout, check=False, cwd=cwd,
    )  # fmt: skip
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "error" not in out, f"{out.get('error')}\n{r.stderr[-3000:]}"
    return out


# --------------------------------------------------------------------------- subprocess side


class PtTlsTestClient:
    """One PT-TLS client connection and what became of it.

    ``sasl``: ``(user, password)`` for SASL PLAIN, or None (no SASL mechanism at all: if the
    server offers SASL the client fails with "no SASL mechanism in common").  ``cert``:
    ``(certificate PEM path, key PEM path)`` presented in the TLS handshake, or None.

    Afterwards: ``results`` (access recommendations received, oldest first), ``closed`` (the
    engine's close reason) or ``failed`` (no PT-TLS session at all: the connection or the
    client's side of the TLS handshake failed), ``authenticated`` (the server ended client
    authentication and data transport began), ``auth_failed`` (the client's
    AuthenticationFailed reasons, e.g. "no SASL mechanism in common" when the server wants SASL
    from a client without any).
    """

    def __init__(
        self,
        name: str,
        profile: str,
        ca: str,
        *,
        sasl: Sequence[str] | None = None,
        cert: Sequence[str] | None = None,
        server_name: str = "gw.test",
    ) -> None:
        from gateway.endpoint import load_profile
        from nea.imc import build_collectors

        self.name = name
        self.ca = ca
        self.sasl = tuple(sasl) if sasl is not None else None
        self.cert = tuple(cert) if cert is not None else None
        self.server_name = server_name
        self.collectors = build_collectors(load_profile(profile))
        self.proto: Any = None
        self.results: list[str] = []
        self.closed: str | None = None
        self.failed: str | None = None
        self.authenticated = False
        self.auth_failed: list[str] = []

    @property
    def done(self) -> bool:
        """Closed or failed (nothing more will happen)."""
        return self.closed is not None or self.failed is not None

    def make_tncc(self) -> Any:
        from nea.pb_tnc import PbTncConfig, Tncc

        return Tncc(self.collectors, config=PbTncConfig(full_duplex=True, close_after_result=False))

    def on_event(self, proto: Any, event: Any) -> None:
        from nea.pb_tnc.engine import ResultReceived
        from nea.pt_tls import (
            AuthenticationComplete,
            AuthenticationFailed,
            PbTncEventOccurred,
            SessionClosed,
        )

        self.proto = proto
        if isinstance(event, PbTncEventOccurred) and isinstance(event.event, ResultReceived):
            rec = event.event.recommendation
            self.results.append(rec.name if rec is not None else "NONE")
        elif isinstance(event, AuthenticationComplete):
            self.authenticated = True
        elif isinstance(event, AuthenticationFailed):
            self.auth_failed.append(event.reason)
        elif isinstance(event, SessionClosed):
            self.closed = event.reason

    def connect(self, port: int) -> None:
        from twisted.internet import reactor

        from gateway.pt_tls import PtTlsClientFactory, client_tls_options, connect_pt_tls
        from nea.pt_tls import PlainClient, PtTlsClientConfig

        mechanisms: tuple[Callable[[], Any], ...] = ()
        if self.sasl is not None:
            user, password = self.sasl
            mechanisms = (lambda: PlainClient(user, password),)
        cf = PtTlsClientFactory(
            self.make_tncc, PtTlsClientConfig(mechanisms), on_event=self.on_event, idle_timeout=60
        )
        cert_pem = key_pem = None
        if self.cert is not None:
            cert_pem, key_pem = (Path(p).read_bytes() for p in self.cert)
        options = client_tls_options(
            self.server_name, [Path(self.ca).read_bytes()], cert_pem=cert_pem, key_pem=key_pem
        )

        def failed(f: Any) -> None:
            self.failed = f.getErrorMessage() or f.type.__name__

        connect_pt_tls(reactor, "127.0.0.1", cf, options, port=port).addErrback(failed)

    def close(self) -> None:
        """End an open session (CLOSE batch), if there is one."""
        if self.closed is None and self.proto is not None and self.proto.engine is not None:
            self.proto.engine.close()
            self.proto._flush()

    def report(self) -> dict[str, Any]:
        return {
            "results": list(self.results),
            "closed": self.closed,
            "failed": self.failed,
            "authenticated": self.authenticated,
            "auth_failed": list(self.auth_failed),
        }


def wait(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> Any:
    """A Deferred firing once ``pred()`` holds (polled every 50 ms); TimeoutError after
    ``timeout`` seconds."""
    from twisted.internet import defer, reactor, task

    @defer.inlineCallbacks
    def poll() -> Any:
        waited = 0.0
        while not pred():
            if waited > timeout:
                raise TimeoutError(what)
            yield task.deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    return poll()


def start_gateway(config_path: str) -> Any:
    """The daemon as ``nea-gateway run`` builds it (evidence database, Gateway) with its
    ``[pt_tls]`` listener started; ``gw.pt_tls.port.getHost().port`` is where it listens."""
    from twisted.internet import reactor

    from gateway.daemon import Gateway, load_config
    from gateway.daemon.cli import _open_evidence
    from gateway.daemon.pt_tls import start_pt_tls
    from gateway.daemon.service import Dataplane

    config = load_config(config_path)
    sink = _open_evidence(config)
    gw = Gateway(
        config, reactor, config_path=Path(config_path), evidence_sink=sink, dataplane=Dataplane()
    )
    gw.pt_tls = start_pt_tls(gw, reactor)
    return gw


class ServerEvents:
    """What the daemon's PT-TLS front-end made of each connection, in order:
    ``["authenticated", identity, method]`` or ``["refused", reason]`` (a connection whose TLS
    handshake failed never gets this far and leaves nothing)."""

    def __init__(self, front: Any) -> None:
        from nea.pt_tls import AuthenticationFailed, ClientAuthenticated

        self.events: list[list[str | None]] = []
        handler = front.factory.on_event

        def on_event(proto: Any, event: Any) -> None:
            if isinstance(event, ClientAuthenticated):
                self.events.append(["authenticated", event.identity, event.method])
            elif isinstance(event, AuthenticationFailed):
                self.events.append(["refused", event.reason])
            handler(proto, event)

        front.factory.on_event = on_event


def run(main: Callable[[dict[str, Any], dict[str, Any]], Any], timeout: float = 100) -> None:
    """Run ``main(args, out)`` (a Deferred) in the reactor, then print ``out`` as JSON."""
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    args = json.loads(sys.argv[1])
    out: dict[str, Any] = {}

    def failed(f: Any) -> None:
        out["error"] = f.getTraceback()

    d = main(args, out)
    d.addErrback(failed)
    d.addBoth(lambda _: reactor.callLater(0, reactor.stop))
    reactor.callLater(timeout, reactor.stop)
    reactor.run()
    print(json.dumps(out))
