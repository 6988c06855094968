"""RADIUS registries (IANA "RADIUS Types"), each citing the RFC section that defines it."""

from __future__ import annotations

import enum

__all__ = [
    "MAX_ATTRIBUTE_VALUE",
    "MAX_PACKET_LENGTH",
    "MIN_PACKET_LENGTH",
    "VENDOR_MICROSOFT",
    "AcctStatusType",
    "AttributeType",
    "Code",
    "ErrorCause",
    "MicrosoftAttribute",
    "NasPortType",
    "ServiceType",
    "TunnelMediumType",
    "TunnelType",
]

MIN_PACKET_LENGTH = 20
"""RFC 2865 section 3: code, identifier, length and the 16-byte authenticator."""
MAX_PACKET_LENGTH = 4096
"""RFC 2865 section 3."""
MAX_ATTRIBUTE_VALUE = 253
"""RFC 2865 section 5: the length octet counts type and length too."""
VENDOR_MICROSOFT = 311
"""RFC 2548 section 2: Microsoft's SMI Network Management Private Enterprise Code."""


class Code(enum.IntEnum):
    """RFC 2865 section 3, RFC 2866 section 3, RFC 5997 section 2, RFC 5176 section 3."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    STATUS_CLIENT = 13
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


class AttributeType(enum.IntEnum):
    """RFC 2865 section 5, RFC 2866 section 5, RFC 2869 section 5, RFC 2868 section 3,
    RFC 3162 section 2, RFC 3579 section 3, RFC 5176 section 3.5."""

    USER_NAME = 1
    USER_PASSWORD = 2
    CHAP_PASSWORD = 3
    NAS_IP_ADDRESS = 4
    NAS_PORT = 5
    SERVICE_TYPE = 6
    FRAMED_PROTOCOL = 7
    FRAMED_IP_ADDRESS = 8
    FRAMED_IP_NETMASK = 9
    FRAMED_ROUTING = 10
    FILTER_ID = 11
    FRAMED_MTU = 12
    FRAMED_COMPRESSION = 13
    LOGIN_IP_HOST = 14
    LOGIN_SERVICE = 15
    LOGIN_TCP_PORT = 16
    REPLY_MESSAGE = 18
    CALLBACK_NUMBER = 19
    CALLBACK_ID = 20
    FRAMED_ROUTE = 22
    FRAMED_IPX_NETWORK = 23
    STATE = 24
    CLASS = 25
    VENDOR_SPECIFIC = 26
    SESSION_TIMEOUT = 27
    IDLE_TIMEOUT = 28
    TERMINATION_ACTION = 29
    CALLED_STATION_ID = 30
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    PROXY_STATE = 33
    ACCT_STATUS_TYPE = 40
    ACCT_DELAY_TIME = 41
    ACCT_INPUT_OCTETS = 42
    ACCT_OUTPUT_OCTETS = 43
    ACCT_SESSION_ID = 44
    ACCT_AUTHENTIC = 45
    ACCT_SESSION_TIME = 46
    ACCT_INPUT_PACKETS = 47
    ACCT_OUTPUT_PACKETS = 48
    ACCT_TERMINATE_CAUSE = 49
    ACCT_MULTI_SESSION_ID = 50
    ACCT_LINK_COUNT = 51
    ACCT_INPUT_GIGAWORDS = 52
    ACCT_OUTPUT_GIGAWORDS = 53
    EVENT_TIMESTAMP = 55
    CHAP_CHALLENGE = 60
    NAS_PORT_TYPE = 61
    PORT_LIMIT = 62
    TUNNEL_TYPE = 64
    TUNNEL_MEDIUM_TYPE = 65
    TUNNEL_PASSWORD = 69
    CONNECT_INFO = 77
    EAP_MESSAGE = 79
    MESSAGE_AUTHENTICATOR = 80
    TUNNEL_PRIVATE_GROUP_ID = 81
    ACCT_INTERIM_INTERVAL = 85
    NAS_PORT_ID = 87
    FRAMED_INTERFACE_ID = 96
    NAS_IPV6_ADDRESS = 95
    ERROR_CAUSE = 101


class MicrosoftAttribute(enum.IntEnum):
    """RFC 2548 section 2 (vendor 311 sub-attribute types)."""

    MS_CHAP_RESPONSE = 1
    MS_CHAP_ERROR = 2
    MS_CHAP_CPW_1 = 3
    MS_CHAP_CPW_2 = 4
    MS_CHAP_LM_ENC_PW = 5
    MS_CHAP_NT_ENC_PW = 6
    MS_MPPE_ENCRYPTION_POLICY = 7
    MS_MPPE_ENCRYPTION_TYPES = 8
    MS_RAS_VENDOR = 9
    MS_CHAP_DOMAIN = 10
    MS_CHAP_CHALLENGE = 11
    MS_CHAP_MPPE_KEYS = 12
    MS_BAP_USAGE = 13
    MS_LINK_UTILIZATION_THRESHOLD = 14
    MS_LINK_DROP_TIME_LIMIT = 15
    MS_MPPE_SEND_KEY = 16
    MS_MPPE_RECV_KEY = 17
    MS_RAS_VERSION = 18
    MS_CHAP2_RESPONSE = 25
    MS_CHAP2_SUCCESS = 26
    MS_CHAP2_CPW = 27


class ServiceType(enum.IntEnum):
    """RFC 2865 section 5.6."""

    LOGIN = 1
    FRAMED = 2
    CALLBACK_LOGIN = 3
    CALLBACK_FRAMED = 4
    OUTBOUND = 5
    ADMINISTRATIVE = 6
    NAS_PROMPT = 7
    AUTHENTICATE_ONLY = 8
    CALLBACK_NAS_PROMPT = 9
    CALL_CHECK = 10
    CALLBACK_ADMINISTRATIVE = 11
    AUTHORIZE_ONLY = 17


class NasPortType(enum.IntEnum):
    """RFC 2865 section 5.41 (with the IEEE 802 values of RFC 3580 section 3.8)."""

    ASYNC = 0
    SYNC = 1
    VIRTUAL = 5
    ETHERNET = 15
    WIRELESS_IEEE_802_11 = 19


class AcctStatusType(enum.IntEnum):
    """RFC 2866 section 5.1 (Interim-Update: RFC 2869 section 2.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


class TunnelType(enum.IntEnum):
    """RFC 2868 section 3.1 (VLAN = 13: RFC 3580 section 3.31)."""

    PPTP = 1
    L2F = 2
    L2TP = 3
    ATMP = 4
    VTP = 5
    AH = 6
    IP_IP = 7
    MIN_IP_IP = 8
    ESP = 9
    GRE = 10
    DVS = 11
    IP_IN_IP = 12
    VLAN = 13


class TunnelMediumType(enum.IntEnum):
    """RFC 2868 section 3.2 (IANA Address Family Numbers)."""

    IPV4 = 1
    IPV6 = 2
    NSAP = 3
    HDLC = 4
    BBN_1822 = 5
    IEEE_802 = 6
    E163 = 7
    E164 = 8


class ErrorCause(enum.IntEnum):
    """RFC 5176 section 3.5."""

    RESIDUAL_SESSION_CONTEXT_REMOVED = 201
    INVALID_EAP_PACKET = 202
    UNSUPPORTED_ATTRIBUTE = 401
    MISSING_ATTRIBUTE = 402
    NAS_IDENTIFICATION_MISMATCH = 403
    INVALID_REQUEST = 404
    UNSUPPORTED_SERVICE = 405
    UNSUPPORTED_EXTENSION = 406
    INVALID_ATTRIBUTE_VALUE = 407
    ADMINISTRATIVELY_PROHIBITED = 501
    REQUEST_NOT_ROUTABLE = 502
    SESSION_CONTEXT_NOT_FOUND = 503
    SESSION_CONTEXT_NOT_REMOVABLE = 504
    OTHER_PROXY_PROCESSING_ERROR = 505
    RESOURCES_UNAVAILABLE = 506
    REQUEST_INITIATED = 507
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508
