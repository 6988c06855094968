"""The composition root with fakes: a Gateway built from a TOML file, the project's IKE
engine as client, a fake clock and fake UDP ports.  PSK and EAP; EAP-TTLS with PT-EAP posture
whose verdict (from the real test validator) selects the allow or isolate child and pool, or
fails the EAP; bad datagrams; reload keeping SAs; terminate and shutdown sending Deletes."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from ike.config import AuthClass, ChildConfig, Identity
from ike.sa import ChildSaInstalled, IkeSaClosed, IkeSaEstablished, ReauthRequested
from tests.gateway.daemon.daemon_rig import PSK_CONFIG, make_rig, psk_client


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gw.toml"
    p.write_text(text)
    return p


def test_psk_establishes_with_vip_and_child(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.connect(psk_client())
    (est,) = rig.events(IkeSaEstablished)
    assert [str(v) for v in est.virtual_ips] == ["10.3.0.1"]
    (sa,) = rig.gateway.list_sas()
    assert sa["name"] == "rw" and sa["state"] == "ESTABLISHED" and sa["uniqueid"] == 1
    assert sa["remote_id"] == "cl.test" and sa["remote_vips"] == ["10.3.0.1"]
    (child,) = sa["children"]
    assert child["name"] == "net" and child["local_ts"] == ["10.1.0.0/16"]
    assert child["remote_ts"] == ["10.3.0.1/32"]
    assert len(rig.dataplane.installed) == 1
    stats = rig.gateway.stats_json()
    assert stats["ike_sas"] == 1 and stats["child_sas"] == 1
    assert stats["packets"]["ike_received"] == 2 and stats["packets"]["invalid"] == 0
    assert stats["dataplane"] == "recording"
    assert stats["pools"][0]["online"] == 1


def test_wrong_psk_is_refused(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.connect(psk_client(psk=b"wrong"))
    assert not rig.events(IkeSaEstablished)
    assert rig.gateway.list_sas() == []


def test_bad_datagrams_are_counted_not_fatal(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    junk = [b"", b"\x00", os.urandom(27), os.urandom(28), os.urandom(200), b"\xff" * 60]
    # A header that claims IKEv2 IKE_AUTH for an unknown SPI, with a lying length.
    junk.append(bytes(8) + b"\x01" * 8 + b"\x2e\x20\x23\x08" + bytes(4) + b"\x00\x00\x10\x00")
    for data in junk:
        rig.send_raw(data)
        rig.send_raw(b"\x00\x00\x00\x00" + data, port=4500)
    rig.send_raw(b"\xff", port=4500)  # NAT keepalive
    rig.send_raw(b"\x00\x00\x00\x01" + os.urandom(40), port=4500)  # ESP, no dataplane
    stats = rig.gateway.stats_json()["packets"]
    assert stats["invalid"] >= 2 * len(junk) - 2
    assert stats["errors"] == 0
    assert stats["keepalives"] == 1 and stats["esp_received"] == 1 and stats["esp_dropped"] == 1
    rig.connect(psk_client())  # still serves
    assert rig.events(IkeSaEstablished)


def test_reload_keeps_sas_and_applies_new_connections(tmp_path: Path) -> None:
    path = _write(tmp_path, PSK_CONFIG)
    rig = make_rig(path)
    rig.connect(psk_client())
    path.write_text(
        PSK_CONFIG.replace('id = "gw.test"', 'id = "gw2.test"')
        + '\n[connections.other]\n[connections.other.local]\nauth = "psk"\n'
        '[connections.other.remote]\nauth = "psk"\n'
    )
    result = rig.gateway.reload()
    assert result["added"] == ["other"] and result["changed"] == ["rw"]
    assert result["kept_sas"] == 1
    (sa,) = rig.gateway.list_sas()
    assert sa["state"] == "ESTABLISHED" and sa["local_id"] == "gw.test"
    # The established SA still answers (DPD from the client) with its old identity.
    assert rig.client is not None
    spi = next(iter(rig.client))
    rig.client.send_liveness(spi, rig.clock.seconds())
    rig.pump()
    assert not rig.events(IkeSaClosed)
    # A new IKE_SA gets the new configuration (the client insists on gw.test: refused).
    first = len(rig.events(IkeSaEstablished))
    rig.connect(psk_client())
    assert len(rig.events(IkeSaEstablished)) == first
    rig.connect(psk_client(remote_id=Identity.parse("gw2.test")))
    assert len(rig.events(IkeSaEstablished)) == first + 1
    assert [s["local_id"] for s in rig.gateway.list_sas()] == ["gw.test", "gw2.test"]
    # The lease of the first SA stayed put: the second got another address.
    assert sorted(v for s in rig.gateway.list_sas() for v in s["remote_vips"]) == [
        "10.3.0.1",
        "10.3.0.2",
    ]


def test_reload_with_a_broken_file_keeps_running_config(tmp_path: Path) -> None:
    from gateway.daemon import ConfigError

    path = _write(tmp_path, PSK_CONFIG)
    rig = make_rig(path)
    path.write_text(PSK_CONFIG + "\n[connections.rw.bogus]\n")
    with pytest.raises(ConfigError) as err:
        rig.gateway.reload()
    assert "connections.rw.bogus" in str(err.value)
    rig.connect(psk_client())
    assert rig.events(IkeSaEstablished)


def test_terminate_sends_delete(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.connect(psk_client())
    d = rig.gateway.terminate("rw")
    rig.pump()
    results: list[Any] = []
    d.addCallback(results.append)
    assert results and results[0]["complete"] is True
    assert results[0]["terminated"] == [{"name": "rw", "uniqueid": 1}]
    (closed,) = rig.events(IkeSaClosed)
    assert "delete" in closed.reason.lower()
    assert rig.gateway.list_sas() == []
    assert len(rig.dataplane.deleted) == 1
    assert rig.gateway.stats_json()["pools"][0]["online"] == 0


def test_stop_deletes_every_sa(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.connect(psk_client())
    done: list[Any] = []
    rig.gateway.stop().addCallback(done.append)
    rig.pump()
    rig.clock.advance(0)
    assert done == [None]
    assert len(rig.events(IkeSaClosed)) == 1


def test_stop_gives_up_on_a_silent_peer(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.connect(psk_client())
    done: list[Any] = []
    rig.gateway.stop(timeout=2.0).addCallback(done.append)
    assert done == []
    rig.clock.advance(2.1)
    assert done == [None]


# --------------------------------------------------------------------------------------------
# EAP and posture


def _pki(cert_factory: Any, tmp_path: Path) -> tuple[Any, Any]:
    ca = cert_factory.ca("ca")
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",))
    return ca, gw


def _eap_config(ca: Any, gw: Any, auth: str, extra: str = "") -> str:
    return f"""
