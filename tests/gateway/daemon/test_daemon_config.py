# ruff: noqa: E501  (a table of TOML snippets reads better one case per line)
"""``nea-gateway`` configuration: every key parsed into its typed value, the embedded
defaults, and errors that name the file, the key and the reason (CLI exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.daemon.config import (
    ConfigError,
    default_config,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[3]

FULL = """
dataplane = "none"

[ike]
listen = "192.0.2.1"
port = 1500
port_nat_t = 14500
cookie_threshold = 20
half_open_timeout = "45s"
auth_timeout = "2m"
retransmit_timeout = 2.5
retransmit_base = 1.5
retransmit_tries = 3
fragment_size = 1400

[control]
socket = "run/ctl.sock"

[log]
default = 1
ike = 2
cfg = "control"
enc = -1
tls = "debug"
tnc = 2
knl = 0
file = "log/gw.log"

[pools.rw]
addrs = "10.3.0.0/24"
dns = ["10.1.0.53"]
[pools.quarantine]
addrs = ["10.99.0.10-10.99.0.99"]
quarantine = true

[connections.rw]
version = 2
local_addrs = "192.0.2.1"
remote_addrs = ["%any"]
proposals = "aes128-sha256-x25519, aes256gcm16-prfsha384-ecp384"
pools = ["rw"]
fragmentation = "yes"
send_certreq = false
vips = "0.0.0.0, ::"
rekey_time = "4h"
reauth_time = "8h"
dpd_delay = "30s"

[connections.rw.local]
auth = "pubkey"
certs = ["gw.crt"]
id = "gw.test"

[connections.rw.remote]
auth = "eap-ttls"
id = "%any"
eap_id = "%any"
cacerts = "ca.crt"
eap_inner = ["md5", "mschapv2"]

[connections.rw.posture]
assess = true
method = "pt-eap"

[connections.rw.children.allow]
local_ts = "10.1.0.0/16, 10.2.0.0/16"
remote_ts = "dynamic"
esp_proposals = ["aes128gcm16", "default"]
start_action = "none"
mode = "tunnel"
verdict = ["allow"]
rekey_time = "1h"

[connections.rw.children.isolate]
local_ts = ["10.99.255.0/24"]
verdict = "isolate"
pools = ["quarantine"]

[secrets.eap-carol]
id = "carol"
id-2 = "carol@example.test"
secret = "0x736563726574"

[secrets.ike-site]
id = ["gw.test", "peer.test"]
secret = "0sc2VjcmV0"

[secrets.private-gw]
file = "gw.key"

[authorities.ca]
cacert = "ca.crt"
crl = "ca.crl"

[nea]
validators = ["test", "os"]
policy = "policy.toml"
database = "postgresql://nea@db/nea"
recommendation_policy = "all"

[radius]
listen = "127.0.0.1"
auth_port = 11812
acct_port = 11813
methods = ["ttls", "md5"]
inner_methods = ["mschapv2"]
certs = ["radius.crt"]
cacerts = ["ca.crt"]
posture = true
session_timeout = 3600
conversation_timeout = 30
[[radius.clients]]
address = "192.0.2.0/24"
secret = "testing123"
name = "switches"
require_message_authenticator = true
[radius.vlans]
allow = 10
allow_filter_id = "employees"
isolate = "99"
isolate_filter_id = "quarantine"
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "gw.toml"
    p.write_text(text)
    return load_config(p)


