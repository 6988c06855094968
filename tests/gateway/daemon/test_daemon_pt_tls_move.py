"""Issue 7's quarantine promise, in process: an endpoint isolated by PT-EAP inside IKE_AUTH
reaches the gateway's PT-TLS listener (in the remediation network) from its virtual IP; a
re-assessment there (CRETRY after remediation, or SRETRY from the gateway) moves its IKE_SA to
the other verdict's children WITHOUT a new IKE_SA: CREATE_CHILD_SA for the new child from the
gateway, Delete for the old one, and the dataplane follows.

Our own IKE engine is the client on the rig's fake clock; PT-TLS runs sans-I/O engine to
engine (the TLS layer is ``gateway.pt_tls``'s and is covered by test_daemon_pt_tls.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gateway.daemon.pt_tls import DaemonPtTls, PtTlsSession
from ike.sa import ChildSaDeleted, ChildSaInstalled, IkeSaEstablished, ReauthRequested
from nea.pb_tnc import PbTncConfig, Tncc
from nea.pb_tnc.engine import ResultReceived
from nea.pt_tls import PbTncEventOccurred, PlainClient, PtTlsClient, PtTlsClientConfig, PtTlsServer
from tests.gateway.daemon.daemon_rig import Rig, make_rig
from tests.gateway.daemon.test_daemon_composition import (
    POSTURE,
    _eap_client,
    _eap_config,
    _pki,
    _posture_client,
    _write,
)
from tests.nea.pb_tnc.pbtnc_fakes import command_collector

PT_TLS = """
[pt_tls]
listen = "10.99.255.1"
port = 0
client_auth = "sasl"
"""


class MemoryPtTls:
    """A PT-TLS client engine and the daemon's server engine back to back; the server side
    stands in for ``gateway.pt_tls.PtTlsServerProtocol`` (engine, transport.getPeer, _flush)."""

    def __init__(self, front: DaemonPtTls, peer: str, command: str, user: str = "bob") -> None:
        self.front = front
        self.collector = command_collector(command)
        config = PbTncConfig(full_duplex=True, close_after_result=False)
        tncc = Tncc([self.collector], config=config)
        self.client = PtTlsClient(tncc, PtTlsClientConfig((lambda: PlainClient(user, "hello"),)))
        self.engine = PtTlsServer(front._make_tncs(), front.factory.config)
        self.transport = SimpleNamespace(getPeer=lambda: SimpleNamespace(host=peer))
        self.results: list[str] = []
        self.client.start()
        self._flush()

    def _flush(self) -> None:
        for _ in range(100):
            busy = False
            out = self.client.data_to_send()
            if out:
                busy = True
                self.engine.receive_data(out)
            back = self.engine.data_to_send()
            if back:
                busy = True
                self.client.receive_data(back)
            for ev in self.engine.events():
                self.front._event(self, ev)
            for ev in self.client.events():
                if isinstance(ev, PbTncEventOccurred) and isinstance(ev.event, ResultReceived):
                    rec = ev.event.recommendation
                    self.results.append(rec.name if rec is not None else "NONE")
            if not busy:
                return

    def remediate(self, command: str) -> None:
        """The endpoint fixes itself and sends CRETRY on the open session."""
        self.collector.initial = command_collector(command).initial
        self.client.request_retry()
        self._flush()


def _settle(rig: Rig) -> None:
    """Run the exchanges, the gateway's next steps and the move's grace time."""
    for _ in range(6):
        rig.pump()
        rig.clock.advance(0)
    rig.clock.advance(rig.gateway.config.pt_tls.move_grace if rig.gateway.config.pt_tls else 0)
    for _ in range(3):
        rig.pump()
        rig.clock.advance(0)


def _setup(cert_factory: Any, tmp_path: Path) -> tuple[Rig, DaemonPtTls, Any]:
    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-ttls", POSTURE) + PT_TLS))
    spec = rig.gateway.config.pt_tls
    assert spec is not None
    front = DaemonPtTls(
        spec,
        rig.gateway.composition.nea_state,
        {"bob": "hello", "carol": "hello"},
        on_verdict=rig.gateway.pt_tls_verdict,
    )
    rig.gateway.pt_tls = front
    rig.connect(_posture_client(ca, "isolate"))
    return rig, front, ca


def test_cretry_moves_isolated_ike_sa_to_allow_and_sretry_back(
    cert_factory: Any, tmp_path: Path
) -> None:
    rig, front, _ca = _setup(cert_factory, tmp_path)
    (before,) = rig.gateway.list_sas()
    assert before["verdict"] == "isolate"
    assert [c["name"] for c in before["children"]] == ["isolate"]
    vip = before["remote_vips"][0]
    assert vip.startswith("10.99.0.")
    isolate_spi = int(before["children"][0]["spi_in"], 16)

    # the endpoint reaches the PDP through its isolate tunnel: still non-compliant
    pt = MemoryPtTls(front, vip, "isolate")
    assert pt.results == ["QUARANTINED"]
    _settle(rig)
    assert rig.gateway.list_sas()[0]["children"][0]["name"] == "isolate"
    assert rig.gateway.list_sas()[0]["pt_tls"] == pt.engine.tncs.connection_id

    # remediated: CRETRY -> allow -> CREATE_CHILD_SA for "allow", Delete for "isolate"
    pt.remediate("allow")
    assert pt.results == ["QUARANTINED", "ALLOWED"]
    for _ in range(4):
        rig.pump()
        rig.clock.advance(0)
    # the allow child is up; the isolate one carries in-flight PT-TLS for the grace time
    assert [c["name"] for c in rig.gateway.list_sas()[0]["children"]] == ["isolate", "allow"]
    _settle(rig)
    (after,) = rig.gateway.list_sas()
    assert (after["uniqueid"], after["spi_i"], after["spi_r"]) == (
        before["uniqueid"], before["spi_i"], before["spi_r"])
    assert after["verdict"] == "allow"
    assert [c["name"] for c in after["children"]] == ["allow"]
    assert after["children"][0]["local_ts"] == ["10.1.0.0/16"]
    assert after["children"][0]["remote_ts"] == [f"{vip}/32"]
    assert len(rig.events(IkeSaEstablished)) == 1  # no new IKE_SA
    # the client installed the allow child on the same IKE_SA and dropped the isolate one
    client_children = rig.events(ChildSaInstalled)
    assert len(client_children) == 2
    assert [str(t) for t in client_children[1].remote_ts] == ["10.1.0.0-10.1.255.255"]
    assert [d.spi_out for d in rig.events(ChildSaDeleted)] == [isolate_spi]
    # the dataplane got the new child and lost the old one
    assert [e.name for e in rig.dataplane.installed] == ["isolate", "allow"]
    assert [e.spi_in for e in rig.dataplane.deleted] == [isolate_spi]

    # the gateway re-assesses (SRETRY; full duplex) and the endpoint broke again: back to isolate
    pt.collector.initial = command_collector("isolate").initial
    (session,) = front.sessions.values()
    assert isinstance(session, PtTlsSession)
    assert front.retry(session)
    assert pt.results[-1] == "QUARANTINED"
    _settle(rig)
    (back,) = rig.gateway.list_sas()
    assert back["uniqueid"] == before["uniqueid"] and back["verdict"] == "isolate"
    assert [c["name"] for c in back["children"]] == ["isolate"]
    assert [e.name for e in rig.dataplane.installed] == ["isolate", "allow", "isolate"]
    assert session.verdicts == ["isolate", "allow", "isolate"]
    totals = rig.gateway.stats_json()["totals"]
    assert totals["moves"] == 2 and totals["pt_tls_assessments"] == 3

    # a policy reload that affects the IKEv2 assessment: SRETRY on the tied PT-TLS session
    # instead of asking for re-authentication (no AUTH_LIFETIME to the client)
    pt.collector.initial = command_collector("allow").initial
    ike_cid = rig.gateway.router.sessions[bytes.fromhex(back["ike_sa"])].connection_id
    again = rig.gateway._reassess_affected({ike_cid})
    assert again["ike"] == [] and again["pt_tls"] == [
        {"name": "rw", "uniqueid": before["uniqueid"]}], again
    _settle(rig)
    assert not rig.events(ReauthRequested)
    assert pt.results[-1] == "ALLOWED"
    assert [c["name"] for c in rig.gateway.list_sas()[0]["children"]] == ["allow"]


def test_no_access_over_pt_tls_deletes_the_ike_sa(cert_factory: Any, tmp_path: Path) -> None:
    rig, front, _ca = _setup(cert_factory, tmp_path)
    (before,) = rig.gateway.list_sas()
    pt = MemoryPtTls(front, before["remote_vips"][0], "block")
    assert pt.results == ["DENIED"]
    _settle(rig)
    assert rig.gateway.list_sas() == []


def test_pt_tls_from_elsewhere_ties_by_identity(cert_factory: Any, tmp_path: Path) -> None:
    """Not through the tunnel: the IKE_SA of the same authenticated identity moves; another
    identity moves nothing."""
    rig, front, _ca = _setup(cert_factory, tmp_path)
    other = MemoryPtTls(front, "198.51.100.7", "allow", user="carol")
    assert other.results == ["ALLOWED"]
    _settle(rig)
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] == "isolate" and sa["pt_tls"] is None
    assert [c["name"] for c in sa["children"]] == ["isolate"]
    same = MemoryPtTls(front, "198.51.100.8", "allow")
    assert same.results == ["ALLOWED"]
    _settle(rig)
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] == "allow" and sa["pt_tls"] == same.engine.tncs.connection_id
    assert [c["name"] for c in sa["children"]] == ["allow"]


def test_ike_sa_without_posture_counts_as_allow_and_moves(
    cert_factory: Any, tmp_path: Path
) -> None:
    """A client without PT-EAP (Debian's charon) on a connection without posture: its IKE_SA
    counts as allow (allow child, no verdict).  PT-TLS through its tunnel moves it like any
    other; PT-TLS from elsewhere under its EAP identity does not (no posture to tie by)."""
    from ike.eap.methods.md5 import Md5PeerMethod
    from ike.eap.packet import EapType
    from ike.eap.peer import EapPeer

    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-md5") + PT_TLS))
    spec = rig.gateway.config.pt_tls
    assert spec is not None
    front = DaemonPtTls(
        spec, rig.gateway.composition.nea_state, {"bob": "hello"},
        on_verdict=rig.gateway.pt_tls_verdict,
    )  # fmt: skip
    rig.gateway.pt_tls = front
    methods: Any = [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("hello"))]
    rig.connect(_eap_client(ca, lambda: EapPeer(b"bob", methods)))
    (before,) = rig.gateway.list_sas()
    assert before["verdict"] is None and [c["name"] for c in before["children"]] == ["allow"]
    vip = before["remote_vips"][0]

    elsewhere = MemoryPtTls(front, "198.51.100.7", "isolate")
    assert elsewhere.results == ["QUARANTINED"]
    _settle(rig)
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] is None and sa["pt_tls"] is None
    assert [c["name"] for c in sa["children"]] == ["allow"]

    # compliant through the tunnel: it already has the allow children, nothing moves
    pt = MemoryPtTls(front, vip, "allow")
    assert pt.results == ["ALLOWED"]
    _settle(rig)
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] is None and sa["pt_tls"] == pt.engine.tncs.connection_id
    assert [c["name"] for c in sa["children"]] == ["allow"]
    assert len(rig.events(ChildSaInstalled)) == 1

    # broken: SRETRY -> isolate -> CREATE_CHILD_SA for "isolate", Delete for "allow"
    pt.collector.initial = command_collector("isolate").initial
    (session,) = [s for s in front.sessions.values() if s.peer == vip]
    assert front.retry(session)
    assert pt.results[-1] == "QUARANTINED"
    _settle(rig)
    (after,) = rig.gateway.list_sas()
    assert (after["uniqueid"], after["spi_i"], after["spi_r"]) == (
        before["uniqueid"], before["spi_i"], before["spi_r"])  # fmt: skip
    assert after["verdict"] == "isolate"
    assert [c["name"] for c in after["children"]] == ["isolate"]
    assert after["children"][0]["local_ts"] == ["10.99.255.0/24"]
    assert len(rig.events(IkeSaEstablished)) == 1
    assert rig.gateway.stats_json()["totals"]["moves"] == 1
