"""How methods learn passwords: small callbacks, so storage (file, SQL, LDAP) stays outside.

Secrets are never logged: :class:`StaticPasswords` hides its values in ``repr``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

__all__ = [
    "NtHashLookup",
    "PasswordCheck",
    "PasswordLookup",
    "StaticPasswords",
    "password_check",
]

PasswordLookup = Callable[[bytes], "str | None"]
"""``lookup(identity) -> clear-text password``, or None for an unknown user."""

NtHashLookup = Callable[[bytes], "bytes | None"]
"""``lookup(identity) -> 16-byte NT password hash`` (MD4 of UTF-16LE), or None."""

PasswordCheck = Callable[[bytes, str], bool]
"""``check(identity, password) -> bool`` for methods that see the clear password (GTC)."""


class StaticPasswords:
    """A fixed ``{identity: password}`` table usable as a :data:`PasswordLookup`."""

    def __init__(self, table: Mapping[bytes | str, str]) -> None:
        self._table = {
            (k.encode("utf-8") if isinstance(k, str) else bytes(k)): v for k, v in table.items()
        }

    def __call__(self, identity: bytes) -> str | None:
        return self._table.get(identity)

    def __repr__(self) -> str:
        return f"StaticPasswords({len(self._table)} users)"


def password_check(lookup: PasswordLookup) -> PasswordCheck:
    """A :data:`PasswordCheck` comparing in constant time against ``lookup``'s password."""

    def check(identity: bytes, password: str) -> bool:
        expected = lookup(identity)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode("utf-8"), password.encode("utf-8"))

    return check