dataplane = "none"
[ike]
listen = "192.0.2.1"
port = 500
port_nat_t = 4500
[control]
socket = "ctl.sock"
[pools.allow]
addrs = "10.3.0.0/24"
[pools.isolate]
addrs = "10.99.0.0/24"
[connections.rw]
pools = ["allow"]
[connections.rw.local]
auth = "pubkey"
certs = ["{gw.chain_path}"]
id = "gw.test"
[connections.rw.remote]
auth = "{auth}"
{extra}
[connections.rw.children.allow]
local_ts = ["10.1.0.0/16"]
verdict = ["allow"]
[connections.rw.children.isolate]
local_ts = ["10.99.255.0/24"]
verdict = ["isolate"]
pools = ["isolate"]
[secrets.eap-bob]
id = "bob"
secret = "hello"
[secrets.private-gw]
file = "{gw.key_path}"
[authorities.ca]
cacert = "{ca.cert_path}"
[nea]
validators = ["test"]
database = false
"""


def _eap_client(ca: Any, eap_peer: Any) -> Any:
    return psk_client(
        local_auth=AuthClass.EAP,
        remote_auth=AuthClass.PUBKEY,
        psk=None,
        trust_anchors=(ca.cert,),
        eap_peer=eap_peer,
        children=(ChildConfig.make("home", remote_ts=["0.0.0.0/0"]),),
    )


@pytest.mark.parametrize("method", ["eap-md5", "eap-mschapv2"])
def test_eap_password_methods(cert_factory: Any, tmp_path: Path, method: str) -> None:
    from ike.eap.methods.md5 import Md5PeerMethod
    from ike.eap.methods.mschapv2 import MsChapV2PeerMethod
    from ike.eap.packet import EapType
    from ike.eap.peer import EapPeer

    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, method)))
    methods: Any = (
        [(EapType.MD5_CHALLENGE, lambda: Md5PeerMethod("hello"))]
        if method == "eap-md5"
        else [(EapType.MSCHAPV2, lambda: MsChapV2PeerMethod(b"bob", "hello"))]
    )
    rig.connect(_eap_client(ca, lambda: EapPeer(b"bob", methods)))
    assert len(rig.events(IkeSaEstablished)) == 1
    (sa,) = rig.gateway.list_sas()
    assert sa["remote_eap_id"] == "bob" and sa["verdict"] is None
    assert ipaddress.ip_address(sa["remote_vips"][0]) in ipaddress.ip_network("10.3.0.0/24")


class TtlsPosturePeer:
    """Drives a tunnel peer method directly, without the ``ike.eap.peer.EapPeer`` layer, so
    the test sees each method step (EapPeer itself keeps feeding a TTLS method that chains
    PT-EAP after its inner authentication: tests/ike/eap_tls)."""

    def __init__(self, identity: bytes, config: Any, method: Any = None) -> None:
        from ike.eap_ttls.method import EapTtlsPeer

        self.identity = identity
        self.method = method if method is not None else EapTtlsPeer(config)
        self._ok = self._failed = False

    def receive(self, packet: bytes) -> bytes | None:
        code, ident = packet[0], packet[1]
        if code == 3:
            self._ok = True
            return None
        if code == 4:
            self._failed = True
            return None
        typ = packet[4]
        if typ == 1:
            data = self.identity
        else:
            data = self.method.receive(packet[5:]).reply or b""
        return bytes([2, ident]) + (5 + len(data)).to_bytes(2, "big") + bytes([typ]) + data

    @property
    def succeeded(self) -> bool:
        return self._ok

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def msk(self) -> bytes | None:
        return self.method.msk() if self._ok else None


def _posture_client(ca: Any, command: str) -> Any:
    from ike.eap.methods.md5 import Md5PeerMethod
    from ike.eap_tls.tls import TlsPeerConfig
    from ike.eap_ttls.method import InnerAuth, TtlsPeerConfig
    from nea.pb_tnc import PbTncConfig, Tncc
    from nea.pt_eap import PtEapPeer
    from tests.nea.pb_tnc.pbtnc_fakes import command_collector

    config = TtlsPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,)),
        identity=b"bob",
        inner=InnerAuth.EAP,
        eap_methods=(
            (4, lambda: Md5PeerMethod("hello")),
            (
                54,
                lambda: PtEapPeer(
                    Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap())
                ),
            ),
        ),
    )
    return _eap_client(ca, lambda: TtlsPosturePeer(b"bob", config))


POSTURE = '\neap_inner = ["md5"]\n[connections.rw.posture]\nassess = true\n'


@pytest.mark.parametrize(
    ("command", "child", "net"),
    [("allow", "allow", "10.3.0.0/24"), ("isolate", "isolate", "10.99.0.0/24")],
)
def test_ttls_posture_verdict_selects_child_and_pool(
    cert_factory: Any, tmp_path: Path, command: str, child: str, net: str
) -> None:
    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-ttls", POSTURE)))
    rig.connect(_posture_client(ca, command))
    assert len(rig.events(IkeSaEstablished)) == 1
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] == command
    assert ipaddress.ip_address(sa["remote_vips"][0]) in ipaddress.ip_network(net)
    (c,) = sa["children"]
    assert c["name"] == child
    (installed,) = rig.events(ChildSaInstalled)
    assert [t.text() for t in installed.remote_ts] == c["local_ts"]
    stats = rig.gateway.stats_json()
    assert stats["verdicts"][command] == 1 and stats["totals"]["posture_assessments"] == 1


def test_ttls_posture_no_access_fails_the_eap(cert_factory: Any, tmp_path: Path) -> None:
    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-ttls", POSTURE)))
    rig.connect(_posture_client(ca, "block"))
    assert not rig.events(IkeSaEstablished)
    assert rig.gateway.list_sas() == []
    stats = rig.gateway.stats_json()
    assert stats["totals"]["auth_failed"] == 1
    assert stats["verdicts"] == {"allow": 0, "isolate": 0, "none": 1}
    assert stats["totals"]["posture_assessments"] == 1
    assert stats["pools"][0]["online"] == 0 and stats["pools"][1]["online"] == 0


def test_ttls_without_posture(cert_factory: Any, tmp_path: Path) -> None:
    """Posture off: the client's inner EAP-MD5 suffices; every child serves."""
    from ike.eap.methods.md5 import Md5PeerMethod
    from ike.eap_tls.tls import TlsPeerConfig
    from ike.eap_ttls.method import InnerAuth, TtlsPeerConfig

    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-ttls", 'eap_inner = ["md5"]')))
    config = TtlsPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,)),
        identity=b"bob",
        inner=InnerAuth.EAP,
        eap_methods=((4, lambda: Md5PeerMethod("hello")),),
    )
    rig.connect(_eap_client(ca, lambda: TtlsPosturePeer(b"bob", config)))
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] is None and sa["children"][0]["name"] == "allow"


