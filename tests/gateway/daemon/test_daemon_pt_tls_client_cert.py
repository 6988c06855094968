"""The daemon's ``[pt_tls]`` listener with TLS client certificates (``client_auth`` tls,
tls-or-sasl, tls-and-sasl, none), end to end: the daemon's front-end (as in
test_daemon_pt_tls.py, in a subprocess) and PT-TLS clients on loopback TLS, presenting
certificates from :class:`tests.harness.certs.CertFactory` or not, doing SASL PLAIN or not.

Each client connects alone, in turn; an assessed one closes its session before the next.  For
each we look at the client (recommendations received, how its session ended), at what the
daemon's front-end made of the connection (authenticated with which identity and method, or
refused why, or nothing at all when the TLS handshake failed) and at the evidence database
(``nea-report sessions``): one session per assessed client under the identity taken from its
certificate (``gateway.pt_tls.certificate_identity``) or its SASL user, none for the others.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.daemon.pt_tls_rig import PASSWORD, daemon_config, run_script
from tests.harness.certs import CertFactory, Issued
from tests.scenarios.scenario_rig import POLICY, PROFILES, nea_report

pytestmark = pytest.mark.slow  # a daemon subprocess per test (about 2 s each)

SCRIPT = textwrap.dedent(
    r"""
    from twisted.internet import defer
    from tests.gateway.daemon.pt_tls_rig import (
        PtTlsTestClient, ServerEvents, run, start_gateway, wait)

    @defer.inlineCallbacks
    def main(args, out):
        gw = start_gateway(args["config"])
        server = ServerEvents(gw.pt_tls)
        port = gw.pt_tls.port.getHost().port
        try:
            for spec in args["clients"]:
                c = PtTlsTestClient(spec["name"], spec["profile"], args["ca"],
                                    sasl=spec["sasl"], cert=spec["cert"])
                before = len(server.events)
                c.connect(port)
                yield wait(lambda: c.done or c.results, spec["name"])
                status = gw.stats_json()["pt_tls"]["sessions"]
                c.close()
                yield wait(lambda: c.done, spec["name"] + " closed")
                yield wait(lambda: not gw.pt_tls.sessions, spec["name"] + " closed (server)")
                out[spec["name"]] = {**c.report(), "server": server.events[before:],
                                     "status": status}
        finally:
            gw._close_resources()

    run(main)
    """
)

COMPLIANT = str(PROFILES / "compliant.toml")
FORWARDING = str(PROFILES / "forwarding.toml")


def _client(
    name: str,
    *,
    cert: Issued | None = None,
    sasl: tuple[str, str] | None = None,
    profile: str = COMPLIANT,
) -> dict[str, Any]:
    return {
        "name": name,
        "profile": profile,
        "cert": [str(cert.chain_path), str(cert.key_path)] if cert is not None else None,
        "sasl": list(sasl) if sasl is not None else None,
    }


def _run(
    tmp_path: Path,
    cert_factory: CertFactory,
    cas: dict[str, Issued],
    client_auth: str,
    clients: list[dict[str, Any]],
    *,
    trust: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the clients in turn against a daemon with ``client_auth``; (per-client outcome,
    the evidence database's sessions oldest first).  ``trust``: the daemon trusts ``ca`` (in
    ``[authorities]``) and ``clients`` (``[pt_tls] cacerts``); else no CA at all."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.read_text())
    config = daemon_config(
        tmp_path, cert_factory, policy, client_auth=client_auth, ca=cas["ca"],
        extra=f'cacerts = ["{cas["clients"].cert_path}"]' if trust else "", authorities=trust,
    )  # fmt: skip
    args = {"config": str(config), "ca": str(tmp_path / "ca.pem"), "clients": clients}
    out = run_script(SCRIPT, args, tmp_path)
    sessions = nea_report(f"sqlite:///{tmp_path / 'evidence.db'}", "sessions")
    rows = sorted(sessions["sections"]["sessions"], key=lambda s: s["session"])
    for row in rows:
        assert row["address"] == "127.0.0.1", row
    return out, rows


def _assessed(
    out: dict[str, Any], identity: str | None, method: str, result: str = "ALLOWED"
) -> None:
    """Authenticated by ``method`` as ``identity`` and assessed once (``result``), then our
    CLOSE ended the session."""
    assert out["results"] == [result], out
    assert out["authenticated"] and out["failed"] is None and out["auth_failed"] == [], out
    assert out["server"] == [["authenticated", identity, method]], out
    assert [s["identity"] for s in out["status"]] == [identity], out
    assert out["closed"] == "PB-TNC exchange ended", out


def _handshake_refused(out: dict[str, Any], alert: str) -> None:
    """The server ended the TLS handshake with ``alert``: its PT-TLS engine never saw the
    connection (nothing authenticated or refused there, no session, no assessment).

    TLS 1.3: the client's side of the handshake is over before the server has checked the
    client's certificate; the client's PT-TLS session has started (Version Request sent) when
    the server's alert ends the connection."""
    assert out["results"] == [] and not out["authenticated"], out
    assert out["server"] == [] and out["status"] == [], out
    assert out["failed"] is None, out
    assert out["closed"] is not None and out["closed"].startswith("connection lost: "), out
    assert alert in out["closed"], out


