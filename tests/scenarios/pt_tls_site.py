"""The scenarios over PT-TLS (RFC 6876), run as a script: ``gateway.pt_tls``'s server with
the gateway's validators (``nea.imv`` PolicyEngine from a policy file, evidence in an SQL
database through ``gateway.db``) and PT-TLS clients with SASL PLAIN and the collectors of
endpoint profiles, on loopback TLS, in one Twisted reactor.

    python tests/scenarios/pt_tls_site.py --cert C --key K --ca A --policy P --db URL \
        --stricter-policy P2 --client alice:compliant.toml --client bob:forwarding.toml \
        --remediate bob:remediated.toml --client carol:forbidden-port.toml

Steps, each result recorded per client in the JSON it prints:

1. every client connects, authenticates with SASL PLAIN and is assessed ("first");
2. ``--remediate NAME:PROFILE``: that client's collectors now report PROFILE and it sends
   CRETRY on the open session ("cretry");
3. ``--stricter-policy``: the validators reload that policy; the server sends SRETRY to every
   connection the reload affects ("sretry", and "affected" lists the identities);
4. the clients close their sessions; the evidence sink is flushed and closed.

``--bad-password NAME``: after step 1, NAME connects with a wrong SASL PLAIN password
("bad_password": what it received and why its session closed).

(nea-gateway has no PT-TLS listener; this is the issue's "gateway/pt_tls.py's server with the
same validators" form.)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from twisted.internet import defer, task
from twisted.internet import reactor as _reactor

from gateway.db import open_evidence_sink
from gateway.endpoint import load_profile
from gateway.pt_tls import (
    PtTlsClientFactory,
    PtTlsServerFactory,
    client_tls_options,
    connect_pt_tls,
    listen_pt_tls,
    server_tls_options,
)
from nea.imc import build_collectors
from nea.imv import PolicyEngine, build_validators
from nea.pb_tnc import PbTncConfig, Tncc, Tncs
from nea.pb_tnc.engine import ResultReceived
from nea.policy import load_policy
from nea.pt_tls import (
    ClientAuth,
    ClientAuthenticated,
    PbTncEventOccurred,
    PlainClient,
    PlainServer,
    PtTlsClientConfig,
    PtTlsServerConfig,
    SessionClosed,
    plain_verifier,
)

__all__ = ["main"]

reactor: Any = _reactor
PASSWORD = "pt-tls-pw"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class Client:
    """One PT-TLS client: its protocol (once connected) and the results it received."""

    def __init__(self, name: str, profile: Path) -> None:
        self.name = name
        self.profile = profile
        self.collectors = build_collectors(load_profile(profile))
        self.proto: Any = None
        self.results: list[str] = []
        self.closed: str | None = None

    def make_tncc(self) -> Tncc:
        return Tncc(self.collectors, config=PbTncConfig(full_duplex=True, close_after_result=False))

    def on_event(self, proto: Any, event: Any) -> None:
        self.proto = proto
        if isinstance(event, PbTncEventOccurred) and isinstance(event.event, ResultReceived):
            rec = event.event.recommendation
            self.results.append(rec.name if rec is not None else "NONE")
        elif isinstance(event, SessionClosed):
            self.closed = event.reason


def _wait(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> defer.Deferred[None]:
    @defer.inlineCallbacks
    def loop() -> Generator[Any, Any, None]:
        waited = 0.0
        while not pred():
            if waited > timeout:
                raise TimeoutError(what)
            yield task.deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    d: defer.Deferred[None] = loop()
    return d


def _plain(name: str, password: str = PASSWORD) -> Callable[[], PlainClient]:
    return lambda: PlainClient(name, password)


def _has_results(client: Client, count: int) -> Callable[[], bool]:
    return lambda: len(client.results) >= count


@defer.inlineCallbacks
def scenario(args: argparse.Namespace, out: dict[str, Any]) -> Generator[Any, Any, None]:
    sink = open_evidence_sink(args.db)
    policy = load_policy(args.policy)
    sink.sync_policy(policy)
    engine = PolicyEngine(policy, clock=_now, sink=sink)
    validators = build_validators(engine)
    ids = itertools.count(1)
    servers: dict[int, Any] = {}

    def make_tncs() -> Tncs:
        return Tncs(validators, connection_id=next(ids), config=PbTncConfig(full_duplex=True))

    def on_server_event(proto: Any, event: Any) -> None:
        cid = proto.engine.tncs.connection_id
        servers[cid] = proto
        if isinstance(event, ClientAuthenticated):
            engine.open_connection(cid, identity=event.identity)
            sink.bind_address(cid, proto.transport.getPeer().host)

    clients = [Client(n, Path(p)) for n, p in (c.split(":", 1) for c in args.client)]
    users = {c.name: PASSWORD for c in clients}
    factory = PtTlsServerFactory(
        make_tncs,
        PtTlsServerConfig(ClientAuth.SASL, {"PLAIN": lambda: PlainServer(plain_verifier(users))}),
        on_event=on_server_event,
        idle_timeout=60,
    )
    options = server_tls_options(
        Path(args.cert).read_bytes(), Path(args.key).read_bytes(), [Path(args.ca).read_bytes()]
    )
    port: Any = listen_pt_tls(reactor, factory, options, port=0, interface="127.0.0.1")
    ca = [Path(args.ca).read_bytes()]
    try:
        # 1. first assessments
        for c in clients:
            cf = PtTlsClientFactory(
                c.make_tncc,
                PtTlsClientConfig((_plain(c.name),)),
                on_event=c.on_event,
                idle_timeout=60,
            )
            connect_pt_tls(reactor, "127.0.0.1", cf, client_tls_options("gw.test", ca),
                           port=port.getHost().port).addErrback(lambda f: None)
        yield _wait(lambda: all(c.results or c.closed for c in clients), "first assessments")
        for c in clients:
            out[c.name] = {"first": c.results[0] if c.results else None}
        # a client with a wrong SASL PLAIN password is refused before any assessment
        if args.bad_password:
            bad = Client(args.bad_password, clients[0].profile)
            cf = PtTlsClientFactory(
                bad.make_tncc,
                PtTlsClientConfig((_plain(bad.name, "wrong-" + PASSWORD),)),
                on_event=bad.on_event,
                idle_timeout=60,
            )
            connect_pt_tls(reactor, "127.0.0.1", cf, client_tls_options("gw.test", ca),
                           port=port.getHost().port).addErrback(lambda f: None)
            yield _wait(lambda: bad.closed is not None, "refused client closed")
            out["bad_password"] = {"results": bad.results, "closed": bad.closed}
        # 2. CRETRY after remediation
        for spec in args.remediate:
            name, profile = spec.split(":", 1)
            (c,) = [c for c in clients if c.name == name]
            facts = load_profile(profile)
            for col in c.collectors:
                col.facts = facts
            c.proto.engine.request_retry()
            c.proto._flush()
            yield _wait(_has_results(c, 2), f"CRETRY result of {name}")
            out[name]["cretry"] = c.results[1]
        # 3. SRETRY after a policy change
        if args.stricter_policy:
            stricter = load_policy(args.stricter_policy)
            affected = engine.reload(stricter)
            sink.sync_policy(stricter)
            out["affected"] = sorted(
                str(servers[cid].engine.client_identity)
                for cid in affected if cid in servers and not servers[cid].engine.closed
            )
            before = {c.name: len(c.results) for c in clients}
            for cid in affected:
                proto = servers.get(cid)
                if proto is not None and not proto.engine.closed:
                    proto.engine.request_retry()
                    proto._flush()
            live = [c for c in clients if c.closed is None]
            yield _wait(lambda: all(len(c.results) > before[c.name] for c in live
                                    if c.name in out["affected"]), "SRETRY results")
            for c in live:
                if len(c.results) > before[c.name]:
                    out[c.name]["sretry"] = c.results[-1]
        # 4. close
        for c in clients:
            if c.closed is None and c.proto is not None:
                c.proto.engine.close()
                c.proto._flush()
        yield _wait(lambda: all(c.closed is not None for c in clients), "sessions closed")
        yield _wait(lambda: all(s.engine.closed for s in servers.values()), "server side closed")
        for c in clients:
            out[c.name]["closed"] = c.closed
    finally:
        yield port.stopListening()
        sink.close(timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--stricter-policy")
    p.add_argument("--db", required=True)
    p.add_argument("--client", action="append", default=[], help="NAME:PROFILE")
    p.add_argument("--remediate", action="append", default=[], help="NAME:PROFILE")
    p.add_argument("--bad-password", metavar="NAME",
                   help="also connect as NAME (a known user) with a wrong password")
    args = p.parse_args(argv)
    out: dict[str, Any] = {}
    status: list[int] = [1]

    def done(_: Any) -> None:
        status[0] = 0

    def failed(f: Any) -> None:
        out["error"] = f.getTraceback()

    d = scenario(args, out)
    d.addCallbacks(done, failed)
    d.addBoth(lambda _: reactor.callLater(0, reactor.stop))
    reactor.callLater(90, reactor.stop)
    reactor.run()
    print(json.dumps(out))
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