def test_posture_evidence_reaches_the_sink(cert_factory: Any, tmp_path: Path) -> None:
    """The validators' records go to the evidence sink the daemon hands in: session start
    and decision with the EAP identity, the virtual IP bound, the end when the IKE_SA goes."""
    from nea.imv import MemoryEvidenceSink

    class Sink(MemoryEvidenceSink):
        def __init__(self) -> None:
            super().__init__()
            self.bound: list[tuple[int, str]] = []

        def bind_address(self, connection_id: int, address: str) -> None:
            self.bound.append((connection_id, address))

    sink = Sink()
    ca, gw = _pki(cert_factory, tmp_path)
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-ttls", POSTURE)), evidence_sink=sink)
    rig.connect(_posture_client(ca, "isolate"))
    (sa,) = rig.gateway.list_sas()
    (start,) = sink.starts
    assert start.identity == "bob"
    (decision,) = sink.decisions
    assert decision.identity == "bob" and decision.connection_id == start.connection_id
    assert sink.bound == [(start.connection_id, sa["remote_vips"][0])]
    rig.gateway.terminate("rw")
    rig.pump()
    assert [cid for cid, _ in sink.ended] == [start.connection_id]


def test_start_action_start_initiates_at_startup(tmp_path: Path) -> None:
    from twisted.internet.task import Clock

    from gateway.daemon import Gateway, load_config
    from tests.gateway.daemon.daemon_rig import FakeUdp

    class Reactor(Clock):
        def __init__(self) -> None:
            super().__init__()
            self.ports: dict[int, FakeUdp] = {}

        def listenUDP(self, port: int, proto: Any, interface: str = "") -> Any:
            proto.transport = self.ports[port] = FakeUdp()
            return proto

    config = PSK_CONFIG.replace(
        "[connections.rw]", '[connections.rw]\nremote_addrs = "198.51.100.7"'
    ).replace('local_ts = ["10.1.0.0/16"]', 'local_ts = ["10.1.0.0/16"]\nstart_action = "start"')
    reactor = Reactor()
    gw = Gateway(load_config(_write(tmp_path, config)), reactor)
    gw.start()
    assert reactor.ports[500].sent == []
    reactor.advance(0)
    ((data, addr),) = reactor.ports[500].sent
    assert addr == ("198.51.100.7", 500)
    assert data[18] == 34  # IKE_SA_INIT
    (sa,) = gw.list_sas()
    assert sa["state"] == "CONNECTING" and sa["name"] == "rw"


