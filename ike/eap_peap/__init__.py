"""PEAP v0/v1 (EAP type 25): EAP-TLV codec, cryptobinding keys, server and peer methods."""

from ike.eap_peap.keys import compound_keys, compound_mac, peap_prf_plus, session_keys
from ike.eap_peap.method import (
    EapPeapPeer,
    EapPeapServer,
    PeapPeerConfig,
    PeapServerConfig,
    peap_server_factory,
)
from ike.eap_peap.tlv import (
    CryptoBinding,
    PeapError,
    ResultStatus,
    Tlv,
    TlvError,
    TlvType,
    encode_tlvs,
    parse_tlvs,
)

__all__ = [
    "CryptoBinding",
    "EapPeapPeer",
    "EapPeapServer",
    "PeapError",
    "PeapPeerConfig",
    "PeapServerConfig",
    "ResultStatus",
    "Tlv",
    "TlvError",
    "TlvType",
    "compound_keys",
    "compound_mac",
    "encode_tlvs",
    "parse_tlvs",
    "peap_prf_plus",
    "peap_server_factory",
    "session_keys",
]
