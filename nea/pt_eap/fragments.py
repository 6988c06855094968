"""EAP-TNC fragmentation and reassembly (the EAP-TLS scheme of RFC 5216 section 2.1.5).

A message larger than the fragment size goes out in fragments: the first carries L and the
total length, every one but the last carries M, and the receiver acknowledges each with an
empty packet.  On receipt we are liberal, as the field asks: L may be absent (strongSwan never
sets it on EAP-TNC), repeated on later fragments (then it must not change) or present on an
unfragmented message (then it must match).  The reassembled message is bounded.
"""

from __future__ import annotations

from nea.pt_eap.errors import ReassemblyError
from nea.pt_eap.packet import EAP_TNC_VERSION, EapTncPacket

__all__ = ["DEFAULT_MAX_MESSAGE", "Reassembler", "fragment"]

DEFAULT_MAX_MESSAGE = 65535
"""strongSwan's EAP_TNC_MAX_MESSAGE_LEN; hostapd likewise refuses more than 64 KiB."""


def fragment(
    message: bytes,
    fragment_size: int,
    *,
    version: int = EAP_TNC_VERSION,
    include_length: bool = False,
) -> list[EapTncPacket]:
    """Split ``message`` into EAP-TNC packets of at most ``fragment_size`` data octets.

    ``include_length`` also sets L on a message that fits one packet.
    """
    if fragment_size < 1:
        raise ValueError("fragment_size must be positive")
    if len(message) <= fragment_size:
        total = len(message) if include_length else None
        return [EapTncPacket(message, total_length=total, version=version)]
    chunks = [message[i : i + fragment_size] for i in range(0, len(message), fragment_size)]
    out = []
    for index, chunk in enumerate(chunks):
        out.append(
            EapTncPacket(
                chunk,
                more=index < len(chunks) - 1,
                total_length=len(message) if index == 0 else None,
                version=version,
            )
        )
    return out


class Reassembler:
    """Collects fragments; :meth:`feed` returns the whole message once the last one arrived."""

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._parts: list[bytes] = []
        self._size = 0
        self._expected: int | None = None
        self._active = False

    @property
    def in_progress(self) -> bool:
        return self._active

    def reset(self) -> None:
        self._parts, self._size, self._expected, self._active = [], 0, None, False

    def feed(self, packet: EapTncPacket) -> bytes | None:
        """Add one packet; None means "acknowledge and wait for the next fragment"."""
        if packet.total_length is not None:
            if packet.total_length > self.max_message:
                self.reset()
                raise ReassemblyError(
                    f"announced message of {packet.total_length} bytes exceeds the limit "
                    f"of {self.max_message}",
                    offset=1,
                )
            if self._expected is not None and packet.total_length != self._expected:
                self.reset()
                raise ReassemblyError(
                    f"total length changed from {self._expected} to {packet.total_length}",
                    offset=1,
                )
            self._expected = packet.total_length
        self._active = True
        self._parts.append(packet.data)
        self._size += len(packet.data)
        if self._size > self.max_message:
            self.reset()
            raise ReassemblyError(
                f"reassembled message exceeds the limit of {self.max_message} bytes"
            )
        if self._expected is not None and self._size > self._expected:
            expected = self._expected
            self.reset()
            raise ReassemblyError(f"fragments exceed the announced length {expected}")
        if packet.more:
            if not packet.data:
                self.reset()
                raise ReassemblyError("M flag on a fragment without data", offset=0)
            return None
        if self._expected is not None and self._size != self._expected:
            size, expected = self._size, self._expected
            self.reset()
            raise ReassemblyError(f"message of {size} bytes, {expected} announced")
        message = b"".join(self._parts)
        self.reset()
        return message