def test_dataplane_hooks_sender_and_expiry(tmp_path: Path) -> None:
    """A dataplane with ``set_sender``/``on_event`` (gateway.dataplane.bridge's hooks): ESP
    leaves through the NAT-T socket; a hard expiry deletes the CHILD_SA at the peer."""
    from gateway.dataplane.esp import SaHardExpired
    from ike.sa import ChildSaDeleted
    from tests.gateway.daemon.daemon_rig import FakeUdp, RecordingDataplane

    class HookedDataplane(RecordingDataplane):
        def __init__(self) -> None:
            super().__init__()
            self.sender: Any = None
            self.on_event: Any = None

        def set_sender(self, fn: Any) -> None:
            self.sender = fn

    from twisted.internet.task import Clock

    from gateway.daemon import Gateway, load_config

    dp = HookedDataplane()
    clock = Clock()
    gw = Gateway(load_config(_write(tmp_path, PSK_CONFIG)), clock, dataplane=dp)
    natt = FakeUdp()
    gw.udp.ports[4500].transport = natt  # type: ignore[assignment]
    dp.sender(b"\x00\x00\x00\x01esp", ("192.0.2.2", 4500))
    assert natt.sent == [(b"\x00\x00\x00\x01esp", ("192.0.2.2", 4500))]
    assert dp.on_event is not None

    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.gateway.dataplane = dp
    rig.gateway._hook_dataplane()
    rig.connect(psk_client())
    (sa,) = rig.gateway.list_sas()
    spi_in = int(sa["children"][0]["spi_in"], 16)
    dp.on_event(SaHardExpired(bytes.fromhex(sa["ike_sa"]), spi_in, "time"))
    rig.pump()
    assert len(rig.events(ChildSaDeleted)) == 1
    assert rig.gateway.list_sas()[0]["children"] == []


