"""NEA posture transports over EAP: PT-EAP (RFC 7171, EAP type 54) and TCG EAP-TNC (type 38).

Both are EAP methods of the contract in :mod:`ike.eap.method` carrying PB-TNC batches
between a :class:`~nea.pb_tnc.Tncc` (peer) and a :class:`~nea.pb_tnc.Tncs` (server) that the
caller hands in.  The gateway's composition root builds them with
:func:`pt_eap_server_factory` and hands the factory to the EAP server or to a tunnel method
(EAP-TTLS posture chain, PEAP); ``ike`` never imports this package.
"""

from nea.pt_eap.errors import InvalidPacket, PtEapError, ReassemblyError, VersionMismatch
from nea.pt_eap.fragments import DEFAULT_MAX_MESSAGE, Reassembler, fragment
from nea.pt_eap.method import (
    DEFAULT_FRAGMENT_SIZE,
    EapTncPeer,
    EapTncServer,
    PosturePeerMethod,
    PostureServerMethod,
    PostureVerdict,
    PtEapPeer,
    PtEapServer,
    eap_tnc_peer_factory,
    eap_tnc_server_factory,
    pt_eap_peer_factory,
    pt_eap_server_factory,
)
from nea.pt_eap.packet import (
    EAP_TNC_VERSION,
    MAX_TYPE_DATA,
    PT_EAP_VERSION,
    EapCode,
    EapEnvelope,
    EapTncFlag,
    EapTncPacket,
    PostureEapType,
    PtEapFlag,
    PtEapPacket,
    parse_eap,
)

__all__ = [
    "DEFAULT_FRAGMENT_SIZE",
    "DEFAULT_MAX_MESSAGE",
    "EAP_TNC_VERSION",
    "MAX_TYPE_DATA",
    "PT_EAP_VERSION",
    "EapCode",
    "EapEnvelope",
    "EapTncFlag",
    "EapTncPacket",
    "EapTncPeer",
    "EapTncServer",
    "InvalidPacket",
    "PostureEapType",
    "PosturePeerMethod",
    "PostureServerMethod",
    "PostureVerdict",
    "PtEapError",
    "PtEapFlag",
    "PtEapPacket",
    "PtEapPeer",
    "PtEapServer",
    "Reassembler",
    "ReassemblyError",
    "VersionMismatch",
    "eap_tnc_peer_factory",
    "eap_tnc_server_factory",
    "fragment",
    "parse_eap",
    "pt_eap_peer_factory",
    "pt_eap_server_factory",
]
