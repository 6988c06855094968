"""RFC 5080 section 2.2.2: the duplicate detection cache of a RADIUS server.

A request is a duplicate when it comes from the same source address and port, with the same
code, Identifier and Request Authenticator as one answered recently; it gets the same
response again (or nothing again) instead of being processed twice, which matters for EAP:
running a retransmitted EAP-Response through the method would derail the conversation.  A
request with the same Identifier but a new authenticator is new and replaces the entry.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from radius.events import Address

__all__ = ["DuplicateCache"]


@dataclass(slots=True)
class _Entry:
    authenticator: bytes
    response: bytes | None
    expires: float


class DuplicateCache:
    def __init__(self, lifetime: float = 10.0, max_entries: int = 65536) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Address, int, int], _Entry] = OrderedDict()

    def lookup(
        self, source: Address, code: int, identifier: int, authenticator: bytes, now: float
    ) -> tuple[bool, bytes | None]:
        """``(True, response)`` when this request was answered already, else ``(False, None)``."""
        self.expire(now)
        entry = self._entries.get((source, code, identifier))
        if entry is None or entry.authenticator != authenticator:
            return False, None
        return True, entry.response

    def store(
        self,
        source: Address,
        code: int,
        identifier: int,
        authenticator: bytes,
        response: bytes | None,
        now: float,
    ) -> None:
        key = (source, code, identifier)
        self._entries.pop(key, None)
        self._entries[key] = _Entry(authenticator, response, now + self.lifetime)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]

    def next_expiry(self) -> float | None:
        if not self._entries:
            return None
        return next(iter(self._entries.values())).expires

    def __len__(self) -> int:
        return len(self._entries)
