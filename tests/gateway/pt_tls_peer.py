"""A PT-TLS server or client on real sockets for the loopback test (run as a subprocess).

``python -m tests.gateway.pt_tls_peer server --cert C --key K --ca A [--auth MODE]
[--require-cert] [--user NAME:PASSWORD]`` prints ``PORT <n>`` once listening on 127.0.0.1
(random port), serves one connection and prints a JSON line with what it saw.

``python -m tests.gateway.pt_tls_peer client --port N --ca A --command allow [--cert C --key K]
[--user NAME:PASSWORD]`` runs one assessment and prints a JSON line with its result.

Validators and collectors are the PB-TNC test fakes (strongSwan's Test IMC/IMV in miniature).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor

from gateway.pt_tls import (
    PtTlsClientFactory,
    PtTlsServerFactory,
    client_tls_options,
    connect_pt_tls,
    listen_pt_tls,
    server_tls_options,
)
from nea.pb_tnc import PbTncConfig, Tncc, Tncs
from nea.pt_tls import (
    ClientAuth,
    ClientAuthenticated,
    PlainClient,
    PlainServer,
    PtTlsClient,
    PtTlsClientConfig,
    PtTlsServerConfig,
    SessionClosed,
    plain_verifier,
)
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, command_collector

reactor: Any = _reactor


def _server(args: argparse.Namespace) -> int:
    users = dict(u.split(":", 1) for u in args.user)
    mode = ClientAuth(args.auth)
    sasl = {"PLAIN": lambda: PlainServer(plain_verifier(users))} if users else {}
    seen: dict[str, Any] = {}

    def on_event(proto: Any, event: Any) -> None:
        if isinstance(event, ClientAuthenticated):
            seen["identity"], seen["method"] = event.identity, event.method
        if isinstance(event, SessionClosed):
            engine = proto.engine
            seen["closed"] = event.reason
            seen["recommendation"] = engine.recommendation.name if engine.recommendation else None
            print(json.dumps(seen), flush=True)
            reactor.callLater(0.1, reactor.stop)

    factory = PtTlsServerFactory(
        lambda: Tncs([CommandValidator()], config=PbTncConfig(full_duplex=True)),
        PtTlsServerConfig(mode, sasl),
        on_event=on_event,
    )
    options = server_tls_options(
        Path(args.cert).read_bytes(), Path(args.key).read_bytes(), [Path(args.ca).read_bytes()],
        require_client_cert=args.require_cert,
    )
    port = listen_pt_tls(reactor, factory, options, port=0, interface="127.0.0.1")
    print(f"PORT {port.getHost().port}", flush=True)
    reactor.callLater(30, reactor.stop)
    reactor.run()
    return 0


def _client(args: argparse.Namespace) -> int:
    mechanisms = []
    if args.user:
        name, password = args.user[0].split(":", 1)
        mechanisms.append(lambda: PlainClient(name, password))
    factory = PtTlsClientFactory(
        lambda: Tncc([command_collector(args.command)], config=PbTncConfig(full_duplex=True)),
        PtTlsClientConfig(tuple(mechanisms)),
    )
    cert = Path(args.cert).read_bytes() if args.cert else None
    key = Path(args.key).read_bytes() if args.key else None
    options = client_tls_options("gw.test", [Path(args.ca).read_bytes()],
                                 cert_pem=cert, key_pem=key)
    out: dict[str, Any] = {}

    def done(engine: PtTlsClient) -> None:
        out["recommendation"] = engine.recommendation.name if engine.recommendation else None
        out["closed"] = engine.close_reason
        out["authenticated"] = engine.authenticated

    def failed(reason: Any) -> None:
        out["error"] = reason.getErrorMessage()

    d = connect_pt_tls(reactor, "127.0.0.1", factory, options, port=args.port)
    d.addCallbacks(done, failed)
    d.addBoth(lambda _: reactor.callLater(0, reactor.stop))
    reactor.callLater(30, reactor.stop)
    reactor.run()
    print(json.dumps(out), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--auth", default="tls-or-sasl")
    s.add_argument("--require-cert", action="store_true")
    s.add_argument("--user", action="append", default=[])
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--cert")
    c.add_argument("--key")
    c.add_argument("--command", default="allow")
    c.add_argument("--user", action="append", default=[])
    args = p.parse_args(argv)
    return _server(args) if args.role == "server" else _client(args)


if __name__ == "__main__":
    sys.exit(main())
