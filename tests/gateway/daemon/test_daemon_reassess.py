"""Posture re-assessment of live IKE_SAs: ``reassess`` (and a policy reload that affects an
assessment) sends AUTH_LIFETIME 0 (RFC 4478); the client re-authenticates with a new IKE_SA
whose PT-EAP verdict picks its children and pool; an IKE_SA that does not re-authenticate is
deleted after the grace time.  Our own engine is the client, on the fake clock."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from gateway.daemon.service import REAUTH_GRACE
from ike.sa import IkeSaEstablished, ReauthRequested
from tests.gateway.daemon.daemon_rig import make_rig
from tests.gateway.daemon.test_daemon_composition import (
    POSTURE,
    _eap_config,
    _pki,
    _posture_client,
    _write,
)


def _rig(cert_factory: Any, tmp_path: Path, command: str) -> Any:
    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-ttls", POSTURE)))
    rig.connect(_posture_client(ca, command))
    return rig, ca


def test_reassess_moves_an_isolated_endpoint_to_allow(cert_factory: Any, tmp_path: Path) -> None:
    rig, ca = _rig(cert_factory, tmp_path, "isolate")
    (old,) = rig.gateway.list_sas()
    assert old["verdict"] == "isolate" and old["children"][0]["name"] == "isolate"
    result = rig.gateway.command("reassess", {"ike": "rw"})
    assert result == {"reassess": [{"name": "rw", "uniqueid": old["uniqueid"]}]}
    rig.pump()
    (asked,) = rig.events(ReauthRequested)
    assert asked.lifetime == 0
    assert rig.gateway.list_sas()[0]["reassessing"] is True
    # The client re-authenticates (make-before-break): a new IKE_SA, PT-EAP again, now allowed.
    client_old = rig.client
    rig.connect(_posture_client(ca, "allow"))
    sas = {s["uniqueid"]: s for s in rig.gateway.list_sas()}
    new = sas[max(sas)]
    assert new["verdict"] == "allow" and new["children"][0]["name"] == "allow"
    assert ipaddress.ip_address(new["remote_vips"][0]) in ipaddress.ip_network("10.3.0.0/24")
    # The old IKE_SA did not go away by itself: the gateway deletes it after the grace time.
    assert old["uniqueid"] in sas
    rig.client = client_old
    rig.clock.advance(REAUTH_GRACE + 1)
    rig.pump()
    remaining = rig.gateway.list_sas()
    assert [s["uniqueid"] for s in remaining] == [new["uniqueid"]]
    stats = rig.gateway.stats_json()
    assert stats["totals"]["reassessments"] == 1 and stats["totals"]["posture_assessments"] == 2
    assert stats["verdicts"] == {"allow": 1, "isolate": 1, "none": 0}


def test_reassess_all_and_errors(cert_factory: Any, tmp_path: Path) -> None:
    rig, _ = _rig(cert_factory, tmp_path, "allow")
    with pytest.raises(ValueError, match="--all or --ike"):
        rig.gateway.command("reassess", {})
    with pytest.raises(ValueError, match="no IKE_SA"):
        rig.gateway.command("reassess", {"ike": "nope"})
    assert len(rig.gateway.command("reassess", {"all": True})["reassess"]) == 1
    rig.pump()
    assert len(rig.events(ReauthRequested)) == 1
    # Re-authenticated in time (the client deletes its old IKE_SA): nothing left to delete.
    rig.gateway.terminate("rw")
    rig.pump()
    rig.clock.advance(REAUTH_GRACE + 1)
    assert rig.gateway.list_sas() == []
    assert all(t.sent == [] for t in rig.transports.values())  # no Delete for a gone SA


def test_policy_reload_reassesses_affected_sessions(cert_factory: Any, tmp_path: Path) -> None:
    """The policy engine reports which live assessments a reload affects; those IKE_SAs are
    asked to re-authenticate (the engine's own affected-set logic is tested in tests/nea)."""
    rig, _ = _rig(cert_factory, tmp_path, "allow")
    nea = rig.gateway.composition.nea_state
    (session,) = rig.gateway.router.sessions.values()
    reload_policy = nea.engine.reload
    nea.engine.reload = lambda policy: (reload_policy(policy), {session.connection_id})[1]
    result = rig.gateway.reload()
    assert [s["name"] for s in result["reassess"]["ike"]] == ["rw"]
    rig.pump()
    assert len(rig.events(ReauthRequested)) == 1
    # A reload that affects nobody asks nobody.
    nea.engine.reload = reload_policy
    assert rig.gateway.reload()["reassess"] == {"ike": [], "radius": 0}
    rig.pump()
    assert len(rig.events(ReauthRequested)) == 1
    assert len(rig.events(IkeSaEstablished)) == 1


def test_policy_changed_is_noticed_on_reload(cert_factory: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    ca, gw = _pki(cert_factory, tmp_path)
    text = _eap_config(ca, gw, "eap-ttls", POSTURE).replace(
        "[nea]\n", f'[nea]\npolicy = "{policy}"\n'
    )
    rig = make_rig(_write(tmp_path, text))
    rig.gateway.reload()
    assert rig.gateway.composition.policy_changed is False
    policy.write_text('[groups.lab]\nparent = "default"\nidentities = ["bob"]\n')
    rig.gateway.reload()
    assert rig.gateway.composition.policy_changed is True


def test_reauth_grace_is_configurable(cert_factory: Any, tmp_path: Path) -> None:
    ca, gw = _pki(cert_factory, tmp_path)
    text = _eap_config(ca, gw, "eap-ttls", POSTURE).replace(
        "port_nat_t = 4500\n", "port_nat_t = 4500\nreauth_grace = 5\n"
    )
    rig = make_rig(_write(tmp_path, text))
    rig.connect(_posture_client(ca, "allow"))
    assert rig.gateway.config.ike.reauth_grace == 5.0
    rig.gateway.command("reassess", {"all": True})
    rig.pump()
    rig.clock.advance(4)
    rig.pump()
    assert len(rig.gateway.list_sas()) == 1
    rig.clock.advance(2)
    rig.pump()
    assert rig.gateway.list_sas() == []


class _Net:
    """Two gateways on fake UDP ports, datagrams moved by :meth:`pump`."""

    def __init__(self, *gws: Any) -> None:
        from tests.gateway.daemon.daemon_rig import FakeUdp

        self.gws = gws
        self.ports: dict[tuple[str, int], tuple[Any, Any]] = {}
        for gw in gws:
            for port, proto in gw.udp.ports.items():
                t = FakeUdp()
                proto.transport = t
                self.ports[(gw.config.ike.listen, port)] = (proto, t)

    def pump(self) -> None:
        for _ in range(60):
            moved = False
            for (host, port), (_, t) in self.ports.items():
                sent, t.sent = t.sent, []
                for data, addr in sent:
                    moved = True
                    self.ports[(addr[0], addr[1])][0].datagramReceived(data, (host, port))
            if not moved:
                return


def test_gateway_as_initiator_reauthenticates_when_asked(tmp_path: Path) -> None:
    """Our daemon on both ends: the responder's ``reassess`` sends AUTH_LIFETIME 0, the
    initiating daemon makes a new IKE_SA and deletes the old one (make-before-break)."""
    from twisted.internet.task import Clock

    from gateway.daemon import Gateway, load_config
    from tests.gateway.daemon.daemon_rig import PSK, PSK_CONFIG

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_conf = tmp_path / "a" / "gw.toml"
    a_conf.write_text(PSK_CONFIG)
    b_conf = tmp_path / "b" / "gw.toml"
    b_conf.write_text(
        f"""
dataplane = "none"
[ike]
listen = "192.0.2.2"
[control]
socket = "ctl.sock"
[connections.home]
remote_addrs = "192.0.2.1"
vips = ["0.0.0.0"]
proposals = ["aes128-sha256-x25519"]
[connections.home.local]
auth = "psk"
id = "cl.test"
[connections.home.remote]
auth = "psk"
id = "gw.test"
[connections.home.children.home]
remote_ts = ["10.1.0.0/16"]
esp_proposals = ["aes128gcm16"]
[secrets.ike-home]
secret = "{PSK}"
"""
    )
    clock = Clock()
    a = Gateway(load_config(a_conf), clock, config_path=a_conf)
    b = Gateway(load_config(b_conf), clock, config_path=b_conf)
    net = _Net(a, b)
    b.initiate("home", None)
    net.pump()
    ((old_b,), (old_a,)) = b.list_sas(), a.list_sas()
    assert old_b["state"] == "ESTABLISHED" and old_a["remote_vips"] == ["10.3.0.1"]
    a.reassess("rw")
    net.pump()
    clock.advance(0)  # the initiator re-authenticates at once (AUTH_LIFETIME 0)
    net.pump()
    ((new_b,), (new_a,)) = b.list_sas(), a.list_sas()
    assert new_b["uniqueid"] == old_b["uniqueid"] + 1 and new_b["state"] == "ESTABLISHED"
    # make-before-break: the old IKE_SA still held its address when the new one was made
    # (our initiator asks for 0.0.0.0, not its current address); the old lease is released.
    assert new_a["uniqueid"] == old_a["uniqueid"] + 1 and new_a["remote_vips"] == ["10.3.0.2"]
    assert new_a["reassessing"] is False
    assert a.stats_json()["pools"][0]["online"] == 1
    # Nothing left for the grace timer to delete.
    clock.advance(61)
    net.pump()
    assert [s["uniqueid"] for s in a.list_sas()] == [new_a["uniqueid"]]


def test_stats_table_shows_reassessments_and_refusals(cert_factory: Any, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from gateway.daemon.cli import _print_stats

    rig, _ = _rig(cert_factory, tmp_path, "allow")
    rig.gateway.reassess(None)
    out = io.StringIO()
    _print_stats(Console(file=out, width=300), rig.gateway.stats_json())
    text = out.getvalue()
    assert "1 assessments, 1 re-assessments asked" in text
    assert "allow 1, isolate 0, none 0 (none: refused by posture)" in text
