"""IKEv2 wire codec: the header and one frozen type per payload (RFC 7296 section 3).

Each payload class has ``decode_body(body)`` and ``encode_body()``; :func:`decode_chain` walks a
chain of generic payload headers and :func:`encode_chain` builds one.  Every length is checked
exactly: a structure that does not consume exactly its declared length raises
:class:`~ike.errors.InvalidSyntax`.  Unknown payloads without the critical bit are kept as
:class:`UnknownPayload`; with it set they raise :class:`~ike.errors.UnsupportedCriticalPayload`
(RFC 7296, 2.5 and 3.2).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Self

from ike.constants import (
    IKE_HEADER_LEN,
    PayloadType,
    ProtocolId,
    TransformAttr,
    TransformType,
    TsType,
)
from ike.errors import InvalidMajorVersion, InvalidSyntax, UnsupportedCriticalPayload

__all__ = [
    "Authentication",
    "CertificatePayload",
    "CertificateRequest",
    "ConfigAttribute",
    "ConfigPayload",
    "Delete",
    "EapPayload",
    "EncryptedFragment",
    "EncryptedPayload",
    "IDi",
    "IDr",
    "IkeHeader",
    "IpAddress",
    "KeyExchange",
    "Nonce",
    "Notify",
    "Payload",
    "Proposal",
    "SecurityAssociation",
    "TSi",
    "TSr",
    "TrafficSelector",
    "Transform",
    "TransformAttribute",
    "UnknownPayload",
    "VendorId",
    "decode_chain",
    "encode_chain",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_GENERIC = struct.Struct("!BBH")
_HEADER = struct.Struct("!8s8sBBBBII")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidSyntax(what)


# --------------------------------------------------------------------------------------------
# Header (RFC 7296, 3.1)


@dataclass(frozen=True, slots=True)
class IkeHeader:
    spi_i: bytes
    spi_r: bytes
    next_payload: int
    exchange_type: int
    flags: int
    message_id: int
    length: int
    major: int = 2
    minor: int = 0

    def encode(self) -> bytes:
        return _HEADER.pack(
            self.spi_i,
            self.spi_r,
            self.next_payload,
            (self.major << 4) | self.minor,
            self.exchange_type,
            self.flags,
            self.message_id,
            self.length,
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode and check the header of a whole datagram (its Length must match exactly)."""
        _need(len(data) >= IKE_HEADER_LEN, "datagram shorter than the IKE header")
        spi_i, spi_r, nxt, ver, exch, flags, mid, length = _HEADER.unpack_from(data)
        major, minor = ver >> 4, ver & 0x0F
        if major != 2:
            raise InvalidMajorVersion(f"IKE major version {major}")
        _need(length == len(data), f"header length {length} != datagram length {len(data)}")
        return cls(spi_i, spi_r, nxt, exch, flags, mid, length, major, minor)


# --------------------------------------------------------------------------------------------
# Payload base


