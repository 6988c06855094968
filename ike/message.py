"""Whole IKEv2 messages: header + payloads, SK protection (RFC 7296, 3.14; RFC 5282, 5.1) and
IKE fragmentation (RFC 7383).

A :class:`Message` is the plaintext view; :func:`encode_message` protects its payloads in an SK
payload (or splits them into SKF fragments) with a :class:`SkCipher`; :func:`decode_message`
checks the outer structure, and :meth:`SkCipher.open` verifies and decrypts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ike.constants import IKE_HEADER_LEN, ExchangeType, HeaderFlag, PayloadType
from ike.crypto import EncrAlg, IntegAlg
from ike.errors import IntegrityCheckFailed, InvalidSyntax, LocalProtocolError
from ike.payloads import (
    EncryptedFragment,
    EncryptedPayload,
    IkeHeader,
    Payload,
    decode_chain,
    encode_chain,
)

__all__ = [
    "FragmentReassembler",
    "Message",
    "RawMessage",
    "SkCipher",
    "decode_message",
    "encode_message",
    "open_message",
]


@dataclass(frozen=True, slots=True)
class Message:
    """The plaintext view of one IKE message (payloads inside SK are listed as plain ones)."""

    spi_i: bytes
    spi_r: bytes
    exchange_type: int
    message_id: int
    is_response: bool
    is_initiator: bool
    payloads: tuple[Payload, ...] = ()

    @property
    def flags(self) -> int:
        f = HeaderFlag.NONE
        if self.is_response:
            f |= HeaderFlag.RESPONSE
        if self.is_initiator:
            f |= HeaderFlag.INITIATOR
        return int(f)

    def get(self, cls: type[Payload]) -> list[Payload]:
        return [p for p in self.payloads if type(p) is cls]

    def describe(self) -> str:
        """charon-style summary, e.g. ``IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]``."""
        try:
            exch = ExchangeType(self.exchange_type).name
        except ValueError:
            exch = str(self.exchange_type)
        names = []
        for p in self.payloads:
            try:
                names.append(PayloadType(p.payload_type).name)
            except ValueError:
                names.append(str(p.payload_type))
        kind = "response" if self.is_response else "request"
        return f"{exch} {kind} {self.message_id} [ {' '.join(names)} ]"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A decoded datagram before decryption: the header, outer payloads and original bytes."""

    header: IkeHeader
    payloads: tuple[Payload, ...]
    data: bytes

    @property
    def is_response(self) -> bool:
        return bool(self.header.flags & HeaderFlag.RESPONSE)

    @property
    def is_initiator(self) -> bool:
        return bool(self.header.flags & HeaderFlag.INITIATOR)

    @property
    def encrypted(self) -> EncryptedPayload | EncryptedFragment | None:
        if self.payloads and isinstance(self.payloads[-1], EncryptedPayload | EncryptedFragment):
            return self.payloads[-1]
        return None

    def plain(self, payloads: tuple[Payload, ...] | None = None) -> Message:
        h = self.header
        return Message(
            h.spi_i,
            h.spi_r,
            h.exchange_type,
            h.message_id,
            self.is_response,
            self.is_initiator,
            self.payloads if payloads is None else payloads,
        )


def decode_message(data: bytes) -> RawMessage:
    """Decode the header and the outer payload chain; lengths are checked exactly."""
    header = IkeHeader.decode(data)
    payloads = decode_chain(header.next_payload, data[IKE_HEADER_LEN:])
    return RawMessage(header, payloads, bytes(data))


@dataclass(slots=True, repr=False)
class SkCipher:
    """One direction pair of SK keys: ``*_out`` protect what we send, ``*_in`` what we get."""

    encr: EncrAlg
    integ: IntegAlg | None
    ke_out: bytes
    ka_out: bytes
    ke_in: bytes
    ka_in: bytes
    random: Callable[[int], bytes] = field(default=os.urandom)

    def __repr__(self) -> str:
        return f"SkCipher({self.encr.name}, {self.integ.name if self.integ else 'AEAD'})"

    @property
    def icv_len(self) -> int:
        return self.encr.icv_len if self.encr.aead else (self.integ.icv_len if self.integ else 0)

    def seal(self, prefix: bytes, plaintext: bytes) -> bytes:
        """Return IV || ciphertext || ICV for an SK/SKF payload.

        ``prefix`` is everything that precedes the IV in the final message (IKE header with the
        final length and the SK/SKF header); it is the AEAD AAD and the start of the MAC input.
        """
        bs = self.encr.block_size
        pad_len = (bs - (len(plaintext) + 1) % bs) % bs
        padded = plaintext + bytes(pad_len) + bytes([pad_len])
        iv = self.random(self.encr.iv_len)
        if self.encr.aead:
            return iv + self.encr.encrypt(self.ke_out, iv, padded, prefix)
        assert self.integ is not None
        body = iv + self.encr.encrypt(self.ke_out, iv, padded)
        return body + self.integ.compute(self.ka_out, prefix + body)

    def sealed_len(self, plaintext_len: int) -> int:
        bs = self.encr.block_size
        pad_len = (bs - (plaintext_len + 1) % bs) % bs
        return self.encr.iv_len + plaintext_len + pad_len + 1 + self.icv_len

    def open(self, raw: RawMessage) -> bytes:
        """Verify and decrypt the SK/SKF payload of ``raw``; return the inner plaintext."""
        enc = raw.encrypted
        if enc is None:
            raise InvalidSyntax("no encrypted payload")
        data = enc.data
        prefix = raw.data[: len(raw.data) - len(data)]
        iv_len, icv_len = self.encr.iv_len, self.icv_len
        if len(data) < iv_len + icv_len + 1:
            raise InvalidSyntax("encrypted payload too short")
        iv = data[:iv_len]
        if self.encr.aead:
            padded = self.encr.decrypt(self.ke_in, iv, data[iv_len:], prefix)
        else:
            assert self.integ is not None
            if not self.integ.verify(self.ka_in, raw.data[:-icv_len], data[-icv_len:]):
                raise IntegrityCheckFailed("integrity check failed")
            padded = self.encr.decrypt(self.ke_in, iv, data[iv_len:-icv_len])
        pad_len = padded[-1]
        if pad_len + 1 > len(padded):
            raise InvalidSyntax("pad length exceeds plaintext")
        return padded[: -(pad_len + 1)]


