"""RADIUS (RFC 2865, 2866, 2868, 3579, 3580, 5080, 5176) as sans-I/O engines.

* :mod:`radius.attributes` / :mod:`radius.packet`: the codec and the authenticators.
* :mod:`radius.crypto`: User-Password and MS-MPPE key hiding.
* :mod:`radius.server`: the server engine (EAP over RADIUS, accounting).
* :mod:`radius.client`: the CoA / Disconnect client engine.

Nothing here does I/O; ``gateway.radius`` is the Twisted adapter.
"""

from radius.attributes import (
    AddressAttribute,
    Attribute,
    IntegerAttribute,
    Ipv6AddressAttribute,
    OpaqueVendorSpecific,
    StringAttribute,
    TaggedIntegerAttribute,
    TaggedStringAttribute,
    TextAttribute,
    UnknownAttribute,
    VendorAttribute,
    VendorSpecific,
    microsoft,
)
from radius.client import COA_PORT, DynamicAuthorizationClient
from radius.constants import (
    VENDOR_MICROSOFT,
    AcctStatusType,
    AttributeType,
    Code,
    ErrorCause,
    MicrosoftAttribute,
    TunnelMediumType,
    TunnelType,
)
from radius.crypto import decrypt_mppe_key, encrypt_mppe_key, hide_password, unhide_password
from radius.errors import (
    AuthenticatorError,
    LocalProtocolError,
    MalformedAttribute,
    MalformedPacket,
    RadiusError,
    RemoteProtocolError,
)
from radius.events import (
    AccessAccepted,
    AccessRejected,
    AccountingRecord,
    Address,
    DynamicAuthorizationAcked,
    DynamicAuthorizationNaked,
    DynamicAuthorizationTimedOut,
    Event,
    PacketDropped,
    Verdict,
)
from radius.packet import (
    Packet,
    decode_packet,
    eap_message_attributes,
    encode_request,
    encode_response,
    verify_request,
    verify_response,
)
from radius.server import (
    AuthorizationPolicy,
    Conversation,
    EapServerSession,
    RadiusClient,
    RadiusServer,
    RequestContext,
    VlanAssignment,
    vlan_attributes,
)

__all__ = [
    "COA_PORT",
    "VENDOR_MICROSOFT",
    "AccessAccepted",
    "AccessRejected",
    "AccountingRecord",
    "AcctStatusType",
    "Address",
    "AddressAttribute",
    "Attribute",
    "AttributeType",
    "AuthenticatorError",
    "AuthorizationPolicy",
    "Code",
    "Conversation",
    "DynamicAuthorizationAcked",
    "DynamicAuthorizationClient",
    "DynamicAuthorizationNaked",
    "DynamicAuthorizationTimedOut",
    "EapServerSession",
    "ErrorCause",
    "Event",
    "IntegerAttribute",
    "Ipv6AddressAttribute",
    "LocalProtocolError",
    "MalformedAttribute",
    "MalformedPacket",
    "MicrosoftAttribute",
    "OpaqueVendorSpecific",
    "Packet",
    "PacketDropped",
    "RadiusClient",
    "RadiusError",
    "RadiusServer",
    "RemoteProtocolError",
    "RequestContext",
    "StringAttribute",
    "TaggedIntegerAttribute",
    "TaggedStringAttribute",
    "TextAttribute",
    "TunnelMediumType",
    "TunnelType",
    "UnknownAttribute",
    "VendorAttribute",
    "VendorSpecific",
    "Verdict",
    "VlanAssignment",
    "decode_packet",
    "decrypt_mppe_key",
    "eap_message_attributes",
    "encode_request",
    "encode_response",
    "encrypt_mppe_key",
    "hide_password",
    "microsoft",
    "unhide_password",
    "verify_request",
    "verify_response",
    "vlan_attributes",
]