def _sasl_refused(out: dict[str, Any], user: str) -> None:
    """TLS is fine but SASL PLAIN fails (wrong password): the server aborts, no assessment."""
    assert out["results"] == [] and not out["authenticated"], out
    assert out["server"] == [["refused", f"PLAIN: credentials of {user!r} refused"]], out
    assert out["status"] == [], out
    assert out["closed"] == "server aborted SASL PLAIN", out


def _no_sasl(out: dict[str, Any]) -> None:
    """The server wants SASL from a client that has none: it gives up, no assessment."""
    assert out["results"] == [] and not out["authenticated"], out
    assert out["auth_failed"] == ["no SASL mechanism in common"], out
    assert out["server"] == [] and out["status"] == [], out
    assert out["closed"] == (
        "sent PT-TLS error SASL_MECHANISM_ERROR: server offers ['PLAIN'], we support none of them"
    ), out


@pytest.fixture
def cas(cert_factory: CertFactory) -> dict[str, Issued]:
    """``ca`` (the daemon's server CA and its ``[authorities]`` entry), ``clients`` (only in
    ``[pt_tls] cacerts``), ``rogue`` (unknown to the daemon)."""
    return {name: cert_factory.ca(name) for name in ("ca", "clients", "rogue")}


def test_client_auth_tls(tmp_path: Path, cert_factory: CertFactory, cas: dict[str, Issued]) -> None:
    """``tls``: a client certificate from a CA of ``[pt_tls] cacerts`` or ``[authorities]``
    is all it takes (SASL is never offered: the clients with none are assessed); the identity
    is the certificate's first e-mail subjectAltName, else its first DNS one, else its CN.  A
    chain through an intermediate CA works when the client sends the intermediate.  No
    certificate (SASL credentials do not help), one from an unknown CA, an expired, a not yet
    valid one, a server-only (EKU serverAuth) one: refused in the TLS handshake."""
    issue, ca = cert_factory.issue, cas["ca"]
    email = issue(cas["clients"], "alice-laptop", san_dns=("laptop.example.org",),
                  san_email=("alice@example.org",), eku=("clientAuth",))  # fmt: skip
    dns = issue(ca, "bob-pc", san_dns=("bob.example.org",), eku=("clientAuth",))
    sub = cert_factory.ca("sub", parent=ca)
    clients = [
        _client("email", cert=email),
        _client("dns", cert=dns, profile=FORWARDING),
        _client("cn", cert=issue(ca, "carol", eku=("clientAuth",))),
        _client("intermediate", cert=issue(sub, "dave", eku=("clientAuth",))),
        _client("no-cert", sasl=("alice", PASSWORD)),
        _client("foreign", cert=issue(cas["rogue"], "mallory", eku=("clientAuth",))),
        _client("expired", cert=cert_factory.expired(ca, "old", eku=("clientAuth",))),
        _client("not-yet", cert=cert_factory.not_yet_valid(ca, "new", eku=("clientAuth",))),
        _client("server-eku", cert=issue(ca, "srv", eku=("serverAuth",))),
    ]
    out, rows = _run(tmp_path, cert_factory, cas, "tls", clients)
    _assessed(out["email"], "alice@example.org", "tls")
    _assessed(out["dns"], "bob.example.org", "tls", "QUARANTINED")
    _assessed(out["cn"], "carol", "tls")
    _assessed(out["intermediate"], "dave", "tls")
    _handshake_refused(out["no-cert"], "certificate required")
    _handshake_refused(out["foreign"], "unknown ca")
    _handshake_refused(out["expired"], "certificate expired")
    _handshake_refused(out["not-yet"], "bad certificate")
    _handshake_refused(out["server-eku"], "unsupported certificate")
    assert [(r["identity"], r["state"]) for r in rows] == [
        ("alice@example.org", "allow"), ("bob.example.org", "isolate"), ("carol", "allow"),
        ("dave", "allow")]  # fmt: skip


