"""EAP-TLS framing: flags, TLS Message Length, fragmentation and reassembly.

RFC 5216 section 3.1 (and RFC 5281 9.2.2, PEAP draft 3.2) define one Type-Data layout for all
TLS-based methods::

    Flags (1) | [TLS Message Length (4), when L] | TLS data

Flags: L = 0x80 (length included), M = 0x40 (more fragments), S = 0x20 (start).  The low three
bits carry the method version for TTLS, PEAP and FAST; EAP-TLS keeps them zero.

Choices (documented in the report and here):

* Default fragment size 1024 bytes of TLS data per message (strongSwan's value).  An EAP-TLS
  Request is then at most 1024 + 4 + 1 + 5 = 1034 bytes, which fits IKE_AUTH without IKE
  fragmentation on a 1280-byte path and RADIUS (five EAP-Message attributes of 253 bytes).
* L is sent only on the first fragment of a fragmented message (hostapd), unless
  ``length_always`` asks for it on unfragmented messages too (strongSwan does so for TLS/TTLS).
* Receiving is liberal: L on an unfragmented message, L repeated on every fragment, a first
  fragment without L.  Whatever arrives, a declared length must match the data exactly and the
  reassembled message may not exceed ``max_message`` (64 KiB, as hostapd).
* A fragment is acknowledged by an empty message carrying only the flags byte (RFC 5216 3.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ike.eap_tls.errors import FramingError, ReassemblyLimitError

__all__ = [
    "DEFAULT_FRAGMENT_SIZE",
    "FLAG_LENGTH",
    "FLAG_MORE",
    "FLAG_START",
    "MAX_MESSAGE",
    "VERSION_MASK",
    "Framing",
    "Message",
    "Reply",
]

FLAG_LENGTH = 0x80
FLAG_MORE = 0x40
FLAG_START = 0x20
VERSION_MASK = 0x07

DEFAULT_FRAGMENT_SIZE = 1024
MAX_MESSAGE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """A complete message from the other side (possibly reassembled; possibly empty = ACK)."""

    data: bytes
    flags: int
    """Flags of the first fragment (S and the version bits live here)."""

    @property
    def start(self) -> bool:
        return bool(self.flags & FLAG_START)

    @property
    def version(self) -> int:
        return self.flags & VERSION_MASK


@dataclass(frozen=True, slots=True)
class Reply:
    """Framing answers by itself: the ACK of a received fragment or our next fragment."""

    type_data: bytes


class Framing:
    """Both directions of one EAP-TLS-style conversation.  Sans-I/O, no TLS knowledge."""

    def __init__(
        self,
        *,
        version: int = 0,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        max_message: int = MAX_MESSAGE,
        length_always: bool = False,
    ) -> None:
        if not 0 <= version <= VERSION_MASK:
            raise ValueError("version must fit in three bits")
        if fragment_size < 1:
            raise ValueError("fragment_size must be positive")
        self.version = version
        self.fragment_size = fragment_size
        self.max_message = max_message
        self.length_always = length_always
        self._out: list[bytes] = []
        self._in = bytearray()
        self._in_total: int | None = None
        self._in_flags: int | None = None

    # -- sending -----------------------------------------------------------------------
    @property
    def sending(self) -> bool:
        """True while fragments of our last message still wait for the other side's ACKs."""
        return bool(self._out)

    @property
    def receiving(self) -> bool:
        return self._in_flags is not None

    def start(self, data: bytes = b"") -> bytes:
        """A Start message (S flag, version bits, optional data such as FAST's Authority-ID)."""
        return bytes([FLAG_START | self.version]) + data

    def ack(self) -> bytes:
        """An empty message: fragment ACK, or the peer's answer that has nothing to say."""
        return bytes([self.version])

    def send(self, data: bytes) -> bytes:
        """Type-Data of the first (or only) message carrying ``data``; the rest is queued."""
        if self._out:
            raise FramingError("previous message still being fragmented")
        if len(data) > self.max_message:
            raise ReassemblyLimitError(f"outgoing message of {len(data)} bytes over the limit")
        size = self.fragment_size
        if len(data) <= size:
            if self.length_always and data:
                return bytes([FLAG_LENGTH | self.version]) + struct.pack("!I", len(data)) + data
            return bytes([self.version]) + data
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        first = (
            bytes([FLAG_LENGTH | FLAG_MORE | self.version])
            + struct.pack("!I", len(data))
            + chunks[0]
        )
        for i, chunk in enumerate(chunks[1:], start=1):
            more = FLAG_MORE if i < len(chunks) - 1 else 0
            self._out.append(bytes([more | self.version]) + chunk)
        return first

    # -- receiving ---------------------------------------------------------------------
    def receive(self, type_data: bytes) -> Message | Reply:
        """Parse one Type-Data; raise :class:`FramingError` on malformed framing."""
        if not type_data:
            raise FramingError("empty Type-Data (no flags byte)")
        flags = type_data[0]
        body = type_data[1:]
        total: int | None = None
        if flags & FLAG_LENGTH:
            if len(body) < 4:
                raise FramingError("L flag set but TLS Message Length truncated")
            (total,) = struct.unpack("!I", body[:4])
            body = body[4:]
            if total > self.max_message:
                raise ReassemblyLimitError(
                    f"TLS Message Length {total} exceeds the {self.max_message}-byte limit"
                )

        if self._out:
            # We are fragmenting: the other side must acknowledge with an empty message.
            if body or flags & (FLAG_MORE | FLAG_LENGTH):
                raise FramingError("expected an empty fragment ACK while sending fragments")
            return Reply(self._out.pop(0))

        if self._in_flags is None:
            if not flags & FLAG_MORE:
                if total is not None and total != len(body):
                    raise FramingError(
                        f"TLS Message Length {total} does not match {len(body)} bytes of data"
                    )
                return Message(bytes(body), flags)
            if total is not None and len(body) >= total:
                raise FramingError("M flag set but the first fragment holds the whole message")
            if not body:
                raise FramingError("empty fragment with M flag")
            self._in_flags = flags
            self._in_total = total
            self._in = bytearray(body)
            self._check_size()
            return Reply(self.ack())

        # Continuation fragment.
        if total is not None and self._in_total is not None and total != self._in_total:
            raise FramingError("TLS Message Length changed between fragments")
        if flags & FLAG_START:
            raise FramingError("S flag inside a fragmented message")
        if not body:
            raise FramingError("empty fragment inside a fragmented message")
        self._in += body
        self._check_size()
        if flags & FLAG_MORE:
            return Reply(self.ack())
        data = bytes(self._in)
        first_flags = self._in_flags
        expected = self._in_total
        self._in = bytearray()
        self._in_total = None
        self._in_flags = None
        if expected is not None and expected != len(data):
            raise FramingError(
                f"reassembled {len(data)} bytes but TLS Message Length said {expected}"
            )
        return Message(data, first_flags & ~(FLAG_LENGTH | FLAG_MORE))

    def _check_size(self) -> None:
        if len(self._in) > self.max_message:
            raise ReassemblyLimitError(
                f"reassembled message exceeds the {self.max_message}-byte limit"
            )
        if self._in_total is not None and len(self._in) > self._in_total:
            raise FramingError("fragments exceed the announced TLS Message Length")
