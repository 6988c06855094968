"""``nea-gateway init`` (gateway.init): certificates, modes, config and policy load with the
daemon's and the policy's own loaders, databases, --force, an existing CA."""

from __future__ import annotations

import datetime as _dt
import ipaddress
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from gateway.daemon.cli import main as daemon_main
from gateway.daemon.compose import compose
from gateway.daemon.config import load_config
from gateway.init import IKE_INTERMEDIATE_EKU, InitError, init_directory, main
from nea.policy import load_policy


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _verify(gw: x509.Certificate, ca: x509.Certificate, name: str) -> None:
    """Web-PKI chain validation with the server name (raises on failure)."""
    try:
        subject: x509.verification.Subject = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .time(_dt.datetime.now(_dt.UTC))
        .build_server_verifier(subject)
    )
    chain = verifier.verify(gw, [])
    assert chain[-1] == ca


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("init") / "gw"
    rc = main(
        [
            str(d),
            "--name",
            "vpn.example.test",
            "--user",
            "alice",
            "--user",
            "bob@example.test",
            "--radius-client",
            "192.0.2.0/24",
        ]
    )
    assert rc == 0
    return d


def test_certificates_chain_ekus_san(made: Path) -> None:
    ca = _cert(made / "certs/ca.crt")
    gw = _cert(made / "certs/gw.crt")
    _verify(gw, ca, "vpn.example.test")
    with pytest.raises(x509.verification.VerificationError):
        _verify(gw, ca, "other.example.test")
    eku = gw.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert IKE_INTERMEDIATE_EKU.dotted_string == "1.3.6.1.5.5.8.2.2"
    assert IKE_INTERMEDIATE_EKU in eku
    san = gw.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["vpn.example.test"]
    assert gw.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "vpn.example.test"
    assert isinstance(gw.public_key(), ec.EllipticCurvePublicKey)
    assert gw.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    bc = gw.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not bc.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # the keys belong to the certificates
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    for crt, key in (("ca", "ca"), ("gw", "gw")):
        k = serialization.load_pem_private_key((made / f"private/{key}.key").read_bytes(), None)
        assert k.public_key().public_bytes(serialization.Encoding.DER, spki) == _cert(
            made / f"certs/{crt}.crt"
        ).public_key().public_bytes(serialization.Encoding.DER, spki)


def test_file_modes(made: Path) -> None:
    assert _mode(made / "private/gw.key") == 0o600
    assert _mode(made / "private/ca.key") == 0o600
    assert _mode(made / "private") == 0o700
    assert _mode(made / "gateway.toml") == 0o600  # it holds EAP and RADIUS secrets
    assert _mode(made / "certs/gw.crt") == 0o644
    assert not list(made.rglob(".*.tmp"))


def test_config_loads_with_the_daemon_loader_and_composes(made: Path) -> None:
    config = load_config(made / "gateway.toml")
    (conn,) = config.connections
    assert conn.name == "rw"
    assert conn.local.id == "vpn.example.test"
    assert conn.local.certs == (made / "certs/gw.crt",)
    assert conn.remote.auth == "eap-ttls"
    assert conn.posture.assess
    assert {c.name: c.verdict for c in conn.children} == {
        "allow": ("allow",),
        "isolate": ("isolate",),
    }
    assert config.control.socket == made / "var/nea-gateway.ctl"
    assert config.ike.port == 500 and config.ike.port_nat_t == 4500
    assert config.nea is not None and config.nea.policy == made / "policy.toml"
    assert config.nea.database == f"sqlite:///{made.resolve()}/var/nea-evidence.db"
    eap_ids = {i for s in config.secrets if s.kind == "eap" for i in s.ids}
    assert eap_ids == {"alice", "bob@example.test"}
    assert all(s.secret and len(s.secret) >= 20 for s in config.secrets if s.kind == "eap")
    assert config.radius is not None
    (client,) = config.radius.clients
    assert client.address == "192.0.2.0/24" and len(client.secret) >= 20
    assert config.authorities[0].cacert == made / "certs/ca.crt"
    from gateway.daemon.radius import radius_config
    from gateway.radius.compose import build_eap_factory

    rc = radius_config(config)  # what the daemon's [radius] front-end is built from
    assert rc is not None
    build_eap_factory(rc)  # loads the TLS certificate and key for PEAP/TTLS/TLS
    comp = compose(config)  # reads the certificate and key, builds the validators
    assert set(comp.connections) == {"rw"}
    assert daemon_main(["check", "-c", str(made / "gateway.toml")]) == 0


