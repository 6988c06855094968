"""The daemon's ``[pt_tls]`` listener (RFC 6876): ``gateway.daemon.pt_tls.start_pt_tls`` on a
:class:`gateway.daemon.Gateway` built from a configuration file, PT-TLS clients with SASL PLAIN
(users from ``[secrets.eap-*]``) on loopback TLS, the ``[nea]`` validators and evidence
database.  The reactor runs in a subprocess (one reactor per process):

* compliant -> allow, IP forwarding -> isolate, telnet port -> no access;
* a wrong SASL PLAIN password is refused before any assessment;
* the isolated client remediates and sends CRETRY -> allow;
* the policy file gets stricter and the daemon reloads: SRETRY goes to the affected live
  sessions at once (full duplex) and they are isolated;
* every assessment is a row in the evidence database (``nea-report sessions``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon.config import ConfigError, parse_config
from tests.harness.certs import CertFactory
from tests.scenarios.scenario_rig import ENV, POLICY, PROFILES, nea_report, write_profile

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    r'''
    import json, sys
    from pathlib import Path
    from twisted.internet import defer, task, reactor
    from gateway.daemon import Gateway, load_config
    from gateway.daemon.cli import _open_evidence
    from gateway.daemon.pt_tls import start_pt_tls
    from gateway.daemon.service import Dataplane
    from gateway.endpoint import load_profile
    from gateway.pt_tls import PtTlsClientFactory, client_tls_options, connect_pt_tls
    from nea.imc import build_collectors
    from nea.pb_tnc import PbTncConfig, Tncc
    from nea.pb_tnc.engine import ResultReceived
    from nea.pt_tls import PbTncEventOccurred, PlainClient, PtTlsClientConfig, SessionClosed

    args = json.loads(sys.argv[1])
    out = {}

    class Client:
        def __init__(self, name, password, profile):
            self.name, self.password = name, password
            self.collectors = build_collectors(load_profile(profile))
            self.proto, self.results, self.closed = None, [], None

        def make_tncc(self):
            return Tncc(self.collectors,
                        config=PbTncConfig(full_duplex=True, close_after_result=False))

        def on_event(self, proto, event):
            self.proto = proto
            if isinstance(event, PbTncEventOccurred) and isinstance(event.event, ResultReceived):
                rec = event.event.recommendation
                self.results.append(rec.name if rec is not None else "NONE")
            elif isinstance(event, SessionClosed):
                self.closed = event.reason

        def connect(self, port):
            cf = PtTlsClientFactory(
                self.make_tncc,
                PtTlsClientConfig((lambda: PlainClient(self.name, self.password),)),
                on_event=self.on_event, idle_timeout=60)
            ca = [Path(args["ca"]).read_bytes()]
            connect_pt_tls(reactor, "127.0.0.1", cf, client_tls_options("gw.test", ca),
                           port=port).addErrback(lambda f: None)

    @defer.inlineCallbacks
    def wait(pred, what, timeout=30.0):
        waited = 0.0
        while not pred():
            if waited > timeout:
                raise TimeoutError(what)
            yield task.deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    @defer.inlineCallbacks
    def run():
        config = load_config(args["config"])
        sink = _open_evidence(config)
        gw = Gateway(config, reactor, config_path=Path(args["config"]), evidence_sink=sink,
                     dataplane=Dataplane())
        gw.pt_tls = start_pt_tls(gw, reactor)
        port = gw.pt_tls.port.getHost().port
        try:
            clients = [Client(n, args["password"], p) for n, p in args["clients"]]
            for c in clients:
                c.connect(port)
            yield wait(lambda: all(c.results or c.closed for c in clients), "first")
            for c in clients:
                out[c.name] = {"first": c.results[0] if c.results else None}
            bad = Client(clients[0].name, "wrong-" + args["password"], args["clients"][0][1])
            bad.connect(port)
            yield wait(lambda: bad.closed is not None, "refused")
            out["bad_password"] = {"results": bad.results, "closed": bad.closed}
            # CRETRY from the remediated client on its open session
            name, profile = args["remediate"]
            (c,) = [c for c in clients if c.name == name]
            for col in c.collectors:
                col.facts = load_profile(profile)
            c.proto.engine.request_retry()
            c.proto._flush()
            yield wait(lambda: len(c.results) >= 2, "CRETRY")
            out[name]["cretry"] = c.results[1]
            # a stricter policy: reload sends SRETRY to the affected sessions
            Path(args["policy"]).write_text(Path(args["stricter"]).read_text())
            before = {c.name: len(c.results) for c in clients}
            result = gw.reload()
            out["reload"] = result["reassess"]
            affected = {p["identity"] for p in result["reassess"]["pt_tls"]}
            yield wait(lambda: all(len(c.results) > before[c.name] for c in clients
                                   if c.name in affected), "SRETRY")
            for c in clients:
                if len(c.results) > before[c.name]:
                    out[c.name]["sretry"] = c.results[-1]
            out["status"] = gw.stats_json()["pt_tls"]
            for c in clients:
                if c.closed is None and c.proto is not None:
                    c.proto.engine.close()
                    c.proto._flush()
            yield wait(lambda: all(c.closed is not None for c in clients), "closed")
            yield wait(lambda: not gw.pt_tls.sessions, "server sessions closed")
        finally:
            gw._close_resources()

    def failed(f):
        out["error"] = f.getTraceback()

    d = run()
    d.addErrback(failed)
    d.addBoth(lambda _: reactor.callLater(0, reactor.stop))
    reactor.callLater(100, reactor.stop)
    reactor.run()
    print(json.dumps(out))
    '''
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, cert_factory: CertFactory, policy: Path, extra: str = "") -> Path:
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    p = tmp_path / "gw.toml"
    p.write_text(
        f"""