@pytest.mark.parametrize("pac_key", [False, True])
def test_eap_fast_posture_and_pac_resumption_over_reload(
    cert_factory: Any, tmp_path: Path, pac_key: bool
) -> None:
    """EAP-FAST (authenticated provisioning, inner MS-CHAPv2) with PT-EAP: the verdict picks
    the isolate child; the PAC from the first IKE_SA resumes the next ones, also after a
    reload (the PAC keyring is kept).  After a restart the PAC resumes only when the
    PAC-Opaque key is configured ([secrets.pac-*]); else the peer is provisioned again; a
    rotated key (now in ``previous``) still opens it."""
    from ike.eap.methods.mschapv2 import MsChapV2PeerMethod
    from ike.eap_fast.method import EapFastPeer, FastPeerConfig, Provisioning
    from ike.eap_fast.pac import PacStore
    from ike.eap_tls.tls import TlsPeerConfig
    from nea.pb_tnc import PbTncConfig, Tncc
    from nea.pt_eap import PtEapPeer
    from tests.nea.pb_tnc.pbtnc_fakes import command_collector

    ca = cert_factory.ca("ca", key_type="rsa", rsa_bits=2048)
    gw = cert_factory.issue(
        ca, "gw.test", san_dns=("gw.test",), eku=("serverAuth",), key_type="rsa", rsa_bits=2048
    )
    extra = (
        'eap_inner = ["mschapv2"]\nfast_a_id = "gw-test"\nfast_provisioning = 2\n'
        'fast_pac_lifetime = "30d"\n[connections.rw.posture]\nassess = true\n'
    )
    key1, key2 = "0x" + "a5" * 32, "0x" + "5a" * 32
    pac_secret = f'[secrets.pac-fast]\nsecret = "{key1}"\n' if pac_key else ""
    path = _write(tmp_path, _eap_config(ca, gw, "eap-fast", extra) + pac_secret)
    rig = make_rig(path)
    store = PacStore()
    config = FastPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,)),
        identity=b"bob",
        eap_methods=(
            (26, lambda: MsChapV2PeerMethod(b"bob", "hello")),
            (
                54,
                lambda: PtEapPeer(
                    Tncc([command_collector("isolate")], config=PbTncConfig.for_pt_eap())
                ),
            ),
        ),
        pac_store=store,
        provisioning=Provisioning.AUTHENTICATED,
    )
    methods: list[Any] = []

    def peer() -> Any:
        methods.append(EapFastPeer(config))
        return TtlsPosturePeer(b"anonymous", None, methods[-1])

    rig.connect(_eap_client(ca, peer))
    (sa,) = rig.gateway.list_sas()
    assert sa["verdict"] == "isolate" and sa["children"][0]["name"] == "isolate"
    assert not methods[0].resumed
    rig.connect(_eap_client(ca, peer))
    assert methods[1].resumed and len(rig.gateway.list_sas()) == 2
    rig.gateway.reload()
    rig.connect(_eap_client(ca, peer))
    assert methods[2].resumed and len(rig.gateway.list_sas()) == 3

    restarted = make_rig(path)  # a new process: the keyring comes from the configuration
    restarted.connect(_eap_client(ca, peer))
    # Without the key the server cannot open the PAC: a full handshake and a new PAC.
    assert methods[-1].resumed is pac_key
    assert restarted.gateway.list_sas()[0]["verdict"] == "isolate"
    if pac_key:  # rotation: a new current key, the old one still opens the PAC it sealed
        store_before = store.get(b"gw-test")
        path.write_text(
            path.read_text().replace(
                f'secret = "{key1}"', f'secret = "{key2}"\nprevious = ["{key1}"]'
            )
        )
        restarted.gateway.reload()
        restarted.connect(_eap_client(ca, peer))
        assert methods[4].resumed and store.get(b"gw-test") == store_before
        path.write_text(path.read_text().replace(f'\nprevious = ["{key1}"]', ""))
        restarted.gateway.reload()  # the old key dropped: the PAC no longer opens...
        restarted.connect(_eap_client(ca, peer))  # ...full handshake, a new PAC under key2
        assert not methods[-1].resumed and len(restarted.gateway.list_sas()) == 3
        assert store.get(b"gw-test") not in (None, store_before)
        restarted.connect(_eap_client(ca, peer))
        assert methods[-1].resumed and len(restarted.gateway.list_sas()) == 4


