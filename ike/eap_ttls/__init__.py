"""EAP-TTLS v0 (RFC 5281), EAP type 21: AVP codec and server/peer methods."""

from ike.eap_ttls.avp import (
    Avp,
    AvpCode,
    AvpError,
    MsAvpCode,
    TtlsError,
    encode_avps,
    parse_avps,
)
from ike.eap_ttls.method import (
    EapTtlsPeer,
    EapTtlsServer,
    InnerAuth,
    TtlsPeerConfig,
    TtlsServerConfig,
    ttls_server_factory,
)

__all__ = [
    "Avp",
    "AvpCode",
    "AvpError",
    "EapTtlsPeer",
    "EapTtlsServer",
    "InnerAuth",
    "MsAvpCode",
    "TtlsError",
    "TtlsPeerConfig",
    "TtlsServerConfig",
    "encode_avps",
    "parse_avps",
    "ttls_server_factory",
]