def test_policy_loads(made: Path) -> None:
    policy = load_policy(made / "policy.toml")
    assert policy.policies and policy.enforcements


def test_databases_created(made: Path) -> None:
    from gateway.db import open_for_reading

    config = load_config(made / "gateway.toml")
    assert config.nea is not None and config.nea.database is not None
    open_for_reading(config.nea.database).dispose()  # raises unless the schema is at head
    with sqlite3.connect(made / "var/nea-pool.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "nea_pool_alembic_version" in tables


def test_rerun_refuses_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "gw"
    assert main([str(d), "--name", "gw.test", "--no-pool-db"]) == 0
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and "var" not in p.parts}
    capsys.readouterr()
    assert main([str(d), "--name", "gw.test"]) == 2
    err = capsys.readouterr().err
    assert "not overwriting" in err and "--force" in err and str(d / "gateway.toml") in err
    after = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and "var" not in p.parts}
    assert after == before
    # one existing file is enough to refuse
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "policy.toml").write_text("# mine\n")
    assert main([str(lone), "--name", "gw.test"]) == 2
    assert (lone / "policy.toml").read_text() == "# mine\n"
    assert not (lone / "gateway.toml").exists()


def test_force_replaces_files_and_keeps_the_database(tmp_path: Path) -> None:
    d = tmp_path / "gw"
    assert main([str(d), "--name", "gw.test", "--no-pool-db"]) == 0
    old_gw = (d / "certs/gw.crt").read_bytes()
    with sqlite3.connect(d / "var/nea-evidence.db") as db:
        db.execute("CREATE TABLE operator_note (x TEXT)")
        db.execute("INSERT INTO operator_note VALUES ('kept')")
    assert main([str(d), "--name", "gw2.test", "--force", "--no-pool-db"]) == 0
    assert (d / "certs/gw.crt").read_bytes() != old_gw
    assert load_config(d / "gateway.toml").connections[0].local.id == "gw2.test"
    with sqlite3.connect(d / "var/nea-evidence.db") as db:
        assert db.execute("SELECT x FROM operator_note").fetchall() == [("kept",)]
    assert _mode(d / "private/gw.key") == 0o600


def test_force_reissue_from_inits_own_ca(tmp_path: Path) -> None:
    d = tmp_path / "gw"
    assert main([str(d), "--name", "gw.test", "--no-pool-db", "--database", "none"]) == 0
    ca_pem = (d / "certs/ca.crt").read_bytes()
    ca_key = (d / "private/ca.key").read_bytes()
    old_gw = (d / "certs/gw.crt").read_bytes()
    args = ["--ca-cert", str(d / "certs/ca.crt"), "--ca-key", str(d / "private/ca.key")]
    assert main([str(d), "--name", "gw.test", "--no-pool-db", "--database", "none", *args]) == 2
    assert (
        main([str(d), "--name", "gw.test", "--no-pool-db", "--database", "none", "--force", *args])
        == 0
    )
    assert (d / "certs/ca.crt").read_bytes() == ca_pem
    assert (d / "private/ca.key").read_bytes() == ca_key
    assert (d / "certs/gw.crt").read_bytes() != old_gw
    _verify(_cert(d / "certs/gw.crt"), x509.load_pem_x509_certificate(ca_pem), "gw.test")


