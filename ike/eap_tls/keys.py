"""Key derivations of the TLS-based EAP methods (RFC 5216 2.3, RFC 9190 2.3, RFC 9427 2)."""

from __future__ import annotations

from ike.eap_tls.tls import TlsSession, TlsVersion

__all__ = [
    "EAP_TYPE_FAST",
    "EAP_TYPE_PEAP",
    "EAP_TYPE_TLS",
    "EAP_TYPE_TTLS",
    "KEY_MATERIAL_LENGTH",
    "key_material",
    "session_id",
]

EAP_TYPE_TLS = 13
"""RFC 5216."""
EAP_TYPE_TTLS = 21
"""RFC 5281."""
EAP_TYPE_PEAP = 25
"""draft-josefsson-pppext-eap-tls-eap / [MS-PEAP]."""
EAP_TYPE_FAST = 43
"""RFC 4851."""

KEY_MATERIAL_LENGTH = 128
"""MSK (64) || EMSK (64).  In TLS 1.3 the length is an input to the exporter: always ask for
all 128 bytes and slice."""

TLS13_KEY_LABEL = b"EXPORTER_EAP_TLS_Key_Material"
TLS13_METHOD_ID_LABEL = b"EXPORTER_EAP_TLS_Method-Id"


def key_material(
    tls: TlsSession, eap_type: int, tls12_label: bytes = b"client EAP encryption"
) -> bytes:
    """The 128-byte Key_Material of a TLS-based method.

    TLS <= 1.2: PRF(master_secret, label, client_random || server_random) (RFC 5216 2.3;
    TTLS uses "ttls keying material", RFC 5281 8).  TLS 1.3: TLS-Exporter(
    "EXPORTER_EAP_TLS_Key_Material", context = Type-Code, 128) (RFC 9190 2.3, RFC 9427 2.1).
    """
    if tls.version >= TlsVersion.TLS1_3:
        return tls.export(TLS13_KEY_LABEL, KEY_MATERIAL_LENGTH, bytes([eap_type]))
    return tls.export(tls12_label, KEY_MATERIAL_LENGTH, None)


def session_id(tls: TlsSession, eap_type: int) -> bytes:
    """Session-Id (RFC 5216 2.3; RFC 9190 2.3 / RFC 9427 2.1 for TLS 1.3)."""
    if tls.version >= TlsVersion.TLS1_3:
        return bytes([eap_type]) + tls.export(TLS13_METHOD_ID_LABEL, 64, bytes([eap_type]))
    return bytes([eap_type]) + tls.client_random() + tls.server_random()
