"""A directory from ``nea-gateway init`` runs as is with Debian's charon as the client.

``init --no-posture`` (Debian's charon has no TNC client) for EAP-TTLS, ``init --eap tls``
for EAP-TLS with a client certificate issued from init's CA key.  The only edits to the
written ``gateway.toml`` are the control socket (the test's) and ``dataplane = "none"``
(this kernel has no ESP; the dataplanes have their own interop tests).  charon must see the
IKE_SA ESTABLISHED with a virtual IP from init's pool, and ``nea-gateway list-sas`` the same.
"""

from __future__ import annotations

import datetime as _dt
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.init import main as init_main
from tests.interop.test_gateway_charon import GatewayDaemon, _setup

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CLIENT = """\
connections {
  home {
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    local {
      auth = %(auth)s
%(local)s
    }
    remote {
      auth = pubkey
      id = gw.test
    }
    children {
      home {
        remote_ts = 10.1.0.0/16
      }
    }
  }
}
secrets {
%(secrets)s
}
"""


def _daemon_config(directory: Path) -> str:
    text = (directory / "gateway.toml").read_text()
    assert 'socket = "var/nea-gateway.ctl"' in text and 'dataplane = "auto"' in text
    text = text.replace('socket = "var/nea-gateway.ctl"', 'socket = "{sock}"')
    return text.replace('dataplane = "auto"', 'dataplane = "none"')


def _established(charon: Any, daemon: GatewayDaemon, eap_id: str) -> None:
    (csa,) = charon.list_sas()
    assert csa.state == "ESTABLISHED", charon.list_sas_text()
    assert csa.child("home").state == "INSTALLED", charon.list_sas_text()
    assert csa.local_vips and csa.local_vips[0].startswith("10.3.0.")
    (sa,) = daemon.list_sas()
    assert sa["state"] == "ESTABLISHED" and sa["name"] == "rw"
    assert sa["remote_vips"] == list(csa.local_vips)
    assert eap_id in (sa["remote_eap_id"], sa["remote_id"])


def test_init_directory_serves_charon_eap_ttls(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    d = tmp_path / "gw"
    rc = init_main(
        [
            str(d),
            "--name",
            "gw.test",
            "--listen",
            "192.0.2.1",
            "--no-posture",
            "--user",
            "alice",
            "--database",
            "none",
            "--no-pool-db",
        ]
    )
    assert rc == 0
    secret = tomllib.loads((d / "gateway.toml").read_text())["secrets"]["eap-alice"]["secret"]
    gw, cl = _setup(netns)
    daemon = GatewayDaemon(gw, d, _daemon_config(d))
    try:
        charon = charon_factory(cl, "cl")
        charon.add_ca((d / "certs/ca.crt").read_bytes(), "init-ca")
        charon.write_swanctl_conf(
            CLIENT
            % {
                "auth": "eap-ttls",
                "local": "      id = alice\n      eap_id = alice",
                "secrets": f'  eap-alice {{\n    id = alice\n    secret = "{secret}"\n  }}',
            }
        )
        charon.load_all()
        charon.initiate("home")
        _established(charon, daemon, "alice")
        assert "EAP method EAP_TTLS succeeded, MSK established" in charon.log()
        # init's eap_inner puts MS-CHAPv2 first; charon's TTLS client follows the server
        assert "server requested EAP_MSCHAPV2 authentication" in charon.log()
    except BaseException:
        print(daemon.log()[-6000:])
        raise
    finally:
        daemon.stop()


def _client_cert(d: Path, name: str) -> tuple[bytes, bytes]:
    """Issued from init's CA key the way an operator would (clientAuth, e-mail SAN)."""
    ca = x509.load_pem_x509_certificate((d / "certs/ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((d / "private/ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def test_init_directory_serves_charon_eap_tls(
    netns: Any, charon_factory: Any, tmp_path: Path
) -> None:
    d = tmp_path / "gw"
    rc = init_main(
        [
            str(d),
            "--name",
            "gw.test",
            "--listen",
            "192.0.2.1",
            "--eap",
            "tls",
            "--database",
            "none",
            "--no-pool-db",
        ]
    )
    assert rc == 0
    cert_pem, key_pem = _client_cert(d, "carol@example.test")
    gw, cl = _setup(netns)
    daemon = GatewayDaemon(gw, d, _daemon_config(d))
    try:
        charon = charon_factory(cl, "cl")
        charon.add_ca((d / "certs/ca.crt").read_bytes(), "init-ca")
        (charon.swanctl_dir / "x509" / "carol.pem").write_bytes(cert_pem)
        key = charon.swanctl_dir / "private" / "carol.pem"
        key.write_bytes(key_pem)
        key.chmod(0o600)
        charon.write_swanctl_conf(
            CLIENT
            % {
                "auth": "eap-tls",
                "local": "      certs = carol.pem\n      id = carol@example.test",
                "secrets": "",
            }
        )
        charon.load_all()
        charon.initiate("home")
        _established(charon, daemon, "carol@example.test")
        assert "EAP method EAP_TLS succeeded, MSK established" in charon.log()
    except BaseException:
        print(daemon.log()[-6000:])
        raise
    finally:
        daemon.stop()
