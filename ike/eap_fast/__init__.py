"""EAP-FAST (EAP type 43, RFC 4851) with PAC provisioning (RFC 5422): server and peer.

Public API:

* :class:`FastServerConfig`, :class:`EapFastServer` (``EapFastServer(config, identity)``),
  :func:`fast_server_factory`; :class:`FastPeerConfig`, :class:`EapFastPeer`;
  :class:`Provisioning` (``ike.eap_fast.method``);
* :class:`PacKeyring` (PAC-Opaque sealing, rotation), :class:`Pac`, :class:`PacStore`
  (``ike.eap_fast.pac``);
* TLV codec (``ike.eap_fast.tlv``) and key derivations (``ike.eap_fast.keys``).
"""

from ike.eap_fast.keys import KeyChain, compound_mac, pac_master_secret, session_keys, t_prf
from ike.eap_fast.method import (
    EapFastPeer,
    EapFastServer,
    FastPeerConfig,
    FastServerConfig,
    Provisioning,
    fast_server_factory,
)
from ike.eap_fast.pac import OpenedPac, Pac, PacKeyring, PacStore
from ike.eap_fast.tlv import (
    CryptoBinding,
    FastError,
    PacAttr,
    PacAttrType,
    ResultStatus,
    Tlv,
    TlvError,
    TlvType,
    encode_tlvs,
    parse_tlvs,
)

__all__ = [
    "CryptoBinding",
    "EapFastPeer",
    "EapFastServer",
    "FastError",
    "FastPeerConfig",
    "FastServerConfig",
    "KeyChain",
    "OpenedPac",
    "Pac",
    "PacAttr",
    "PacAttrType",
    "PacKeyring",
    "PacStore",
    "Provisioning",
    "ResultStatus",
    "Tlv",
    "TlvError",
    "TlvType",
    "compound_mac",
    "encode_tlvs",
    "fast_server_factory",
    "pac_master_secret",
    "parse_tlvs",
    "session_keys",
    "t_prf",
]