def _header(msg: Message, next_payload: int, length: int) -> bytes:
    return IkeHeader(
        msg.spi_i, msg.spi_r, next_payload, msg.exchange_type, msg.flags, msg.message_id, length
    ).encode()


def encode_message(
    msg: Message, cipher: SkCipher | None = None, fragment_size: int | None = None
) -> list[bytes]:
    """Encode ``msg``; with a cipher its payloads go into SK (or SKF fragments, RFC 7383).

    ``fragment_size`` is the largest IKE message (UDP payload) to send; messages that fit are
    never fragmented.  Returns the datagrams in order.
    """
    first, inner = encode_chain(msg.payloads)
    if cipher is None:
        return [_header(msg, first, IKE_HEADER_LEN + len(inner)) + inner]
    total = IKE_HEADER_LEN + 4 + cipher.sealed_len(len(inner))
    if fragment_size is None or total <= fragment_size:
        prefix_hdr = _header(msg, PayloadType.SK, total)
        sk_hdr = bytes([first, 0]) + (total - IKE_HEADER_LEN).to_bytes(2, "big")
        prefix = prefix_hdr + sk_hdr
        return [prefix + cipher.seal(prefix, inner)]
    # RFC 7383, 2.5: every fragment is a full message with one SKF payload.
    room = fragment_size - IKE_HEADER_LEN - 8 - cipher.encr.iv_len - cipher.icv_len - 1
    room -= cipher.encr.block_size - 1
    if room < 16:
        raise LocalProtocolError("fragment size too small")
    chunks = [inner[i : i + room] for i in range(0, len(inner), room)]
    out: list[bytes] = []
    for n, chunk in enumerate(chunks, start=1):
        length = IKE_HEADER_LEN + 8 + cipher.sealed_len(len(chunk))
        hdr = _header(msg, PayloadType.SKF, length)
        skf_hdr = (
            bytes([first if n == 1 else 0, 0])
            + (length - IKE_HEADER_LEN).to_bytes(2, "big")
            + n.to_bytes(2, "big")
            + len(chunks).to_bytes(2, "big")
        )
        prefix = hdr + skf_hdr
        out.append(prefix + cipher.seal(prefix, chunk))
    return out


class FragmentReassembler:
    """Collects the SKF fragments of one message (RFC 7383, 2.6), verified one by one."""

    MAX_FRAGMENTS = 64

    def __init__(self) -> None:
        self.message_id: int | None = None
        self.total = 0
        self.first_inner = 0
        self.parts: dict[int, bytes] = {}

    def add(self, raw: RawMessage, cipher: SkCipher) -> tuple[int, bytes] | None:
        """Add one fragment; return (first inner payload type, plaintext) when complete."""
        frag = raw.encrypted
        if not isinstance(frag, EncryptedFragment):
            raise InvalidSyntax("not a fragment")
        if frag.total > self.MAX_FRAGMENTS:
            raise InvalidSyntax("too many fragments")
        mid = raw.header.message_id
        if self.message_id != mid or frag.total > self.total:
            # RFC 7383, 2.6.1: a larger total number restarts collection for this message.
            if self.message_id == mid and frag.total < self.total:
                return None
            self.message_id, self.total, self.parts, self.first_inner = mid, frag.total, {}, 0
        elif frag.total < self.total:
            return None
        if frag.number in self.parts:
            return None
        plain = cipher.open(raw)  # verified before it is kept
        if frag.number == 1:
            if frag.first_inner == 0:
                raise InvalidSyntax("first fragment without Next Payload")
            self.first_inner = frag.first_inner
        self.parts[frag.number] = plain
        if len(self.parts) < self.total:
            return None
        data = b"".join(self.parts[i] for i in range(1, self.total + 1))
        first = self.first_inner
        self.message_id, self.total, self.parts = None, 0, {}
        return first, data


def open_message(raw: RawMessage, cipher: SkCipher) -> Message:
    """Verify, decrypt and decode the SK payload of a non-fragmented message."""
    enc = raw.encrypted
    if not isinstance(enc, EncryptedPayload):
        raise InvalidSyntax("message is not protected by an SK payload")
    plain = cipher.open(raw)
    return raw.plain(raw.payloads[:-1] + decode_chain(enc.first_inner, plain))