def test_every_key(tmp_path: Path) -> None:
    c = _load(tmp_path, FULL)
    assert c.dataplane == "none"
    assert (c.ike.listen, c.ike.port, c.ike.port_nat_t) == ("192.0.2.1", 1500, 14500)
    assert c.ike.cookie_threshold == 20 and c.ike.half_open_timeout == 45.0
    assert c.ike.auth_timeout == 120.0 and c.ike.retransmit_timeout == 2.5
    assert c.ike.retransmit_base == 1.5 and c.ike.retransmit_tries == 3
    assert c.ike.fragment_size == 1400
    assert c.control.socket == tmp_path / "run/ctl.sock"
    assert dict(c.log.levels) == {
        "default": 1,
        "ike": 2,
        "cfg": 1,
        "enc": -1,
        "tls": 2,
        "tnc": 2,
        "knl": 0,
    }
    assert c.log.file == tmp_path / "log/gw.log"
    assert set(c.pools) == {"rw", "quarantine"}
    (rw,) = c.connections
    assert rw.local_addrs == ("192.0.2.1",) and rw.remote_addrs == ("%any",)
    assert rw.proposals == ("aes128-sha256-x25519", "aes256gcm16-prfsha384-ecp384")
    assert rw.pools == ("rw",) and rw.fragmentation and not rw.send_certreq
    assert rw.vips == ("0.0.0.0", "::") and rw.rekey_time == 4 * 3600.0
    assert rw.reauth_time == 8 * 3600.0 and rw.dpd_delay == 30.0
    assert rw.local.auth == "pubkey" and rw.local.certs == (tmp_path / "gw.crt",)
    assert rw.local.id == "gw.test"
    assert rw.remote.auth == "eap-ttls" and rw.remote.id is None and rw.remote.eap_id == "%any"
    assert rw.remote.cacerts == (tmp_path / "ca.crt",)
    assert rw.remote.eap_inner == ("md5", "mschapv2")
    assert rw.posture.assess and rw.posture.method == "pt-eap"
    allow, isolate = rw.children
    assert allow.local_ts == ("10.1.0.0/16", "10.2.0.0/16") and allow.remote_ts == ()
    assert allow.esp_proposals == ("aes128gcm16",) and allow.verdict == ("allow",)
    assert allow.rekey_time == 3600.0 and allow.pools is None
    assert isolate.verdict == ("isolate",) and isolate.pools == ("quarantine",)
    eap, ike, key = c.secrets
    assert eap.kind == "eap" and eap.ids == ("carol", "carol@example.test")
    assert eap.secret == b"secret"
    assert ike.kind == "ike" and ike.ids == ("gw.test", "peer.test") and ike.secret == b"secret"
    assert key.kind == "private" and key.file == tmp_path / "gw.key"
    (ca,) = c.authorities
    assert ca.cacert == tmp_path / "ca.crt" and ca.crl == tmp_path / "ca.crl"
    assert c.nea is not None and c.nea.validators == ("test", "os")
    assert c.nea.policy == tmp_path / "policy.toml"
    assert c.nea.database == "postgresql://nea@db/nea"
    assert c.nea.recommendation_policy == "all"
    r = c.radius
    assert r is not None and r.auth_port == 11812 and r.acct_port == 11813
    assert r.methods == ("ttls", "md5") and r.inner_methods == ("mschapv2",)
    assert r.posture and r.session_timeout == 3600 and r.conversation_timeout == 30.0
    (client,) = r.clients
    assert (client.address, client.secret, client.name) == (
        "192.0.2.0/24",
        "testing123",
        "switches",
    )
    assert dict(r.vlans) == {
        "allow": "10",
        "allow_filter_id": "employees",
        "isolate": "99",
        "isolate_filter_id": "quarantine",
    }


def test_embedded_defaults() -> None:
    c = default_config()
    assert c.ike.listen == "127.0.0.1"
    assert (c.ike.port, c.ike.port_nat_t) == ((500, 4500) if os.geteuid() == 0 else (10500, 14500))
    assert c.control.socket.name == "nea-gateway.ctl" and c.control.socket.parent.name == "var"
    assert c.dataplane == "auto" and c.connections == ()
    assert c.nea is not None and c.nea.database == "sqlite:///var/nea-evidence.db"
    assert set(c.pools) == {"rw"}


BASE = """
[connections.c]
[connections.c.local]
auth = "psk"
[connections.c.remote]
auth = "psk"
[secrets.ike-x]
secret = "s"
"""