def test_reload_rereads_the_policy_file(cert_factory: Any, tmp_path: Path) -> None:
    """Same [nea] section, changed policy file: the running validators get the new policy
    (and a broken policy file is refused with its file name)."""
    from gateway.daemon import ConfigError

    policy = tmp_path / "policy.toml"
    policy.write_text("")
    ca, gw = _pki(cert_factory, tmp_path)
    text = _eap_config(ca, gw, "eap-ttls", POSTURE).replace(
        "[nea]\n", f'[nea]\npolicy = "{policy}"\n'
    )
    rig = make_rig(_write(tmp_path, text))
    rig.connect(_posture_client(ca, "allow"))
    engine = rig.gateway.composition.policy_engine
    assert "lab" not in engine.policy.groups
    policy.write_text('[groups.lab]\nparent = "default"\nidentities = ["bob"]\n')
    rig.gateway.reload()
    assert rig.gateway.composition.policy_engine is engine  # same validators, new policy
    assert "lab" in engine.policy.groups
    assert len(rig.gateway.list_sas()) == 1
    policy.write_text("[groups.lab]\nparent = 5\n")
    with pytest.raises(ConfigError) as err:
        rig.gateway.reload()
    assert err.value.key == "nea.policy" and str(policy) in err.value.reason
    assert "lab" in engine.policy.groups


@pytest.mark.parametrize(("who", "ok"), [("cl.test", True), ("mallory.test", False)])
def test_eap_tls_client_cert_and_eap_id(
    cert_factory: Any, tmp_path: Path, who: str, ok: bool
) -> None:
    from ike.eap.packet import EapType
    from ike.eap.peer import EapPeer
    from ike.eap_tls.method import EapTlsPeer
    from ike.eap_tls.tls import TlsPeerConfig

    ca, gw = _pki(cert_factory, tmp_path)
    client = cert_factory.issue(ca, who, san_dns=(who,), eku=("clientAuth",), key_type="rsa")
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-tls", 'eap_id = "cl.test"')))
    tls = TlsPeerConfig(
        ca_pems=(ca.cert_pem,), cert_chain_pem=client.chain_pem, key_pem=client.key_pem
    )
    rig.connect(
        _eap_client(ca, lambda: EapPeer(who.encode(), [(EapType.TLS, lambda: EapTlsPeer(tls))]))
    )
    assert bool(rig.events(IkeSaEstablished)) is ok
    assert [s["remote_eap_id"] for s in rig.gateway.list_sas()] == (["cl.test"] if ok else [])


