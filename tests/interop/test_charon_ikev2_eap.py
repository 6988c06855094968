"""Debian's charon as an EAP client (eap-md5, eap-mschapv2, eap-gtc) against our responder,
which authenticates with an ECDSA certificate and runs ``ike.eap``'s EAP server inside
IKE_AUTH; both sides finish with AUTH from the MSK (RFC 7296, 2.16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_charon_ikev2_psk import CLIENT_CONF, Responder, _check, _setup

pytestmark = [pytest.mark.netns, pytest.mark.slow]

EAP_SECRETS = """
secrets {
  eap-bob {
    id = bob
    secret = "%s"
  }
}
"""


def _run(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path, method: str, password: str
) -> tuple[Any, Responder, Any]:
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
    gw, cl = _setup(netns)
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.cert_pem)
    conn = {
        "name": "gw",
        "local_id": "gw.test",
        "local_auth": "pubkey",
        "remote_auth": "eap",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "eap": {"methods": [method], "users": {"bob": "hello"}},
        "pool": "10.3.0.0/28",
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    responder = Responder(gw, tmp_path / "ours", [conn])
    charon = charon_factory(cl, "cl")
    charon.add_ca(root)
    conf = CLIENT_CONF % {
        "proposals": "aes128-sha256-x25519",
        "esp": "aes128gcm16",
        "auth": f"eap-{method}",
        "rauth": "pubkey",
        "cl_id": "cl.test",
        "local_extra": "      eap_id = bob",
        "psk": "unused-psk-secret",
    }
    conf = conf[: conf.index("secrets {")] + EAP_SECRETS % password
    charon.write_swanctl_conf(conf)
    charon.load_all()
    proc = charon.initiate("home", check=False)
    return charon, responder, proc


@pytest.mark.parametrize("method", ["md5", "mschapv2", "gtc"])
def test_charon_eap_client(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path, method: str
) -> None:
    charon, responder, proc = _run(netns, charon_factory, cert_factory, tmp_path, method, "hello")
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _check(charon, responder, "10.3.0.")
        est = [e for e in responder.events() if e["event"] == "IkeSaEstablished"]
        assert est[0]["eap_identity"] == "bob"
        assert f"EAP method EAP_{method.upper()} succeeded" in charon.log()
        assert "authentication of 'gw.test' with EAP successful" in charon.log()
    except BaseException:
        print(responder.log()[-8000:])
        raise
    finally:
        responder.stop()


def test_charon_eap_wrong_password(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    charon, responder, proc = _run(
        netns, charon_factory, cert_factory, tmp_path, "mschapv2", "wrong"
    )
    try:
        assert proc.returncode != 0
        assert not [s for s in charon.list_sas() if s.state == "ESTABLISHED"]
        assert any(e["event"] == "IkeSaClosed" for e in responder.events())
    finally:
        responder.stop()


def test_charon_eap_tls_client(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    """EAP-TLS (``ike.eap_tls``) inside IKE_AUTH: charon's client certificate is checked by
    our TLS server, the 64-octet MSK from the TLS exporter signs both final AUTH payloads."""
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
    cl_cert = cert_factory.issue(root, "cl.test", san_dns=("cl.test",))
    gw, cl = _setup(netns)
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.cert_pem)
    conn = {
        "name": "gw",
        "local_id": "gw.test",
        "local_auth": "pubkey",
        "remote_auth": "eap",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "eap": {
            "methods": ["tls"],
            "tls": {
                "cert": str(gw_cert.chain_path),
                "key": str(gw_cert.key_path),
                "ca": [str(root_path)],
            },
        },
        "pool": "10.3.0.0/28",
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    responder = Responder(gw, tmp_path / "ours", [conn])
    try:
        charon = charon_factory(cl, "cl")
        charon.add_ca(root)
        charon.add_cert(cl_cert)
        conf = CLIENT_CONF % {
            "proposals": "aes128-sha256-x25519",
            "esp": "aes128gcm16",
            "auth": "eap-tls",
            "rauth": "pubkey",
            "cl_id": "cl.test",
            "local_extra": f"      certs = {cl_cert.name}.pem",
            "psk": "unused-psk-secret",
        }
        charon.write_swanctl_conf(conf[: conf.index("secrets {")])
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        log = charon.log()
        assert "EAP method EAP_TLS succeeded, MSK established" in log
        assert "authentication of 'gw.test' with EAP successful" in log
    except BaseException:
        print(responder.log()[-8000:])
        raise
    finally:
        responder.stop()
