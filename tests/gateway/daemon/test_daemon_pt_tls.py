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

import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon.config import ConfigError, parse_config
from tests.gateway.daemon.pt_tls_rig import PASSWORD, daemon_config, run_script
from tests.harness.certs import CertFactory
from tests.scenarios.scenario_rig import POLICY, PROFILES, nea_report, write_profile

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    r'''
    from pathlib import Path
    from twisted.internet import defer
    from gateway.endpoint import load_profile
    from tests.gateway.daemon.pt_tls_rig import PtTlsTestClient, run, start_gateway, wait

    @defer.inlineCallbacks
    def main(args, out):
        gw = start_gateway(args["config"])
        port = gw.pt_tls.port.getHost().port

        def client(name, password, profile):
            return PtTlsTestClient(name, profile, args["ca"], sasl=(name, password))

        try:
            clients = [client(n, args["password"], p) for n, p in args["clients"]]
            for c in clients:
                c.connect(port)
            yield wait(lambda: all(c.results or c.closed for c in clients), "first")
            for c in clients:
                out[c.name] = {"first": c.results[0] if c.results else None}
            bad = client(clients[0].name, "wrong-" + args["password"], args["clients"][0][1])
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
                c.close()
            yield wait(lambda: all(c.closed is not None for c in clients), "closed")
            yield wait(lambda: not gw.pt_tls.sessions, "server sessions closed")
        finally:
            gw._close_resources()

    run(main)
    '''
)


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
    config = daemon_config(tmp_path, cert_factory, policy)
    args = {
        "config": str(config),
        "ca": str(tmp_path / "ca.pem"),
        "password": PASSWORD,
        "policy": str(policy),
        "stricter": str(stricter),
        "clients": [
            ["alice", str(PROFILES / "compliant.toml")],
            ["bob", str(PROFILES / "forwarding.toml")],
            ["carol", str(PROFILES / "forbidden-port.toml")],
        ],
        "remediate": ["bob", str(remediated)],
    }
    out: dict[str, Any] = run_script(SCRIPT, args, tmp_path)
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