ERRORS = [
    ("bogus = 1", "bogus", "unknown key"),
    ('dataplane = "dpdk"', "dataplane", "not one of"),
    ("[ike]\nport = 70000", "ike.port", "1..65535"),
    ("[ike]\nport = 4500", "ike.port_nat_t", "must differ"),
    ('[ike]\nlisten = "gateway"', "ike.listen", "not an IP address"),
    ('[ike]\nhalf_open_timeout = "soon"', "ike.half_open_timeout", "not a duration"),
    ("[ike]\nretransmit_tries = true", "ike.retransmit_tries", "must be an integer"),
    ("[control]\nsocket = 5", "control.socket", "must be a string"),
    ('[log]\nike = "loud"', "log.ike", "not a level"),
    ("[log]\nfoo = 1", "log.foo", "unknown subsystem"),
    ('[pools.p]\ndns = "10.0.0.1"', "pools", "needs addrs"),
    ('[pools.p]\naddrs = "not-an-address"', "pools", ""),
    ("[connections.c]\nfoo = 1", "connections.c.foo", "unknown key"),
    ('[connections.c]\n[connections.c.local]\nauth = "psk"', "connections.c.remote", "missing"),
    (
        BASE.replace(
            '[connections.c.remote]\nauth = "psk"', '[connections.c.remote]\nauth = "xauth"'
        ),
        "connections.c.remote.auth",
        "not one of",
    ),
    (
        BASE + '[connections.c.children.x]\nlocal_ts = "10.1.0.0/33"',
        "connections.c.children.x.local_ts",
        "not a subnet",
    ),
    (
        BASE + '[connections.c.children.x]\nesp_proposals = "aes128-md5"',
        "connections.c.children.x.esp_proposals",
        "unknown ESP proposal keyword",
    ),
    (
        BASE + '[connections.c.children.x]\nstart_action = "trap"',
        "connections.c.children.x.start_action",
        "not one of",
    ),
    (
        BASE + '[connections.c.children.x]\nverdict = "maybe"',
        "connections.c.children.x.verdict",
        "allow, isolate",
    ),
    (
        BASE + '[connections.c.children.x]\npools = ["nope"]',
        "connections.c.children.x.pools",
        "no [pools.nope]",
    ),
    (
        BASE.replace("[connections.c]", '[connections.c]\nproposals = "aes128-sha256"'),
        "connections.c.proposals",
        "DH group",
    ),
    (
        BASE.replace("[connections.c]", '[connections.c]\npools = ["nope"]'),
        "connections.c.pools",
        "no [pools.nope]",
    ),
    (
        BASE.replace("[connections.c]", "[connections.c]\nversion = 1"),
        "connections.c.version",
        "IKEv1",
    ),
    (
        BASE.replace("[connections.c]", '[connections.c]\nvips = "any"'),
        "connections.c.vips",
        "not an address",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\ncerts = "a"\n[connections.c.remote]\nauth = "eap-fast"\n'
        "fast_provisioning = 4",
        "connections.c.remote.fast_provisioning",
        "0..3",
    ),
    (
        BASE.replace("[connections.c]", '[connections.c]\nremote_addrs = "peer"'),
        "connections.c.remote_addrs",
        "not an IP address",
    ),
    (
        BASE.replace("[connections.c]", '[connections.c]\nfragmentation = "maybe"'),
        "connections.c.fragmentation",
        "true or false",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\n[connections.c.remote]\nauth = "eap-md5"',
        "connections.c.local.certs",
        "needs a certificate",
    ),
    (
        '[connections.c.local]\nauth = "psk"\nid = "C=CH, XX=foo"\n[connections.c.remote]\nauth = "psk"',
        "connections.c.local.id",
        "not an identity",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\ncerts = "a"\n[connections.c.remote]\nauth = "eap-md5"\n'
        "[connections.c.posture]\nassess = true",
        "connections.c.posture.assess",
        "tunnel method",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\ncerts = "a"\n[connections.c.remote]\nauth = "eap-md5"\n'
        'eap_inner = ["md5"]',
        "connections.c.remote.eap_inner",
        "only for tunnel methods",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\ncerts = "a"\n[connections.c.remote]\nauth = "eap-ttls"\n'
        'fast_a_id = "x"',
        "connections.c.remote.fast_a_id",
        "only with auth = eap-fast",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\ncerts = "a"\n[connections.c.remote]\nauth = "eap-ttls"\n'
        '[connections.c.posture]\nassess = true\n[connections.c.children.a]\nverdict = "allow"',
        "connections.c.children",
        "isolate verdict",
    ),
    (
        '[connections.c.local]\nauth = "pubkey"\ncerts = "a"\n[connections.c.remote]\nauth = "eap-ttls"\n'
        "[connections.c.posture]\nassess = true\n[nea]\nenabled = false",
        "connections.c.posture.assess",
        "needs [nea]",
    ),
    (BASE.replace('[secrets.ike-x]\nsecret = "s"', ""), "connections.c.remote.auth", "ike-"),
    ('[secrets.foo-x]\nsecret = "s"', "secrets.foo-x", "starts with eap-"),
    ('[secrets.eap-x]\nid = "a"', "secrets.eap-x.secret", "missing"),
    ('[secrets.eap-x]\nsecret = "0xzz"', "secrets.eap-x", "not valid hex"),
    ('[secrets.eap-x]\nsecret = "s"\nuser = "a"', "secrets.eap-x.user", "unknown key"),
    ('[secrets.private-x]\nsecret = "s"', "secrets.private-x.file", "missing"),
    ('[secrets.pac-x]\nprevious = ["0x1111111111111111111111111111111111111111111111111111111111111111"]', "secrets.pac-x.secret", "current PAC-Opaque key"),
    ('[secrets.pac-x]\nsecret = "plain"', "secrets.pac-x.secret", "0x<64 hex digits>"),
    ('[secrets.pac-x]\nsecret = "0x1122"', "secrets.pac-x.secret", "32 bytes (AES-256-GCM), not 2"),
    ('[secrets.pac-x]\nsecret = "0x1111111111111111111111111111111111111111111111111111111111111111"\nprevious = ["0xzz"]', "secrets.pac-x.previous[0]", "not valid hex"),
    ('[secrets.pac-x]\nsecret = "0x1111111111111111111111111111111111111111111111111111111111111111"\n[secrets.pac-y]\nsecret = "0x1111111111111111111111111111111111111111111111111111111111111111"', "secrets.pac-y", "only one"),
    ('[authorities.a]\ncrl = "x"', "authorities.a.cacert", "missing"),
    ('[nea]\nvalidators = ["virus"]', "nea.validators", "not one of"),
    ('[nea]\nvalidators = ["os", "os"]', "nea.validators", "twice"),
    ('[nea]\ndatabase = "nea.db"', "nea.database", "not a URL"),
    ('[nea]\nrecommendation_policy = "majority"', "nea.recommendation_policy", "not one of"),
    ('[radius]\nlisten = "127.0.0.1"', "radius.clients", "at least one"),
    (
        '[radius]\n[[radius.clients]]\naddress = "192.0.2.0/24"',
        "radius.clients[0]",
        "needs address and secret",
    ),
    (
        '[radius]\nmethods = ["leap"]\n[[radius.clients]]\naddress = "192.0.2.1"\nsecret = "s"',
        "radius.methods",
        "not one of",
    ),
    (
        '[radius]\nmethods = ["peap"]\n[[radius.clients]]\naddress = "192.0.2.1"\nsecret = "s"',
        "radius.certs",
        "TLS-based",
    ),
    (
        '[radius]\n[[radius.clients]]\naddress = "192.0.2.1"\nsecret = "s"\n[radius.vlans]\nblue = "1"',
        "radius.vlans.blue",
        "unknown key",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), ERRORS, ids=[e[1] for e in ERRORS])
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert err.value.key == key
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{tmp_path / 'gw.toml'}: {key}: ")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[ike\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_parse_config_with_source_name() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"ike": {"port": "x"}}, "inline")
    assert str(err.value) == "inline: ike.port: must be an integer, not a string"


