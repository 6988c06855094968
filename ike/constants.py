"""IKEv2 registry values (RFC 7296 section 3 and the IANA "IKEv2 Parameters" registry)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "IKE_HEADER_LEN",
    "IKE_VERSION",
    "NON_ESP_MARKER",
    "AuthMethod",
    "CertEncoding",
    "CfgAttribute",
    "CfgType",
    "DhGroup",
    "EncrId",
    "EsnId",
    "ExchangeType",
    "HashAlgorithm",
    "HeaderFlag",
    "IdType",
    "IntegId",
    "NotifyType",
    "PayloadType",
    "PrfId",
    "ProtocolId",
    "TransformAttr",
    "TransformType",
    "TsType",
]

IKE_HEADER_LEN = 28
"""RFC 7296, 3.1: the fixed IKE header is 28 octets."""

IKE_VERSION = 0x20
"""RFC 7296, 3.1: major version 2, minor version 0."""

NON_ESP_MARKER = b"\x00\x00\x00\x00"
"""RFC 3948, 2.2: four zero octets before IKE messages on UDP port 4500."""


class ExchangeType(IntEnum):
    """RFC 7296, 3.1 (IANA "IKEv2 Exchange Types")."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37


class HeaderFlag(IntFlag):
    """RFC 7296, 3.1: flags octet of the IKE header."""

    NONE = 0
    INITIATOR = 0x08
    VERSION = 0x10
    RESPONSE = 0x20


class PayloadType(IntEnum):
    """RFC 7296, 3.2; RFC 7383, 2.5 (SKF) (IANA "IKEv2 Payload Types")."""

    NONE = 0
    SA = 33
    KE = 34
    IDi = 35
    IDr = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSi = 44
    TSr = 45
    SK = 46
    CP = 47
    EAP = 48
    SKF = 53


class ProtocolId(IntEnum):
    """RFC 7296, 3.3.1 (IANA "IKEv2 Security Protocol Identifiers")."""

    NONE = 0
    IKE = 1
    AH = 2
    ESP = 3


class TransformType(IntEnum):
    """RFC 7296, 3.3.2 (IANA "Transform Type Values")."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    DH = 4
    ESN = 5


class EncrId(IntEnum):
    """RFC 7296, 3.3.2 Transform Type 1; RFC 5282 (GCM); RFC 7634 (ChaCha20-Poly1305)."""

    ENCR_3DES = 3
    ENCR_NULL = 11
    ENCR_AES_CBC = 12
    ENCR_AES_CTR = 13
    ENCR_AES_GCM_8 = 18
    ENCR_AES_GCM_12 = 19
    ENCR_AES_GCM_16 = 20
    ENCR_CHACHA20_POLY1305 = 28


class PrfId(IntEnum):
    """RFC 7296, 3.3.2 Transform Type 2; RFC 4868 (HMAC-SHA2)."""

    PRF_HMAC_MD5 = 1
    PRF_HMAC_SHA1 = 2
    PRF_AES128_XCBC = 4
    PRF_HMAC_SHA2_256 = 5
    PRF_HMAC_SHA2_384 = 6
    PRF_HMAC_SHA2_512 = 7


class IntegId(IntEnum):
    """RFC 7296, 3.3.2 Transform Type 3; RFC 4868 (HMAC-SHA2)."""

    NONE = 0
    AUTH_HMAC_MD5_96 = 1
    AUTH_HMAC_SHA1_96 = 2
    AUTH_AES_XCBC_96 = 5
    AUTH_HMAC_SHA2_256_128 = 12
    AUTH_HMAC_SHA2_384_192 = 13
    AUTH_HMAC_SHA2_512_256 = 14


class DhGroup(IntEnum):
    """RFC 7296, 3.3.2 Transform Type 4; RFC 3526 (MODP), RFC 5903 (ECP), RFC 8031 (CFRG)."""

    NONE = 0
    MODP_1024 = 2
    MODP_2048 = 14
    MODP_3072 = 15
    MODP_4096 = 16
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21
    CURVE25519 = 31
    CURVE448 = 32


class EsnId(IntEnum):
    """RFC 7296, 3.3.2 Transform Type 5."""

    NO_ESN = 0
    ESN = 1


class TransformAttr(IntEnum):
    """RFC 7296, 3.3.5 (IANA "IKEv2 Transform Attribute Types")."""

    KEY_LENGTH = 14


class IdType(IntEnum):
    """RFC 7296, 3.5 (IANA "IKEv2 Identification Payload ID Types")."""

    ID_IPV4_ADDR = 1
    ID_FQDN = 2
    ID_RFC822_ADDR = 3
    ID_IPV6_ADDR = 5
    ID_DER_ASN1_DN = 9
    ID_DER_ASN1_GN = 10
    ID_KEY_ID = 11


class CertEncoding(IntEnum):
    """RFC 7296, 3.6 (IANA "IKEv2 Certificate Encodings")."""

    PKCS7_X509 = 1
    X509_SIGNATURE = 4
    CRL = 7
    HASH_URL_X509 = 12
    HASH_URL_X509_BUNDLE = 13


class AuthMethod(IntEnum):
    """RFC 7296, 3.8; RFC 4754 (ECDSA); RFC 7427 (digital signature)."""

    RSA_SIG = 1
    PSK = 2
    DSS = 3
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    DIGITAL_SIGNATURE = 14


class HashAlgorithm(IntEnum):
    """RFC 7427, 4 (IANA "IKEv2 Hash Algorithms")."""

    SHA1 = 1
    SHA2_256 = 2
    SHA2_384 = 3
    SHA2_512 = 4
    IDENTITY = 5


class NotifyType(IntEnum):
    """RFC 7296, 3.10.1 (IANA "IKEv2 Notify Message Types"); error types below 16384."""

    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    # status types
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396
    AUTH_LIFETIME = 16403
    """RFC 4478, 3: seconds until the peer must re-authenticate (4 octets)."""
    MULTIPLE_AUTH_SUPPORTED = 16404
    ANOTHER_AUTH_FOLLOWS = 16405
    REDIRECT_SUPPORTED = 16406
    EAP_ONLY_AUTHENTICATION = 16417
    IKEV2_FRAGMENTATION_SUPPORTED = 16430
    SIGNATURE_HASH_ALGORITHMS = 16431

    @property
    def is_error(self) -> bool:
        """RFC 7296, 3.10.1: types 0..16383 report errors."""
        return self.value < 16384


class TsType(IntEnum):
    """RFC 7296, 3.13.1 (IANA "IKEv2 Traffic Selector Types")."""

    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8


class CfgType(IntEnum):
    """RFC 7296, 3.15 (IANA "IKEv2 Configuration Payload CFG Types")."""

    CFG_REQUEST = 1
    CFG_REPLY = 2
    CFG_SET = 3
    CFG_ACK = 4


class CfgAttribute(IntEnum):
    """RFC 7296, 3.15.1 (IANA "IKEv2 Configuration Payload Attribute Types")."""

    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