class Payload:
    """Base of every payload type; ``PAYLOAD_TYPE`` goes into the previous Next Payload."""

    PAYLOAD_TYPE: ClassVar[int] = 0
    __slots__ = ()

    @property
    def payload_type(self) -> int:
        return self.PAYLOAD_TYPE

    @property
    def critical(self) -> bool:
        return False

    def encode_body(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class UnknownPayload(Payload):
    """A payload type this implementation does not know, kept intact (RFC 7296, 2.5)."""

    type_value: int
    body: bytes
    is_critical: bool = False

    @property
    def payload_type(self) -> int:
        return self.type_value

    @property
    def critical(self) -> bool:
        return self.is_critical

    def encode_body(self) -> bytes:
        return self.body


# --------------------------------------------------------------------------------------------
# SA payload (RFC 7296, 3.3)


@dataclass(frozen=True, slots=True)
class TransformAttribute:
    """RFC 7296, 3.3.5; TV format (AF=1) carries a 16-bit value, TLV format carries bytes."""

    attr_type: int
    value: int | bytes

    def encode(self) -> bytes:
        if isinstance(self.value, int):
            return struct.pack("!HH", 0x8000 | self.attr_type, self.value)
        return struct.pack("!HH", self.attr_type, len(self.value)) + self.value


@dataclass(frozen=True, slots=True)
class Transform:
    """RFC 7296, 3.3.2."""

    transform_type: int
    transform_id: int
    attributes: tuple[TransformAttribute, ...] = ()

    @property
    def key_length(self) -> int | None:
        for attr in self.attributes:
            if attr.attr_type == TransformAttr.KEY_LENGTH and isinstance(attr.value, int):
                return attr.value
        return None

    def encode(self, last: bool) -> bytes:
        attrs = b"".join(a.encode() for a in self.attributes)
        return (
            struct.pack(
                "!BBHBBH",
                0 if last else 3,
                0,
                8 + len(attrs),
                self.transform_type,
                0,
                self.transform_id,
            )
            + attrs
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _need(len(data) >= 8, "transform shorter than 8 octets")
        _, _, length, ttype, _, tid = struct.unpack_from("!BBHBBH", data)
        _need(length == len(data), "transform length mismatch")
        attrs: list[TransformAttribute] = []
        pos = 8
        while pos < length:
            _need(length - pos >= 4, "truncated transform attribute")
            atype, aval = struct.unpack_from("!HH", data, pos)
            if atype & 0x8000:
                attrs.append(TransformAttribute(atype & 0x7FFF, aval))
                pos += 4
            else:
                _need(pos + 4 + aval <= length, "transform attribute overruns transform")
                attrs.append(TransformAttribute(atype, bytes(data[pos + 4 : pos + 4 + aval])))
                pos += 4 + aval
        return cls(ttype, tid, tuple(attrs))


@dataclass(frozen=True, slots=True)
class Proposal:
    """RFC 7296, 3.3.1."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]

    def of_type(self, ttype: TransformType) -> tuple[Transform, ...]:
        return tuple(t for t in self.transforms if t.transform_type == ttype)

    def encode(self, last: bool) -> bytes:
        body = b"".join(
            t.encode(i == len(self.transforms) - 1) for i, t in enumerate(self.transforms)
        )
        head = struct.pack(
            "!BBHBBBB",
            0 if last else 2,
            0,
            8 + len(self.spi) + len(body),
            self.number,
            self.protocol,
            len(self.spi),
            len(self.transforms),
        )
        return head + self.spi + body

    @classmethod
    def decode(cls, data: bytes) -> Self:
        _need(len(data) >= 8, "proposal shorter than 8 octets")
        _, _, length, num, proto, spi_size, ntrans = struct.unpack_from("!BBHBBBB", data)
        _need(length == len(data), "proposal length mismatch")
        _need(8 + spi_size <= length, "proposal SPI overruns proposal")
        if proto == ProtocolId.IKE:
            _need(spi_size in (0, 8), "IKE proposal SPI size must be 0 or 8")
        elif proto in (ProtocolId.ESP, ProtocolId.AH):
            _need(spi_size == 4, "ESP/AH proposal SPI size must be 4")
        spi = bytes(data[8 : 8 + spi_size])
        transforms: list[Transform] = []
        pos = 8 + spi_size
        while pos < length:
            _need(length - pos >= 8, "truncated transform")
            last_flag, _, tlen = struct.unpack_from("!BBH", data, pos)
            _need(tlen >= 8 and pos + tlen <= length, "transform overruns proposal")
            transforms.append(Transform.decode(data[pos : pos + tlen]))
            pos += tlen
            if last_flag == 0:
                _need(pos == length, "octets after the last transform")
            else:
                _need(last_flag == 3, "bad transform substructure type")
                _need(pos < length, "transform says more follow but none do")
        _need(len(transforms) == ntrans, "transform count mismatch")
        return cls(num, proto, spi, tuple(transforms))


@dataclass(frozen=True, slots=True)
class SecurityAssociation(Payload):
    PAYLOAD_TYPE = PayloadType.SA
    proposals: tuple[Proposal, ...]

    def encode_body(self) -> bytes:
        return b"".join(
            p.encode(i == len(self.proposals) - 1) for i, p in enumerate(self.proposals)
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        proposals: list[Proposal] = []
        pos = 0
        _need(len(body) > 0, "SA payload without proposals")
        while pos < len(body):
            _need(len(body) - pos >= 8, "truncated proposal")
            last_flag, _, plen = struct.unpack_from("!BBH", body, pos)
            _need(plen >= 8 and pos + plen <= len(body), "proposal overruns SA payload")
            prop = Proposal.decode(body[pos : pos + plen])
            # RFC 7296, 3.3.1: numbers count up by one from 1; an accepted proposal (alone in
            # a response) keeps the number it was offered with.
            if proposals:
                _need(prop.number == proposals[-1].number + 1, "proposal numbers must count up")
            else:
                _need(prop.number >= 1, "proposal number 0")
            proposals.append(prop)
            pos += plen
            if last_flag == 0:
                _need(pos == len(body), "octets after the last proposal")
            else:
                _need(last_flag == 2, "bad proposal substructure type")
                _need(pos < len(body), "proposal says more follow but none do")
        return cls(tuple(proposals))


# --------------------------------------------------------------------------------------------
# Simple payloads


@dataclass(frozen=True, slots=True)
class KeyExchange(Payload):
    """RFC 7296, 3.4."""

    PAYLOAD_TYPE = PayloadType.KE
    group: int
    data: bytes

    def encode_body(self) -> bytes:
        return struct.pack("!HH", self.group, 0) + self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "KE payload too short")
        (group,) = struct.unpack_from("!H", body)
        return cls(group, bytes(body[4:]))


@dataclass(frozen=True, slots=True)
class _Identification(Payload):
    """RFC 7296, 3.5."""

    id_type: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.id_type, 0, 0, 0]) + self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 5, "ID payload too short")
        return cls(body[0], bytes(body[4:]))

    def id_body(self) -> bytes:
        """The ID payload body without the generic header, as signed in AUTH (2.15)."""
        return self.encode_body()


@dataclass(frozen=True, slots=True)
class IDi(_Identification):
    PAYLOAD_TYPE = PayloadType.IDi


@dataclass(frozen=True, slots=True)
class IDr(_Identification):
    PAYLOAD_TYPE = PayloadType.IDr


@dataclass(frozen=True, slots=True)
class CertificatePayload(Payload):
    """RFC 7296, 3.6."""

    PAYLOAD_TYPE = PayloadType.CERT
    encoding: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 1, "CERT payload too short")
        return cls(body[0], bytes(body[1:]))


@dataclass(frozen=True, slots=True)
class CertificateRequest(Payload):
    """RFC 7296, 3.7: for X.509 the data is a concatenation of 20-octet SHA-1 key hashes."""

    PAYLOAD_TYPE = PayloadType.CERTREQ
    encoding: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 1, "CERTREQ payload too short")
        return cls(body[0], bytes(body[1:]))


@dataclass(frozen=True, slots=True)
class Authentication(Payload):
    """RFC 7296, 3.8."""

    PAYLOAD_TYPE = PayloadType.AUTH
    method: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.method, 0, 0, 0]) + self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 5, "AUTH payload too short")
        return cls(body[0], bytes(body[4:]))


@dataclass(frozen=True, slots=True)
class Nonce(Payload):
    """RFC 7296, 3.9: 16 to 256 octets."""

    PAYLOAD_TYPE = PayloadType.NONCE
    data: bytes

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(16 <= len(body) <= 256, "nonce must be 16..256 octets")
        return cls(bytes(body))


@dataclass(frozen=True, slots=True)
class Notify(Payload):
    """RFC 7296, 3.10."""

    PAYLOAD_TYPE = PayloadType.NOTIFY
    notify_type: int
    data: bytes = b""
    protocol: int = 0
    spi: bytes = b""

    def encode_body(self) -> bytes:
        return (
            struct.pack("!BBH", self.protocol, len(self.spi), self.notify_type)
            + self.spi
            + self.data
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "Notify payload too short")
        proto, spi_size, ntype = struct.unpack_from("!BBH", body)
        _need(4 + spi_size <= len(body), "Notify SPI overruns payload")
        return cls(ntype, bytes(body[4 + spi_size :]), proto, bytes(body[4 : 4 + spi_size]))


@dataclass(frozen=True, slots=True)
class Delete(Payload):
    """RFC 7296, 3.11."""

    PAYLOAD_TYPE = PayloadType.DELETE
    protocol: int
    spis: tuple[bytes, ...] = ()

    def encode_body(self) -> bytes:
        size = len(self.spis[0]) if self.spis else 0
        return struct.pack("!BBH", self.protocol, size, len(self.spis)) + b"".join(self.spis)

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "Delete payload too short")
        proto, size, count = struct.unpack_from("!BBH", body)
        _need(len(body) == 4 + size * count, "Delete payload length mismatch")
        if proto == ProtocolId.IKE:
            _need(size == 0 and count == 0, "IKE Delete carries no SPIs")
        elif proto in (ProtocolId.ESP, ProtocolId.AH):
            _need(size == 4, "ESP/AH Delete SPI size must be 4")
        else:
            raise InvalidSyntax(f"Delete for unknown protocol {proto}")
        return cls(
            proto, tuple(bytes(body[4 + i * size : 4 + (i + 1) * size]) for i in range(count))
        )


@dataclass(frozen=True, slots=True)
class VendorId(Payload):
    """RFC 7296, 3.12."""

    PAYLOAD_TYPE = PayloadType.VENDOR_ID
    data: bytes

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        return cls(bytes(body))


# --------------------------------------------------------------------------------------------
# Traffic selectors (RFC 7296, 3.13)


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    """RFC 7296, 3.13.1: one address range, port range and IP protocol (0 = any)."""

    start_addr: IpAddress
    end_addr: IpAddress
    ip_proto: int = 0
    start_port: int = 0
    end_port: int = 65535

    @property
    def ts_type(self) -> TsType:
        if self.start_addr.version == 4:
            return TsType.TS_IPV4_ADDR_RANGE
        return TsType.TS_IPV6_ADDR_RANGE

    @classmethod
    def from_network(cls, net: str, ip_proto: int = 0, port: int | None = None) -> Self:
        n = ipaddress.ip_network(net, strict=False)
        lo, hi = (0, 65535) if port is None else (port, port)
        return cls(n.network_address, n.broadcast_address, ip_proto, lo, hi)

    def text(self) -> str:
        """As swanctl prints it: ``10.1.0.0/16``, ``10.1.0.5/32[6/80]``, ``a..b`` otherwise."""
        nets = list(ipaddress.summarize_address_range(self.start_addr, self.end_addr))
        out = str(nets[0]) if len(nets) == 1 else f"{self.start_addr}..{self.end_addr}"
        if self.ip_proto or (self.start_port, self.end_port) != (0, 65535):
            lo, hi = self.start_port, self.end_port
            out += f"[{self.ip_proto}/{lo if lo == hi else f'{lo}-{hi}'}]"
        return out

    def encode(self) -> bytes:
        addrs = self.start_addr.packed + self.end_addr.packed
        return (
            struct.pack(
                "!BBHHH",
                self.ts_type,
                self.ip_proto,
                8 + len(addrs),
                self.start_port,
                self.end_port,
            )
            + addrs
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        ts_type, proto, length, sport, eport = struct.unpack_from("!BBHHH", data)
        _need(length == len(data), "traffic selector length mismatch")
        if ts_type == TsType.TS_IPV4_ADDR_RANGE:
            _need(length == 16, "IPv4 traffic selector must be 16 octets")
            a: IpAddress = ipaddress.IPv4Address(bytes(data[8:12]))
            b: IpAddress = ipaddress.IPv4Address(bytes(data[12:16]))
        elif ts_type == TsType.TS_IPV6_ADDR_RANGE:
            _need(length == 40, "IPv6 traffic selector must be 40 octets")
            a = ipaddress.IPv6Address(bytes(data[8:24]))
            b = ipaddress.IPv6Address(bytes(data[24:40]))
        else:
            raise InvalidSyntax(f"unknown traffic selector type {ts_type}")
        return cls(a, b, proto, sport, eport)

    def __str__(self) -> str:
        proto = "" if self.ip_proto == 0 else f"[{self.ip_proto}]"
        ports = (
            ""
            if (self.start_port, self.end_port) == (0, 65535)
            else (f":{self.start_port}-{self.end_port}")
        )
        return f"{self.start_addr}-{self.end_addr}{proto}{ports}"


@dataclass(frozen=True, slots=True)
class _TrafficSelectors(Payload):
    selectors: tuple[TrafficSelector, ...]

    def encode_body(self) -> bytes:
        return bytes([len(self.selectors), 0, 0, 0]) + b"".join(s.encode() for s in self.selectors)

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "TS payload too short")
        count = body[0]
        _need(count >= 1, "TS payload without selectors")
        out: list[TrafficSelector] = []
        pos = 4
        for _ in range(count):
            _need(len(body) - pos >= 8, "truncated traffic selector")
            (slen,) = struct.unpack_from("!H", body, pos + 2)
            _need(slen >= 8 and pos + slen <= len(body), "traffic selector overruns payload")
            out.append(TrafficSelector.decode(body[pos : pos + slen]))
            pos += slen
        _need(pos == len(body), "octets after the last traffic selector")
        return cls(tuple(out))


@dataclass(frozen=True, slots=True)
class TSi(_TrafficSelectors):
    PAYLOAD_TYPE = PayloadType.TSi


@dataclass(frozen=True, slots=True)
class TSr(_TrafficSelectors):
    PAYLOAD_TYPE = PayloadType.TSr


# --------------------------------------------------------------------------------------------
# Encrypted payloads (RFC 7296, 3.14; RFC 7383, 2.5)


@dataclass(frozen=True, slots=True)
class EncryptedPayload(Payload):
    """SK: ``data`` is IV || ciphertext || ICV; ``first_inner`` is the first inner type."""

    PAYLOAD_TYPE = PayloadType.SK
    first_inner: int
    data: bytes

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        # first_inner is filled in by decode_chain from the generic header.
        return cls(0, bytes(body))


@dataclass(frozen=True, slots=True)
class EncryptedFragment(Payload):
    """SKF (RFC 7383, 2.5): ``first_inner`` is non-zero only in fragment 1."""

    PAYLOAD_TYPE = PayloadType.SKF
    first_inner: int
    number: int
    total: int
    data: bytes

    def encode_body(self) -> bytes:
        return struct.pack("!HH", self.number, self.total) + self.data

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "SKF payload too short")
        number, total = struct.unpack_from("!HH", body)
        _need(1 <= number <= total, "fragment number out of range")
        return cls(0, number, total, bytes(body[4:]))


# --------------------------------------------------------------------------------------------
# Configuration payload (RFC 7296, 3.15)


@dataclass(frozen=True, slots=True)
class ConfigAttribute:
    attr_type: int
    value: bytes = b""

    def encode(self) -> bytes:
        return struct.pack("!HH", self.attr_type & 0x7FFF, len(self.value)) + self.value


@dataclass(frozen=True, slots=True)
class ConfigPayload(Payload):
    PAYLOAD_TYPE = PayloadType.CP
    cfg_type: int
    attributes: tuple[ConfigAttribute, ...] = field(default_factory=tuple)

    def encode_body(self) -> bytes:
        return bytes([self.cfg_type, 0, 0, 0]) + b"".join(a.encode() for a in self.attributes)

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "CP payload too short")
        attrs: list[ConfigAttribute] = []
        pos = 4
        while pos < len(body):
            _need(len(body) - pos >= 4, "truncated configuration attribute")
            atype, alen = struct.unpack_from("!HH", body, pos)
            _need(pos + 4 + alen <= len(body), "configuration attribute overruns payload")
            attrs.append(ConfigAttribute(atype & 0x7FFF, bytes(body[pos + 4 : pos + 4 + alen])))
            pos += 4 + alen
        return cls(body[0], tuple(attrs))


@dataclass(frozen=True, slots=True)
class EapPayload(Payload):
    """RFC 7296, 3.16: one whole EAP packet (RFC 3748, 4) whose Length must fill the payload."""

    PAYLOAD_TYPE = PayloadType.EAP
    message: bytes

    def encode_body(self) -> bytes:
        return self.message

    @classmethod
    def decode_body(cls, body: bytes) -> Self:
        _need(len(body) >= 4, "EAP payload too short")
        (eap_len,) = struct.unpack_from("!H", body, 2)
        _need(eap_len == len(body), "EAP length does not fill the EAP payload")
        return cls(bytes(body))


_REGISTRY: dict[int, type[Payload]] = {
    cls.PAYLOAD_TYPE: cls
    for cls in (
        SecurityAssociation,
        KeyExchange,
        IDi,
        IDr,
        CertificatePayload,
        CertificateRequest,
        Authentication,
        Nonce,
        Notify,
        Delete,
        VendorId,
        TSi,
        TSr,
        EncryptedPayload,
        ConfigPayload,
        EapPayload,
        EncryptedFragment,
    )
}


def decode_chain(first: int, data: bytes) -> tuple[Payload, ...]:
    """Decode a chain of payloads starting with type ``first``; ``data`` must be used exactly.

    An SK or SKF payload ends the chain (RFC 7296, 3.14: it must be the last payload); its
    Next Payload field becomes its ``first_inner``.
    """
    out: list[Payload] = []
    nxt = first
    pos = 0
    view = memoryview(data)
    while nxt != PayloadType.NONE:
        _need(len(data) - pos >= 4, f"truncated generic header of payload type {nxt}")
        following, flags, length = _GENERIC.unpack_from(data, pos)
        _need(length >= 4 and pos + length <= len(data), f"payload type {nxt} overruns message")
        body = bytes(view[pos + 4 : pos + length])
        critical = bool(flags & 0x80)
        cls = _REGISTRY.get(nxt)
        payload: Payload
        if cls is None:
            if critical:
                raise UnsupportedCriticalPayload(nxt)
            payload = UnknownPayload(nxt, body, False)
        elif cls is EncryptedPayload:
            payload = EncryptedPayload(following, body)
        elif cls is EncryptedFragment:
            frag = EncryptedFragment.decode_body(body)
            payload = EncryptedFragment(following, frag.number, frag.total, frag.data)
        else:
            payload = cls.decode_body(body)
        out.append(payload)
        pos += length
        if isinstance(payload, EncryptedPayload | EncryptedFragment):
            _need(pos == len(data), "SK/SKF payload must be the last payload")
            break
        nxt = following
    _need(pos == len(data), "octets after the last payload")
    return tuple(out)


def encode_chain(payloads: tuple[Payload, ...] | list[Payload]) -> tuple[int, bytes]:
    """Encode payloads; return (type of the first payload, bytes)."""
    parts: list[bytes] = []
    for i, p in enumerate(payloads):
        if isinstance(p, EncryptedPayload | EncryptedFragment):
            if i != len(payloads) - 1:
                raise ValueError("SK/SKF payload must be last")
            following = p.first_inner
        else:
            following = payloads[i + 1].payload_type if i + 1 < len(payloads) else 0
        body = p.encode_body()
        if len(body) + 4 > 0xFFFF:
            raise ValueError(f"payload type {p.payload_type} too long")
        parts.append(_GENERIC.pack(following, 0x80 if p.critical else 0, len(body) + 4) + body)
    first = payloads[0].payload_type if payloads else 0
    return first, b"".join(parts)