def test_client_auth_tls_or_sasl(
    tmp_path: Path, cert_factory: CertFactory, cas: dict[str, Issued]
) -> None:
    """``tls-or-sasl``: with a valid certificate no SASL (the certificate's identity, even
    when the client could do SASL as someone else); without one SASL PLAIN is required.  A
    certificate that does not verify is not a reason to fall back to SASL: refused."""
    issue, ca = cert_factory.issue, cas["ca"]
    cert = issue(cas["clients"], "erin", san_email=("erin@example.org",), eku=("clientAuth",))
    frank = issue(ca, "frank", eku=("clientAuth",))
    mallory = issue(cas["rogue"], "mallory", eku=("clientAuth",))
    expired = cert_factory.expired(ca, "old", eku=("clientAuth",))
    clients = [
        _client("cert", cert=cert),
        _client("cert+sasl", cert=frank, sasl=("bob", PASSWORD), profile=FORWARDING),
        _client("sasl", sasl=("alice", PASSWORD)),
        _client("nothing"),
        _client("bad-password", sasl=("alice", "wrong-" + PASSWORD)),
        _client("foreign+sasl", cert=mallory, sasl=("carol", PASSWORD)),
        _client("expired+sasl", cert=expired, sasl=("carol", PASSWORD)),
    ]
    out, rows = _run(tmp_path, cert_factory, cas, "tls-or-sasl", clients)
    _assessed(out["cert"], "erin@example.org", "tls")
    _assessed(out["cert+sasl"], "frank", "tls", "QUARANTINED")
    _assessed(out["sasl"], "alice", "sasl:PLAIN")
    _no_sasl(out["nothing"])
    _sasl_refused(out["bad-password"], "alice")
    _handshake_refused(out["foreign+sasl"], "unknown ca")
    _handshake_refused(out["expired+sasl"], "certificate expired")
    assert [(r["identity"], r["state"]) for r in rows] == [
        ("erin@example.org", "allow"), ("frank", "isolate"), ("alice", "allow")]


def test_client_auth_tls_and_sasl(
    tmp_path: Path, cert_factory: CertFactory, cas: dict[str, Issued]
) -> None:
    """``tls-and-sasl``: a valid certificate AND SASL PLAIN; the session's identity is the
    SASL user (as strongSwan's).  Certificate without SASL, with a wrong password, SASL
    without a certificate or with one from an unknown CA: refused."""
    issue, ca = cert_factory.issue, cas["ca"]
    cert = issue(ca, "bob-pc", san_dns=("bob.example.org",), eku=("clientAuth",))
    mallory = issue(cas["rogue"], "mallory", eku=("clientAuth",))
    clients = [
        _client("both", cert=cert, sasl=("bob", PASSWORD)),
        _client("cert-only", cert=cert),
        _client("cert+bad-password", cert=cert, sasl=("bob", "wrong-" + PASSWORD)),
        _client("sasl-only", sasl=("bob", PASSWORD)),
        _client("foreign+sasl", cert=mallory, sasl=("bob", PASSWORD)),
    ]
    out, rows = _run(tmp_path, cert_factory, cas, "tls-and-sasl", clients)
    _assessed(out["both"], "bob", "sasl:PLAIN")
    _no_sasl(out["cert-only"])
    _sasl_refused(out["cert+bad-password"], "bob")
    _handshake_refused(out["sasl-only"], "certificate required")
    _handshake_refused(out["foreign+sasl"], "unknown ca")
    assert [(r["identity"], r["state"]) for r in rows] == [("bob", "allow")]