def _external_ca(tmp_path: Path) -> tuple[Path, Path, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corporate Root")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cp, kp = tmp_path / "root.crt", tmp_path / "root.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cp, kp, cert


def test_existing_ca_is_used(tmp_path: Path) -> None:
    cp, kp, root = _external_ca(tmp_path)
    d = tmp_path / "gw"
    assert main([str(d), "--name", "gw.test", "--ca-cert", str(cp), "--ca-key", str(kp)]) == 0
    assert _cert(d / "certs/ca.crt") == root
    assert not (d / "private/ca.key").exists()  # the CA key stays where it was
    gw = _cert(d / "certs/gw.crt")
    assert gw.issuer == root.subject
    _verify(gw, root, "gw.test")
    assert gw.not_valid_after_utc <= root.not_valid_after_utc
    compose(load_config(d / "gateway.toml"))


def test_unusable_ca_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cp, _kp, _ = _external_ca(tmp_path)
    other = tmp_path / "other.key"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    d = tmp_path / "gw"
    assert main([str(d), "--ca-cert", str(cp), "--ca-key", str(other)]) == 2
    assert "is not the key of" in capsys.readouterr().err
    assert main([str(d), "--ca-cert", str(cp)]) == 2
    assert "go together" in capsys.readouterr().err
    # a leaf certificate is not a CA
    leaf_dir = tmp_path / "leaf"
    assert main([str(leaf_dir), "--name", "gw.test", "--no-pool-db", "--database", "none"]) == 0
    assert (
        main(
            [
                str(d),
                "--ca-cert",
                str(leaf_dir / "certs/gw.crt"),
                "--ca-key",
                str(leaf_dir / "private/gw.key"),
            ]
        )
        == 2
    )
    assert "not a CA certificate" in capsys.readouterr().err
    assert not (d / "gateway.toml").exists()


@pytest.mark.parametrize(
    ("eap", "extra", "posture"),
    [("peap", [], True), ("fast", [], True), ("tls", [], False), ("ttls", ["--no-posture"], False)],
)
def test_methods(tmp_path: Path, eap: str, extra: list[str], posture: bool) -> None:
    d = tmp_path / eap
    args = [str(d), "--name", "gw.test", "--eap", eap, "--database", "none", "--no-pool-db"]
    assert main([*args, *extra]) == 0
    config = load_config(d / "gateway.toml")
    (conn,) = config.connections
    assert conn.remote.auth == f"eap-{eap}"
    assert conn.posture.assess is posture
    if eap == "fast":
        assert conn.remote.eap_inner == ("mschapv2", "gtc")
        assert conn.remote.fast_provisioning == 2
        # authenticated provisioning: wpa_supplicant and Cisco offer RSA suites only
        assert isinstance(_cert(d / "certs/gw.crt").public_key(), rsa.RSAPublicKey)
    # EAP-FAST gets a PAC-Opaque key of its own (PACs survive restarts); others none
    pac = [s for s in config.secrets if s.kind == "pac"]
    assert [len(s.secret or b"") for s in pac] == ([32] if eap == "fast" else [])
    assert config.nea is not None and config.nea.database is None
    assert not (d / "var/nea-pool.db").exists()
    compose(config)


def test_rsa_and_ip_name(tmp_path: Path) -> None:
    result = init_directory(
        tmp_path / "gw", name="192.0.2.1", use_rsa=True, database=None, pool_database=False
    )
    gw = _cert(result.gateway_cert)
    ca = _cert(result.ca_cert)
    assert isinstance(gw.public_key(), rsa.RSAPublicKey)
    assert isinstance(ca.public_key(), rsa.RSAPublicKey)
    san = gw.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.1")]
    assert san.get_values_for_type(x509.DNSName) == ["192.0.2.1"]  # for Windows (error 13801)
    _verify(gw, ca, "192.0.2.1")
    ku = gw.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    config = load_config(result.config)
    assert config.connections[0].local.id == "192.0.2.1"
    compose(config)


def test_bad_values_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "gw"
    assert main([str(d), "--pool", "10.3.0.0/33"]) == 2
    assert "would not load" in capsys.readouterr().err
    assert not d.exists()
    with pytest.raises(InitError, match="--eap"):
        init_directory(d, eap="md5")