dataplane = "none"
[ike]
listen = "127.0.0.1"
port = {_free_port()}
port_nat_t = {_free_port()}
[control]
socket = "ctl.sock"
[pt_tls]
listen = "127.0.0.1"
port = {_free_port()}
client_auth = "sasl"
certs = ["{gw.chain_path}"]
{extra}
[secrets.eap-users]
id = ["alice", "bob", "carol"]
secret = "pt-tls-pw"
[secrets.private-gw]
file = "{gw.key_path}"
[authorities.ca]
cacert = "{tmp_path / 'ca.pem'}"
[nea]
validators = ["os", "ports"]
policy = "{policy}"
database = "sqlite:///{tmp_path / 'evidence.db'}"
"""
    )
    return p


@pytest.mark.slow
def test_daemon_pt_tls_assess_cretry_sretry(cert_factory: CertFactory, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.read_text())
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(
        POLICY.read_text()
        + '\n[policies.no-ssh]\ntype = "TCPBL"\nargument = "22"\nrec_fail = "isolate"\n'
        + '\n[[enforcements]]\npolicy = "no-ssh"\ngroup = "default"\n'
    )
    remediated = write_profile(tmp_path / "remediated.toml", "forwarding", forwarding=False)
    config = _config(tmp_path, cert_factory, policy)
    args = {
        "config": str(config),
        "ca": str(tmp_path / "ca.pem"),
        "password": "pt-tls-pw",
        "policy": str(policy),
        "stricter": str(stricter),
        "clients": [
            ["alice", str(PROFILES / "compliant.toml")],
            ["bob", str(PROFILES / "forwarding.toml")],
            ["carol", str(PROFILES / "forbidden-port.toml")],
        ],
        "remediate": ["bob", str(remediated)],
    }
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        capture_output=True, text=True, env=ENV, timeout=150, check=False, cwd=tmp_path,
    )
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    assert "error" not in out, out.get("error")
    assert [out[n]["first"] for n in ("alice", "bob", "carol")] == [
        "ALLOWED", "QUARANTINED", "DENIED"], out
    assert out["bad_password"]["results"] == [], out
    assert out["bad_password"]["closed"] == "server aborted SASL PLAIN", out
    assert out["bob"]["cretry"] == "ALLOWED", out
    # the reload's SRETRY: port 22 is open on every profile
    sretried = {p["identity"] for p in out["reload"]["pt_tls"]}
    assert {"alice", "bob"} <= sretried, out
    assert out["reload"]["ike"] == [], out
    assert out["alice"]["sretry"] == "QUARANTINED", out
    assert out["bob"]["sretry"] == "QUARANTINED", out
    assert out["status"]["client_auth"] == "sasl"
    assert {s["identity"] for s in out["status"]["sessions"]} >= {"alice", "bob"}

    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    sessions = nea_report(db, "sessions")["sections"]["sessions"]
    by_user: dict[str, list[tuple[str, bool]]] = {}
    for row in sorted(sessions, key=lambda s: s["session"]):
        by_user.setdefault(row["identity"], []).append((row["state"], row["retry"]))
        assert row["address"] == "127.0.0.1", row
    assert by_user["alice"] == [("allow", False), ("isolate", True)], by_user
    assert by_user["bob"] == [("isolate", False), ("allow", True), ("isolate", True)], by_user
    assert by_user["carol"][0] == ("block", False), by_user


def test_pt_tls_config_keys(tmp_path: Path) -> None:
    base: dict[str, Any] = {"nea": {"database": False}}
    cfg = parse_config({**base, "pt_tls": {}}, "t", tmp_path)
    assert cfg.pt_tls is not None
    assert (cfg.pt_tls.port, cfg.pt_tls.client_auth, cfg.pt_tls.referral) == (
        271, "tls-or-sasl", False)
    cfg = parse_config(
        {**base, "pt_tls": {"listen": "%any", "port": 10271, "client_auth": "tls-and-sasl",
                            "referral": True, "referral_name": "pdp.example",
                            "idle_timeout": "10m"}},
        "t", tmp_path,
    )
    assert cfg.pt_tls is not None
    assert cfg.pt_tls.listen == "0.0.0.0"
    assert cfg.pt_tls.idle_timeout == 600.0 and cfg.pt_tls.referral_name == "pdp.example"
    assert parse_config({**base, "pt_tls": {"enabled": False}}, "t", tmp_path).pt_tls is None
    with pytest.raises(ConfigError, match=r"pt_tls\.client_auth"):
        parse_config({**base, "pt_tls": {"client_auth": "password"}}, "t", tmp_path)
    assert cfg.pt_tls.move_grace == 2.0
    with pytest.raises(ConfigError, match=r"pt_tls\.move_grace"):
        parse_config({**base, "pt_tls": {"move_grace": 600}}, "t", tmp_path)
    with pytest.raises(ConfigError, match=r"pt_tls\.bogus"):
        parse_config({**base, "pt_tls": {"bogus": 1}}, "t", tmp_path)
    with pytest.raises(ConfigError, match="needs \\[nea\\]"):
        parse_config({"nea": {"enabled": False}, "pt_tls": {}}, "t", tmp_path)


def test_pdp_referral_in_ikev2_assessments(tmp_path: Path) -> None:
    """``[pt_tls] referral = true``: the TNCS of PT-EAP names our PT-TLS port as PDP."""
    from gateway.daemon.compose import compose
    from nea.pb_tnc.messages import PbPdpReferral

    cfg = parse_config(
        {"nea": {"database": False, "validators": ["test"]},
         "pt_tls": {"referral": True, "referral_name": "pdp.example", "port": 10271}},
        "t", tmp_path,
    )
    comp = compose(cfg)
    referral = comp.nea_state.pdp_referral()
    assert isinstance(referral, PbPdpReferral)
    assert referral.fqdn == ("pdp.example", 10271, 0)
    tncs = comp.nea_state.make_tncs(b"alice", None)
    assert tncs.config.pdp_referral == referral
    off = parse_config({"nea": {"database": False}, "pt_tls": {}}, "t", tmp_path)
    assert compose(off).nea_state.pdp_referral() is None


def test_nea_endpoint_pt_tls_option(tmp_path: Path) -> None:
    """``nea-endpoint --pt-tls HOST[:PORT]|referral`` (port 271 by default)."""
    from gateway.nea_endpoint.options import EndpointOptions, OptionsError
    from gateway.nea_endpoint.pt_tls import parse_pt_tls

    assert parse_pt_tls("10.99.255.1") == ("10.99.255.1", 271)
    assert parse_pt_tls("pdp.example:10271") == ("pdp.example", 10271)
    assert parse_pt_tls("[2001:db8::1]:271") == ("2001:db8::1", 271)
    assert parse_pt_tls("referral") is None
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    base = EndpointOptions("192.0.2.1", password="pw", ca=(ca,))
    assert replace(base, pt_tls="referral").check().pt_tls == "referral"
    with pytest.raises(OptionsError, match="--pt-tls"):
        replace(base, pt_tls="pdp:99999").check()
    with pytest.raises(OptionsError, match="--pt-tls needs the posture"):
        replace(base, pt_tls="referral", posture=False).check()