def test_client_auth_sasl(
    tmp_path: Path, cert_factory: CertFactory, cas: dict[str, Issued]
) -> None:
    """``sasl``: SASL PLAIN decides, certificates play no part (none is asked for, so even
    one from an unknown CA is never sent); no SASL, no assessment."""
    issue, ca = cert_factory.issue, cas["ca"]
    clients = [
        _client("sasl", sasl=("alice", PASSWORD)),
        _client("cert+sasl", cert=issue(ca, "carol", eku=("clientAuth",)), sasl=("bob", PASSWORD)),
        _client(
            "foreign+sasl",
            cert=issue(cas["rogue"], "mallory", eku=("clientAuth",)),
            sasl=("carol", PASSWORD),
        ),
        _client("cert-only", cert=issue(ca, "dave", eku=("clientAuth",))),
    ]
    out, rows = _run(tmp_path, cert_factory, cas, "sasl", clients)
    _assessed(out["sasl"], "alice", "sasl:PLAIN")
    _assessed(out["cert+sasl"], "bob", "sasl:PLAIN")
    _assessed(out["foreign+sasl"], "carol", "sasl:PLAIN")
    assert out["cert-only"]["results"] == [] and not out["cert-only"]["authenticated"], out
    assert [r["identity"] for r in rows] == ["alice", "bob", "carol"]


def test_client_auth_none(
    tmp_path: Path, cert_factory: CertFactory, cas: dict[str, Issued]
) -> None:
    """``none``: no SASL, no certificate needed; no identity (the database has the address).
    No certificate is asked for, so a client's certificate (even from an unknown CA) is
    never sent and changes nothing."""
    issue, ca = cert_factory.issue, cas["ca"]
    clients = [
        _client("anonymous"),
        _client("cert", cert=issue(ca, "carol", eku=("clientAuth",)), profile=FORWARDING),
        _client("foreign", cert=issue(cas["rogue"], "mallory", eku=("clientAuth",))),
    ]
    out, rows = _run(tmp_path, cert_factory, cas, "none", clients)
    _assessed(out["anonymous"], None, "none")
    _assessed(out["cert"], None, "none", "QUARANTINED")
    _assessed(out["foreign"], None, "none")
    assert [(r["identity"], r["state"]) for r in rows] == [
        ("127.0.0.1", "allow"), ("127.0.0.1", "isolate"), ("127.0.0.1", "allow")]


def test_tls_or_sasl_without_any_ca(
    tmp_path: Path, cert_factory: CertFactory, cas: dict[str, Issued]
) -> None:
    """No ``cacerts`` and no ``[authorities]``: the daemon starts (``tls-or-sasl``, the
    default), asks for no client certificate, and everyone does SASL PLAIN; a client that
    has a certificate does not send it (nothing could verify it)."""
    cert = cert_factory.issue(cas["ca"], "carol-pc", san_dns=("carol.example.org",),
                              eku=("clientAuth",))  # fmt: skip
    clients = [
        _client("cert+sasl", cert=cert, sasl=("carol", PASSWORD)),
        _client("cert-only", cert=cert),
    ]
    out, rows = _run(tmp_path, cert_factory, cas, "tls-or-sasl", clients, trust=False)
    _assessed(out["cert+sasl"], "carol", "sasl:PLAIN")
    _no_sasl(out["cert-only"])
    assert [(r["identity"], r["state"]) for r in rows] == [("carol", "allow")]
