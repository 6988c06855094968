"""EAP-TLV (EAP type 33) payloads of PEAPv0 ([MS-PEAP] 2.2.8; draft-josefsson-pppext-eap-tls-eap
section 4.2).

Each TLV: ``M (1 bit) | R (1 bit) | TLV Type (14 bits) | Length (2) | Value``.  Parsing is
exact (a TLV running past the data is an error).  Unknown TLVs are kept; a mandatory one the
method does not know fails the authentication.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ike.eap_tls.tlv import check_tlv, iter_tlvs, pack_tlv

__all__ = [
    "CRYPTOBINDING_LENGTH",
    "EAP_TYPE_TLV",
    "CryptoBinding",
    "PeapError",
    "ResultStatus",
    "Tlv",
    "TlvError",
    "TlvType",
    "encode_tlvs",
    "parse_tlvs",
]

EAP_TYPE_TLV = 33
"""EAP-TLV, the only inner type PEAPv0 sends with its EAP header ([MS-PEAP] 2.2.8)."""

CRYPTOBINDING_LENGTH = 56
"""Value length of the Crypto-Binding TLV ([MS-PEAP] 2.2.8.3): 4 + 32 nonce + 20 MAC."""


class TlvType(enum.IntEnum):
    """EAP-TLV types ([MS-PEAP] 2.2.8; draft-josefsson-pppext-eap-tls-eap-10 4.2)."""

    RESULT = 3
    NAK = 4
    CRYPTO_BINDING = 12


class ResultStatus(enum.IntEnum):
    """Result TLV status ([MS-PEAP] 2.2.8.1)."""

    SUCCESS = 1
    FAILURE = 2


class PeapError(Exception):
    """Root of ``ike.eap_peap`` errors."""


class TlvError(PeapError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Tlv:
    tlv_type: int
    value: bytes
    mandatory: bool = False

    def __post_init__(self) -> None:
        check_tlv(self.tlv_type, self.value)

    def to_bytes(self) -> bytes:
        return pack_tlv(self.tlv_type, self.value, self.mandatory)

    @classmethod
    def result(cls, status: ResultStatus) -> Tlv:
        return cls(TlvType.RESULT, struct.pack("!H", status), mandatory=True)


def encode_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    return b"".join(t.to_bytes() for t in tlvs)


def parse_tlvs(data: bytes) -> list[Tlv]:
    return [Tlv(t, v, m) for t, v, m in iter_tlvs(data, TlvError)]


@dataclass(frozen=True, slots=True)
class CryptoBinding:
    """Crypto-Binding TLV value ([MS-PEAP] 2.2.8.3)."""

    version: int
    received_version: int
    subtype: int
    """0 = Binding Request (server), 1 = Binding Response (peer)."""
    nonce: bytes
    compound_mac: bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != 32 or len(self.compound_mac) != 20:
            raise ValueError("Crypto-Binding nonce is 32 bytes and the MAC 20")

    def value(self, *, zero_mac: bool = False) -> bytes:
        mac = b"\x00" * 20 if zero_mac else self.compound_mac
        return bytes([0, self.version, self.received_version, self.subtype]) + self.nonce + mac

    def to_tlv(self) -> Tlv:
        return Tlv(TlvType.CRYPTO_BINDING, self.value())

    def mac_input(self, eap_type: int) -> bytes:
        """The TLV with a zeroed MAC, followed by the outer EAP type ([MS-PEAP] 3.1.5.5)."""
        return Tlv(TlvType.CRYPTO_BINDING, self.value(zero_mac=True)).to_bytes() + bytes([eap_type])

    @classmethod
    def parse(cls, value: bytes) -> CryptoBinding:
        if len(value) != CRYPTOBINDING_LENGTH:
            raise TlvError(f"Crypto-Binding TLV of {len(value)} bytes, expected 56", 0)
        return cls(value[1], value[2], value[3], value[4:36], value[36:56])