def test_compose_errors_name_keys(tmp_path: Path) -> None:
    """Files are read at composition: a missing certificate names its key."""
    from gateway.daemon.compose import compose

    c = _load(
        tmp_path,
        '[connections.c.local]\nauth = "pubkey"\ncerts = "gw.crt"\n'
        '[connections.c.remote]\nauth = "eap-md5"\n[secrets.eap-a]\nid = "a"\nsecret = "b"',
    )
    with pytest.raises(ConfigError) as err:
        compose(c)
    assert err.value.key == "connections.c.local.certs" and "cannot read" in err.value.reason


@pytest.mark.parametrize("cmd", ["run", "check"])
def test_cli_exit_2_with_message(tmp_path: Path, cmd: str) -> None:
    p = tmp_path / "gw.toml"
    p.write_text("[ike]\nport = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", cmd, "-c", str(p)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"nea-gateway: {p}: ike.port: must be 1..65535, not 0"
    assert "Traceback" not in proc.stderr


def test_example_file_parses() -> None:
    c = load_config(REPO / "examples" / "gateway.toml")
    assert [x.name for x in c.connections] == ["rw-posture", "rw-tls"]
    posture = c.connections[0]
    assert posture.posture.assess and [ch.verdict for ch in posture.children] == [
        ("allow",),
        ("isolate",),
    ]
    assert c.radius is not None and c.radius.posture


def test_run_with_unreadable_certificate_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "gw.toml"
    p.write_text(
        '[control]\nsocket = "ctl.sock"\n'
        '[connections.c.local]\nauth = "pubkey"\ncerts = "missing.crt"\n'
        '[connections.c.remote]\nauth = "eap-md5"\n[secrets.eap-a]\nid = "a"\nsecret = "b"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "run", "-c", str(p)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"nea-gateway: {p}: connections.c.local.certs: cannot read ")
    assert "Traceback" not in proc.stderr


def test_run_with_bad_radius_section_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "gw.toml"
    p.write_text(
        '[control]\nsocket = "ctl.sock"\n[ike]\nport = 10600\nport_nat_t = 10601\n'
        '[radius]\nauth_port = 0\nacct_port = 0\nmethods = ["ttls"]\ncerts = "r.crt"\n'
        '[[radius.clients]]\naddress = "127.0.0.1"\nsecret = "s"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "run", "-c", str(p)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{p}: radius.certs:" in proc.stderr and "Traceback" not in proc.stderr


def test_check_reads_files_and_says_ok(tmp_path: Path, cert_factory: object) -> None:
    ca = cert_factory.ca("ca")  # type: ignore[attr-defined]
    gw = cert_factory.issue(ca, "gw.test", san_dns=("gw.test",))  # type: ignore[attr-defined]
    p = tmp_path / "gw.toml"
    p.write_text(
        f'[connections.c.local]\nauth = "pubkey"\ncerts = "{gw.cert_path}"\n'
        '[connections.c.remote]\nauth = "eap-tls"\n'
        f'[secrets.private-gw]\nfile = "{gw.key_path}"\n[authorities.ca]\ncacert = "{ca.cert_path}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "check", "-c", str(p)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"{p}: OK (1 connections)"
    p.write_text(p.read_text().replace(str(gw.key_path), str(ca.key_path)))
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.daemon", "check", "-c", str(p)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "connections.c.local.certs: no private key for" in proc.stderr


def test_random_secret_never_takes_a_swanctl_encoding_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated password that happened to start with ``0x``/``0s`` would be read as hex or
    base64 (and rejected), so ``init`` failed about once in 2,000 runs; one starting with
    ``-`` broke ``nea-endpoint --password X`` one time in 64.  Such draws are redrawn."""
    import gateway.daemon.config as cfg

    draws = iter(["0xNotHex", "0sNot-base64", "-looks_like_an_option", "plain-Text_1"])
    monkeypatch.setattr(cfg.secrets, "token_urlsafe", lambda n: next(draws))
    assert cfg.random_secret() == "plain-Text_1"
    monkeypatch.undo()
    for _ in range(200):
        text = cfg.random_secret(6)
        assert not text.startswith(("0x", "0s", "-"))
        config = parse_config({"secrets": {"eap-x": {"id": "x", "secret": text}}})
        assert config.secrets[0].secret == text.encode()


def test_pac_keys_current_and_previous() -> None:
    current, old = bytes(range(32)), bytes(range(32, 64))
    config = parse_config(
        {"secrets": {"pac-fast": {"secret": "0x" + current.hex(), "previous": ["0x" + old.hex()]}}}
    )
    (pac,) = config.secrets
    assert (pac.kind, pac.secret, pac.previous) == ("pac", current, (old,))
    assert current.hex() not in repr(pac)  # never in logs


def test_pac_keys_reach_the_radius_front_end() -> None:
    """The daemon's [radius] EAP-FAST opens PACs with the same [secrets.pac-*] keys."""
    from gateway.daemon.radius import radius_config

    current, old = bytes(range(32)), bytes(range(32, 64))
    config = parse_config(
        {
            "radius": {"methods": ["md5"], "clients": [{"address": "127.0.0.1", "secret": "s"}]},
            "secrets": {
                "pac-fast": {"secret": "0x" + current.hex(), "previous": ["0x" + old.hex()]}
            },
        }
    )
    assert radius_config(config).fast_pac_keys == (current, old)
