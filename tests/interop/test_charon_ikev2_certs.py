"""Debian's charon authenticates with certificates against our responder (and we with ours).

RFC 7427 signatures (charon sends SIGNATURE_HASH_ALGORITHMS), ECDSA and RSA keys, a chain
through an intermediate CA that our responder sends as a second CERT payload, and a client
whose certificate does not carry its IKE identity (refused with AUTHENTICATION_FAILED).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_charon_ikev2_psk import CLIENT_CONF, Responder, _check, _setup

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def _conf(cert: str, proposals: str = "aes128-sha256-ecp256") -> str:
    return CLIENT_CONF % {
        "proposals": proposals,
        "esp": "aes128gcm16",
        "auth": "pubkey",
        "rauth": "pubkey",
        "cl_id": "cl.test",
        "local_extra": f"      certs = {cert}",
        "psk": "unused-secret",
    }


@pytest.mark.parametrize(
    ("key_type", "via_intermediate"),
    [("ecdsa", False), ("rsa", False), ("ed25519", False), ("ecdsa-p384", True)],
)
def test_charon_connects_with_certificates(
    netns: Any,
    charon_factory: Any,
    cert_factory: Any,
    tmp_path: Path,
    key_type: str,
    via_intermediate: bool,
) -> None:
    root = cert_factory.ca("root")
    issuer = cert_factory.ca("sub", parent=root) if via_intermediate else root
    gw_cert = cert_factory.issue(issuer, "gw.test", san_dns=("gw.test",), key_type=key_type)
    cl_cert = cert_factory.issue(root, "cl.test", san_dns=("cl.test",), key_type=key_type)
    gw, cl = _setup(netns)
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.cert_pem)
    inter_paths = []
    if via_intermediate:
        p = tmp_path / "sub.pem"
        p.write_bytes(issuer.cert_pem)
        inter_paths.append(str(p))
    conn = {
        "name": "gw",
        "local_id": "gw.test",
        "remote_id": "cl.test",
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "intermediates": inter_paths,
        "cacerts": [str(root_path)],
        "pool": "10.3.0.0/28",
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    responder = Responder(gw, tmp_path / "ours", [conn])
    try:
        charon = charon_factory(cl, "cl")
        charon.add_ca(root)
        charon.add_cert(cl_cert)
        charon.write_swanctl_conf(_conf(f"{cl_cert.name}.pem"))
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        log = charon.log()
        assert "authentication of 'gw.test' with" in log
        if via_intermediate:
            assert "received end entity cert" in log
    except BaseException:
        print(responder.log()[-6000:])
        raise
    finally:
        responder.stop()


def test_certificate_without_the_identity_is_refused(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    root = cert_factory.ca("root")
    gw_cert = cert_factory.issue(root, "gw.test", san_dns=("gw.test",))
    cl_cert = cert_factory.issue(root, "other.test", san_dns=("other.test",))
    gw, cl = _setup(netns)
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.cert_pem)
    conn = {
        "name": "gw",
        "local_id": "gw.test",
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "cacerts": [str(root_path)],
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
        "pool": "10.3.0.0/28",
    }
    responder = Responder(gw, tmp_path / "ours", [conn])
    try:
        charon = charon_factory(cl, "cl")
        charon.add_ca(root)
        charon.add_cert(cl_cert)
        # charon claims cl.test although its certificate only names other.test
        conf = _conf(f"{cl_cert.name}.pem").replace("id = cl.test", "id = cl.test")
        charon.write_swanctl_conf(conf)
        charon.load_all()
        proc = charon.initiate("home", check=False, timeout=10)
        assert proc.returncode != 0
        assert "does not match" in responder.log()
    finally:
        responder.stop()


def test_fragmented_ike_auth_both_ways(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    """RSA-3072 chains make IKE_AUTH larger than 600 octets: charon and we both split it into
    SKF fragments (RFC 7383) and reassemble the other's."""
    root = cert_factory.ca("root", key_type="rsa", rsa_bits=3072)
    gw_cert = cert_factory.issue(
        root, "gw.test", san_dns=("gw.test",), key_type="rsa", rsa_bits=3072
    )
    cl_cert = cert_factory.issue(
        root, "cl.test", san_dns=("cl.test",), key_type="rsa", rsa_bits=3072
    )
    gw, cl = _setup(netns)
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.cert_pem)
    conn = {
        "name": "gw",
        "local_id": "gw.test",
        "remote_id": "cl.test",
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "cacerts": [str(root_path)],
        "pool": "10.3.0.0/28",
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    responder = Responder(gw, tmp_path / "ours", [conn], fragment_size=600)
    try:
        charon = charon_factory(cl, "cl", charon_options="  fragment_size = 600")
        charon.add_ca(root)
        charon.add_cert(cl_cert)
        charon.write_swanctl_conf(_conf(f"{cl_cert.name}.pem"))
        charon.load_all()
        charon.initiate("home")
        _check(charon, responder, "10.3.0.")
        log = charon.log()
        assert "splitting IKE message" in log and "reassembled fragmented IKE message" in log
        assert "EF(" in log
    except BaseException:
        print(responder.log()[-6000:])
        raise
    finally:
        responder.stop()


def test_charon_default_dn_identity(
    netns: Any, charon_factory: Any, cert_factory: Any, tmp_path: Path
) -> None:
    """Without ``id`` charon uses its certificate's subject as ID_DER_ASN1_DN; we match it
    against the certificate subject (RFC 4945, 3.1.5) with remote_id %any."""
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
        "remote_auth": "pubkey",
        "cert": str(gw_cert.cert_path),
        "key": str(gw_cert.key_path),
        "cacerts": [str(root_path)],
        "pool": "10.3.0.0/28",
        "children": [{"name": "net", "local_ts": ["10.1.0.0/16"]}],
    }
    responder = Responder(gw, tmp_path / "ours", [conn])
    try:
        charon = charon_factory(cl, "cl")
        charon.add_ca(root)
        charon.add_cert(cl_cert)
        charon.write_swanctl_conf(_conf(f"{cl_cert.name}.pem").replace("      id = cl.test\n", ""))
        charon.load_all()
        charon.initiate("home")
        (sa,) = charon.list_sas()
        assert sa.state == "ESTABLISHED" and "CN=cl.test" in sa.local_id
        est = next(e for e in responder.events() if e["event"] == "IkeSaEstablished")
        assert est["remote_id"] == sa.local_id  # the DN printed the way charon prints it
    except BaseException:
        print(responder.log()[-6000:])
        raise
    finally:
        responder.stop()
