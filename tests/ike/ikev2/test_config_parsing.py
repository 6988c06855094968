"""strongSwan vocabulary in the typed config: proposal strings and identities."""

from __future__ import annotations

from typing import Any

import pytest

from ike.config import EspProposal, Identity, IkeProposal
from ike.constants import DhGroup, EncrId, EsnId, IdType, IntegId, PrfId
from ike.errors import LocalProtocolError


def test_ike_proposal_strings() -> None:
    p = IkeProposal.parse("aes128-aes256-sha256-sha384-x25519-ecp256")
    assert [(a.encr_id, a.key_bits) for a in p.encr] == [
        (EncrId.ENCR_AES_CBC, 128),
        (EncrId.ENCR_AES_CBC, 256),
    ]
    assert p.integ == (IntegId.AUTH_HMAC_SHA2_256_128, IntegId.AUTH_HMAC_SHA2_384_192)
    assert p.prf == (PrfId.PRF_HMAC_SHA2_256, PrfId.PRF_HMAC_SHA2_384)
    assert p.dh == (DhGroup.CURVE25519, DhGroup.ECP_256)
    g = IkeProposal.parse("aes256gcm16-prfsha384-ecp384")
    assert g.integ == () and g.prf == (PrfId.PRF_HMAC_SHA2_384,)
    c = IkeProposal.parse("chacha20poly1305-sha512-curve448")
    assert c.prf == (PrfId.PRF_HMAC_SHA2_512,) and c.integ == ()
    for bad in (
        "aes128-x25519",
        "aes128-sha256",
        "aes128-aes128gcm16-sha256-x25519",
        "3des-sha1-modp1024",
        "",
    ):
        with pytest.raises(LocalProtocolError):
            IkeProposal.parse(bad)


def test_esp_proposal_strings() -> None:
    e = EspProposal.parse("aes128gcm16-x25519-esn")
    assert e.integ == () and e.dh == (DhGroup.CURVE25519,) and e.esn == (EsnId.ESN,)
    assert EspProposal.parse("aes256-sha1").integ == (IntegId.AUTH_HMAC_SHA1_96,)
    with pytest.raises(LocalProtocolError):
        EspProposal.parse("aes256")


def test_identities(cert_factory: Any) -> None:
    assert Identity.parse("192.0.2.1") == Identity(IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 1]))
    assert Identity.parse("2001:db8::1").id_type == IdType.ID_IPV6_ADDR
    assert Identity.parse("@gw.test") == Identity(IdType.ID_FQDN, b"gw.test")
    assert Identity.parse("gw.test") == Identity(IdType.ID_FQDN, b"gw.test")
    assert Identity.parse("bob@example.test").id_type == IdType.ID_RFC822_ADDR
    dn = Identity.parse("C=CH, O=nea-gateway tests, CN=gw.test")
    assert dn.id_type == IdType.ID_DER_ASN1_DN
    assert str(dn) == "C=CH, O=nea-gateway tests, CN=gw.test"
    cert = cert_factory.issue(cert_factory.ca("root"), "gw.test").cert
    from_cert = Identity.from_name(cert.subject)
    assert str(from_cert) == "O=nea-gateway tests, CN=gw.test"
    assert Identity.parse(str(from_cert)) == from_cert
    assert str(Identity(IdType.ID_DER_ASN1_DN, b"\x30\x05junk")).startswith("DN:")
    with pytest.raises(LocalProtocolError):
        Identity.parse("XX=1, CN=a")
