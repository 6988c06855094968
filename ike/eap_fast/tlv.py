"""EAP-FAST TLVs (RFC 4851 section 4.2) and PAC attributes (RFC 5422 section 4.2).

Each TLV: ``M (1 bit) | R (1 bit) | TLV Type (14 bits) | Length (2) | Value``.  PAC attributes
inside the PAC TLV (and inside PAC-Info) are ``Type (2) | Length (2) | Value`` without the M/R
bits (hostapd and Cisco set none; we mask them off when reading).

Parsing is exact: a TLV or attribute running past its container is a :class:`TlvError`.
Unknown TLVs are kept intact (:class:`Tlv` with its type number); the method decides
whether a mandatory one it does not know ends in a NAK TLV (section 4.2.3).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ike.eap_tls.tlv import check_tlv, iter_tlvs, pack_tlv

__all__ = [
    "CRYPTO_BINDING_LENGTH",
    "FAST_VERSION",
    "CryptoBinding",
    "CryptoBindingSubtype",
    "ErrorCode",
    "FastError",
    "PacAttr",
    "PacAttrType",
    "PacType",
    "RequestAction",
    "ResultStatus",
    "Tlv",
    "TlvError",
    "TlvType",
    "encode_pac_attrs",
    "encode_tlvs",
    "parse_pac_attrs",
    "parse_tlvs",
]

FAST_VERSION = 1
"""RFC 4851 section 3.1: the only version defined."""

CRYPTO_BINDING_LENGTH = 56
"""Value length of the Crypto-Binding TLV (RFC 4851 4.2.8): 4 + 32 nonce + 20 MAC."""


class TlvType(enum.IntEnum):
    """EAP-FAST TLV types (RFC 4851 section 4.2; PAC TLV and Request-Action: RFC 5422 4.2)."""

    RESULT = 3
    NAK = 4
    ERROR = 5
    VENDOR_SPECIFIC = 7
    EAP_PAYLOAD = 9
    INTERMEDIATE_RESULT = 10
    PAC = 11
    CRYPTO_BINDING = 12
    SERVER_TRUSTED_ROOT = 18
    REQUEST_ACTION = 19
    PKCS7 = 20


class ResultStatus(enum.IntEnum):
    """Result / Intermediate-Result status (RFC 4851 4.2.2, 4.2.7)."""

    SUCCESS = 1
    FAILURE = 2


class ErrorCode(enum.IntEnum):
    """Error TLV codes (RFC 4851 4.2.4)."""

    TUNNEL_COMPROMISE = 2001
    UNEXPECTED_TLVS_EXCHANGED = 2002


class RequestAction(enum.IntEnum):
    """Request-Action TLV actions (RFC 4851 4.2.9)."""

    PROCESS_TLV = 1
    NEGOTIATE_EAP = 2


class CryptoBindingSubtype(enum.IntEnum):
    """RFC 4851 4.2.8."""

    REQUEST = 0
    RESPONSE = 1


class PacAttrType(enum.IntEnum):
    """PAC attribute types (RFC 5422 section 4.2)."""

    PAC_KEY = 1
    PAC_OPAQUE = 2
    PAC_LIFETIME = 3
    A_ID = 4
    I_ID = 5
    A_ID_INFO = 7
    PAC_ACKNOWLEDGEMENT = 8
    PAC_INFO = 9
    PAC_TYPE = 10


class PacType(enum.IntEnum):
    """PAC-Type values (RFC 5422 4.2.6)."""

    TUNNEL = 1
    MACHINE_AUTHENTICATION = 2
    USER_AUTHORIZATION = 3


class FastError(Exception):
    """Root of ``ike.eap_fast`` errors."""


class TlvError(FastError):
    """Malformed TLV data; ``offset`` is where in the container the problem was found and
    ``code`` the Error TLV code that reports it (RFC 4851 4.2.4)."""

    code = ErrorCode.UNEXPECTED_TLVS_EXCHANGED

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Tlv:
    """One EAP-FAST TLV; unknown types are kept as they came."""

    tlv_type: int
    value: bytes
    mandatory: bool = False

    def __post_init__(self) -> None:
        check_tlv(self.tlv_type, self.value)

    def to_bytes(self) -> bytes:
        return pack_tlv(self.tlv_type, self.value, self.mandatory)

    # constructors for the TLVs the method sends -----------------------------------------
    @classmethod
    def result(cls, status: ResultStatus) -> Tlv:
        return cls(TlvType.RESULT, struct.pack("!H", status), mandatory=True)

    @classmethod
    def intermediate_result(cls, status: ResultStatus) -> Tlv:
        return cls(TlvType.INTERMEDIATE_RESULT, struct.pack("!H", status), mandatory=True)

    @classmethod
    def eap_payload(cls, packet: bytes) -> Tlv:
        return cls(TlvType.EAP_PAYLOAD, packet, mandatory=True)

    @classmethod
    def nak(cls, vendor_id: int, tlv_type: int) -> Tlv:
        return cls(TlvType.NAK, struct.pack("!IH", vendor_id, tlv_type), mandatory=True)

    @classmethod
    def error(cls, code: ErrorCode) -> Tlv:
        return cls(TlvType.ERROR, struct.pack("!I", code), mandatory=True)

    @classmethod
    def request_action(cls, action: RequestAction) -> Tlv:
        return cls(TlvType.REQUEST_ACTION, struct.pack("!H", action), mandatory=True)

    @classmethod
    def pac(cls, attrs: Iterable[PacAttr]) -> Tlv:
        return cls(TlvType.PAC, encode_pac_attrs(attrs), mandatory=True)

    # readers ------------------------------------------------------------------------------
    def status(self) -> ResultStatus:
        """Status of a Result / Intermediate-Result TLV (exactly two bytes, 1 or 2)."""
        if len(self.value) != 2:
            raise TlvError(f"TLV {self.tlv_type}: status is not 2 bytes")
        value = struct.unpack("!H", self.value)[0]
        if value not in (ResultStatus.SUCCESS, ResultStatus.FAILURE):
            raise TlvError(f"TLV {self.tlv_type}: status {value} is neither success nor failure")
        return ResultStatus(value)

    def u16(self) -> int:
        if len(self.value) != 2:
            raise TlvError(f"TLV {self.tlv_type}: value is not 2 bytes")
        return int(struct.unpack("!H", self.value)[0])


def encode_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    return b"".join(t.to_bytes() for t in tlvs)


def parse_tlvs(data: bytes) -> list[Tlv]:
    """All TLVs of ``data``; the last one must end exactly at the end of the data."""
    return [Tlv(t, v, m) for t, v, m in iter_tlvs(data, TlvError)]


@dataclass(frozen=True, slots=True)
class PacAttr:
    """A PAC attribute (RFC 5422 4.2): PAC-Key, PAC-Opaque, PAC-Info and what PAC-Info holds."""

    attr_type: int
    value: bytes

    def to_bytes(self) -> bytes:
        if len(self.value) > 0xFFFF:
            raise ValueError("PAC attribute too long")
        return struct.pack("!HH", self.attr_type, len(self.value)) + self.value


def encode_pac_attrs(attrs: Iterable[PacAttr]) -> bytes:
    return b"".join(a.to_bytes() for a in attrs)


def parse_pac_attrs(data: bytes) -> list[PacAttr]:
    """PAC attributes of a PAC TLV or PAC-Info value (exact, like :func:`parse_tlvs`)."""
    out: list[PacAttr] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise TlvError("truncated PAC attribute header", pos)
        kind, length = struct.unpack_from("!HH", data, pos)
        end = pos + 4 + length
        if end > len(data):
            raise TlvError(f"PAC attribute length {length} runs past the data", pos)
        out.append(PacAttr(kind & 0x7FFF, bytes(data[pos + 4 : end])))
        pos = end
    return out


@dataclass(frozen=True, slots=True)
class CryptoBinding:
    """Crypto-Binding TLV value (RFC 4851 4.2.8)."""

    version: int
    received_version: int
    subtype: int
    nonce: bytes
    compound_mac: bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != 32 or len(self.compound_mac) != 20:
            raise ValueError("Crypto-Binding nonce is 32 bytes and the MAC 20")

    def value(self, *, zero_mac: bool = False) -> bytes:
        mac = b"\x00" * 20 if zero_mac else self.compound_mac
        return bytes([0, self.version, self.received_version, self.subtype]) + self.nonce + mac

    def to_tlv(self) -> Tlv:
        return Tlv(TlvType.CRYPTO_BINDING, self.value(), mandatory=True)

    def mac_input(self) -> bytes:
        """The whole TLV (header included, M bit set) with the Compound MAC zeroed (5.3)."""
        return Tlv(TlvType.CRYPTO_BINDING, self.value(zero_mac=True), mandatory=True).to_bytes()

    def with_mac(self, mac: bytes) -> CryptoBinding:
        return CryptoBinding(self.version, self.received_version, self.subtype, self.nonce, mac)

    @classmethod
    def parse(cls, value: bytes) -> CryptoBinding:
        if len(value) != CRYPTO_BINDING_LENGTH:
            raise TlvError(f"Crypto-Binding TLV of {len(value)} bytes, expected 56")
        return cls(value[1], value[2], value[3], value[4:36], value[36:56])
