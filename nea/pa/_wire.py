"""Bounds-checked reading and range-checked writing of PA-TNC fields (internal).

Every read that runs past the end of its block raises :class:`InvalidParameter` with the
absolute offset (from the start of the PA-TNC message) of the field that did not fit; a
block that is not consumed exactly is an error too (:meth:`Reader.expect_end`).
"""

from __future__ import annotations

import re

from nea.pa.errors import InvalidParameter, LocalPaTncError

__all__ = [
    "Reader",
    "check_rfc3339_20",
    "decode_text",
    "u8",
    "u16",
    "u24",
    "u32",
    "vec8",
    "vec16",
    "vec32",
]


class Reader:
    """Reads big-endian fields from ``data``; ``base`` is the absolute offset of data[0]."""

    __slots__ = ("_data", "_end", "_pos", "base")

    def __init__(self, data: bytes, base: int = 0) -> None:
        self._data = data
        self._pos = 0
        self._end = len(data)
        self.base = base

    @property
    def offset(self) -> int:
        """Absolute offset of the next unread octet."""
        return self.base + self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def need(self, n: int, what: str, at: int | None = None) -> None:
        if n > self._end - self._pos:
            raise InvalidParameter(
                f"truncated {what}: need {n} octets, {self._end - self._pos} left",
                offset=self.offset if at is None else at,
            )

    def _uint(self, n: int, what: str) -> int:
        self.need(n, what)
        value = int.from_bytes(self._data[self._pos : self._pos + n], "big")
        self._pos += n
        return value

    def u8(self, what: str) -> int:
        return self._uint(1, what)

    def u16(self, what: str) -> int:
        return self._uint(2, what)

    def u24(self, what: str) -> int:
        return self._uint(3, what)

    def u32(self, what: str) -> int:
        return self._uint(4, what)

    def take(self, n: int, what: str, at: int | None = None) -> bytes:
        self.need(n, what, at)
        value = self._data[self._pos : self._pos + n]
        self._pos += n
        return bytes(value)

    def rest(self) -> bytes:
        value = self._data[self._pos : self._end]
        self._pos = self._end
        return bytes(value)

    def _vec(self, size: int, what: str) -> bytes:
        at = self.offset
        n = self._uint(size, f"{what} length")
        # a length that points past the block is reported at the length field
        return self.take(n, what, at=at)

    def vec8(self, what: str) -> bytes:
        return self._vec(1, what)

    def vec16(self, what: str) -> bytes:
        return self._vec(2, what)

    def vec32(self, what: str) -> bytes:
        return self._vec(4, what)

    def text(self, n: int, what: str) -> str:
        at = self.offset
        return decode_text(self.take(n, what), what, at)

    def text8(self, what: str, *, nul_ok: bool = True) -> str:
        at = self.offset + 1
        return decode_text(self.vec8(what), what, at, nul_ok=nul_ok)

    def text16(self, what: str, *, nul_ok: bool = True) -> str:
        at = self.offset + 2
        return decode_text(self.vec16(what), what, at, nul_ok=nul_ok)

    def text32(self, what: str, *, nul_ok: bool = True) -> str:
        at = self.offset + 4
        return decode_text(self.vec32(what), what, at, nul_ok=nul_ok)

    def rest_text(self, what: str, *, nul_ok: bool = True) -> str:
        at = self.offset
        return decode_text(self.rest(), what, at, nul_ok=nul_ok)

    def expect_end(self, what: str) -> None:
        if self._pos != self._end:
            raise InvalidParameter(
                f"{self._end - self._pos} unexpected octets after {what}", offset=self.offset
            )


def decode_text(raw: bytes, what: str, at: int, *, nul_ok: bool = True) -> str:
    """UTF-8 text field (RFC 5792 strings are UTF-8); ``at`` is the field's offset."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameter(f"{what} is not UTF-8", offset=at + exc.start) from None
    if not nul_ok and "\x00" in text:
        # RFC 5792 strings are not NUL terminated; strongSwan rejects embedded NULs here too
        raise InvalidParameter(f"NUL octet in {what}", offset=at + raw.index(b"\x00"))
    return text


_RFC3339_20 = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def check_rfc3339_20(raw: bytes, what: str, at: int) -> str:
    """A 20-octet RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SSZ" (RFC 5792, 4.2.5 Last Use;
    RFC 8412 event timestamps)."""
    if len(raw) != 20 or _RFC3339_20.fullmatch(raw) is None:
        raise InvalidParameter(f"{what} is not an RFC 3339 time of 20 octets", offset=at)
    return raw.decode("ascii")


def _uint(value: int, n: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * n):
        raise LocalPaTncError(f"{what}={value!r} does not fit in {8 * n} bits")
    return value.to_bytes(n, "big")


def u8(value: int, what: str) -> bytes:
    return _uint(value, 1, what)


def u16(value: int, what: str) -> bytes:
    return _uint(value, 2, what)


def u24(value: int, what: str) -> bytes:
    return _uint(value, 3, what)


def u32(value: int, what: str) -> bytes:
    return _uint(value, 4, what)


def _vec(data: bytes | str, n: int, what: str) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return _uint(len(raw), n, f"length of {what}") + raw


def vec8(data: bytes | str, what: str) -> bytes:
    return _vec(data, 1, what)


def vec16(data: bytes | str, what: str) -> bytes:
    return _vec(data, 2, what)


def vec32(data: bytes | str, what: str) -> bytes:
    return _vec(data, 4, what)
