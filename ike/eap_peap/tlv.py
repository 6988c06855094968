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

_FLAG_MANDATORY = 0x8000
_TYPE_MASK = 0x3FFF


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
        if not 0 <= self.tlv_type <= _TYPE_MASK:
            raise ValueError("TLV type out of range")
        if len(self.value) > 0xFFFF:
            raise ValueError("TLV value too long")

    def to_bytes(self) -> bytes:
        head = self.tlv_type | (_FLAG_MANDATORY if self.mandatory else 0)
        return struct.pack("!HH", head, len(self.value)) + self.value

    @classmethod
    def result(cls, status: ResultStatus) -> Tlv:
        return cls(TlvType.RESULT, struct.pack("!H", status), mandatory=True)


def encode_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    return b"".join(t.to_bytes() for t in tlvs)


def parse_tlvs(data: bytes) -> list[Tlv]:
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise TlvError("truncated TLV header", pos)
        head, length = struct.unpack_from("!HH", data, pos)
        end = pos + 4 + length
        if end > len(data):
            raise TlvError(f"TLV length {length} runs past the data", pos)
        out.append(Tlv(head & _TYPE_MASK, bytes(data[pos + 4 : end]), bool(head & _FLAG_MANDATORY)))
        pos = end
    return out


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
