"""The RADIUS front-end's EAP-FAST settings: parsed, checked, and wired into the EAP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.radius.compose import available_methods, build_eap_factory
from gateway.radius.config import ConfigError, parse_config
from ike.eap.packet import EapRequest, EapResponse, EapType, parse
from tests.harness.certs import CertFactory

BASE = {
    "radius": {"clients": [{"address": "127.0.0.1/32", "secret": "s"}]},
    "users": {"bob": "hello"},
}


def _config(tmp_path: Path, **eap: object) -> dict[str, object]:
    certs = CertFactory(tmp_path / "certs")
    ca = certs.ca("ca", key_type="rsa", rsa_bits=2048)
    cert = certs.issue(ca, "radius.test", key_type="rsa", rsa_bits=2048)
    return {
        **BASE,
        "eap": {"methods": ["fast"], **eap},
        "tls": {"cert": str(cert.chain_path), "key": str(cert.key_path)},
    }


def test_fast_settings_parsed_and_offered(tmp_path: Path) -> None:
    assert "fast" in available_methods()
    config = parse_config(
        _config(tmp_path, fast_a_id="lab", fast_provisioning=2, fast_pac_lifetime=3600),
        tmp_path,
    )
    assert (config.fast_a_id, config.fast_provisioning, config.fast_pac_lifetime) == (
        "lab",
        2,
        3600,
    )
    server = build_eap_factory(config)(None)
    identity_request = parse(server.start())
    start = parse(
        server.receive(
            EapResponse(identity_request.identifier, EapType.IDENTITY, b"bob").to_bytes()
        )
        or b""
    )
    assert isinstance(start, EapRequest) and start.eap_type == EapType.FAST
    # S flag + version 1, then the Authority-ID TLV (RFC 4851 4.1.1).
    assert start.type_data == b"\x21\x00\x04\x00\x03lab"


@pytest.mark.parametrize(
    "eap",
    [
        {"fast_provisioning": 4},
        {"fast_pac_lifetime": 0},
        {"fast_pac_lifetime": "1d"},
        {"fast_pac_lifetime": 100, "fast_pac_refresh": 100},
        {"fast_pac_keys": ["00" * 31]},
        {"fast_pac_keys": ["zz" * 32]},
        {"fast_pac_keys": "00"},
    ],
)
def test_bad_fast_settings_rejected(tmp_path: Path, eap: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_config(_config(tmp_path, **eap), tmp_path)


def test_fast_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls"):
        parse_config({**BASE, "eap": {"methods": ["fast"]}}, tmp_path)