@pytest.mark.parametrize("command", ["allow", "isolate", "block"])
def test_peap_posture(cert_factory: Any, tmp_path: Path, command: str) -> None:
    """PEAP v0 (inner MS-CHAPv2, cryptobinding) with PT-EAP chained inside the tunnel."""
    from ike.eap.methods.mschapv2 import MsChapV2PeerMethod
    from ike.eap_peap.method import EapPeapPeer, PeapPeerConfig
    from ike.eap_tls.tls import TlsPeerConfig
    from nea.pb_tnc import PbTncConfig, Tncc
    from nea.pt_eap import PtEapPeer
    from tests.nea.pb_tnc.pbtnc_fakes import command_collector

    ca, gw = _pki(cert_factory, tmp_path)
    extra = '\neap_inner = ["mschapv2"]\n[connections.rw.posture]\nassess = true\n'
    rig = make_rig(_write(tmp_path, _eap_config(ca, gw, "eap-peap", extra)))
    config = PeapPeerConfig(
        tls=TlsPeerConfig(ca_pems=(ca.cert_pem,)),
        identity=b"bob",
        eap_methods=(
            (26, lambda: MsChapV2PeerMethod(b"bob", "hello")),
            (
                54,
                lambda: PtEapPeer(
                    Tncc([command_collector(command)], config=PbTncConfig.for_pt_eap())
                ),
            ),
        ),
    )
    rig.connect(_eap_client(ca, lambda: TtlsPosturePeer(b"anonymous", None, EapPeapPeer(config))))
    sas = rig.gateway.list_sas()
    if command == "block":
        stats = rig.gateway.stats_json()
        assert sas == [] and stats["totals"]["auth_failed"] == 1
        assert stats["verdicts"]["none"] == 1
    else:
        (sa,) = sas
        assert sa["verdict"] == command and sa["children"][0]["name"] == command


def test_child_rekey_time_makes_the_gateway_rekey(tmp_path: Path) -> None:
    """``rekey_time`` on a child reaches the engine: after it the gateway starts a
    CREATE_CHILD_SA exchange (the rekey itself against charon: tests/interop)."""
    config = PSK_CONFIG.replace(
        'esp_proposals = ["aes128gcm16", "aes128-sha256"]',
        'esp_proposals = ["aes128gcm16", "aes128-sha256"]\nrekey_time = "10s"',
    )
    rig = make_rig(_write(tmp_path, config))
    rig.connect(psk_client())
    rig.clock.advance(9)
    assert rig.transports[500].sent == []
    rig.clock.advance(2)
    (request,) = [d for d, _ in rig.transports[500].sent]
    assert request[18] == 36  # CREATE_CHILD_SA


def test_ipv4_and_ipv6_virtual_ips(tmp_path: Path) -> None:
    config = (
        PSK_CONFIG.replace('pools = ["rw"]', 'pools = ["rw", "rw6"]')
        + '\n[pools.rw6]\naddrs = "fd00:3::/120"\n'
    )
    rig = make_rig(_write(tmp_path, config))
    rig.connect(
        psk_client(request_vips=(ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")))
    )
    (sa,) = rig.gateway.list_sas()
    assert sa["remote_vips"] == ["10.3.0.1", "fd00:3::1"]
    rig.gateway.terminate("rw")
    rig.pump()
    assert [p["online"] for p in rig.gateway.stats_json()["pools"]] == [0, 0]


def test_reauth_time_asks_clients_to_reauthenticate(tmp_path: Path) -> None:
    """``reauth_time`` on a connection reaches the engine: the last IKE_AUTH response carries
    AUTH_LIFETIME (RFC 4478) and the client's engine reports it."""
    config = PSK_CONFIG.replace('pools = ["rw"]\n', 'pools = ["rw"]\nreauth_time = "1h"\n', 1)
    rig = make_rig(_write(tmp_path, config))
    rig.connect(psk_client())
    (est,) = rig.events(IkeSaEstablished)
    assert [(e.ike_sa, e.lifetime) for e in rig.events(ReauthRequested)] == [(est.ike_sa, 3600)]


def test_no_reauth_time_no_auth_lifetime(tmp_path: Path) -> None:
    rig = make_rig(_write(tmp_path, PSK_CONFIG))
    rig.connect(psk_client())
    assert rig.events(IkeSaEstablished) and rig.events(ReauthRequested) == []
