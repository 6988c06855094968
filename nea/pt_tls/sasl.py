"""SASL for PT-TLS client authentication (RFC 6876 3.8): the PLAIN mechanism (RFC 4616).

Mechanisms are small sans-I/O objects.  A server mechanism consumes the client's data (the
initial response of the Mechanism Selection, then each Authentication Data) and says
continue (with a challenge), success (with the authorized identity) or failure.  A client
mechanism produces the initial response and answers challenges.

PLAIN: ``message = [authzid] NUL authcid NUL passwd`` (UTF-8, each at most 255 octets, authcid
and passwd not empty, no NUL inside).  The credential check is a callback so that the gateway
decides where passwords live; :func:`plain_verifier` builds one over a table with constant-time
comparison.  Passwords never appear in reprs, events or logs.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "PlainClient",
    "PlainCredentials",
    "PlainServer",
    "PlainVerifier",
    "SaslClientMechanism",
    "SaslOutcome",
    "SaslServerMechanism",
    "SaslStep",
    "parse_plain",
    "plain_verifier",
]


class SaslOutcome(enum.Enum):
    CONTINUE = "continue"
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class SaslStep:
    outcome: SaslOutcome
    challenge: bytes = b""
    """CONTINUE: the server's challenge (SASL Authentication Data)."""
    identity: str | None = None
    """SUCCESS: the authorized identity."""
    reason: str | None = None
    """FAILURE: why (for the log; never a secret)."""


class SaslServerMechanism(Protocol):
    @property
    def name(self) -> str: ...

    def step(self, data: bytes | None) -> SaslStep:
        """Consume client data (None: the Selection carried no initial response)."""
        ...


class SaslClientMechanism(Protocol):
    @property
    def name(self) -> str: ...

    def initial(self) -> bytes:
        """The initial response for the Mechanism Selection (may be empty)."""
        ...

    def challenge(self, data: bytes) -> bytes:
        """Answer a server challenge."""
        ...


@dataclass(frozen=True, slots=True)
class PlainCredentials:
    authzid: str
    authcid: str
    password: str = field(repr=False)


PlainVerifier = Callable[[PlainCredentials], str | None]
"""Checks PLAIN credentials; returns the authorized identity, or None to refuse."""


class PlainFormatError(ValueError):
    pass


def parse_plain(message: bytes) -> PlainCredentials:
    """RFC 4616 section 2; raises ValueError on a malformed message."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise PlainFormatError(f"PLAIN message needs exactly 2 NULs, has {len(parts) - 1}")
    authzid, authcid, password = parts
    if not authcid or not password:
        raise PlainFormatError("PLAIN authcid and password must not be empty")
    if max(len(authzid), len(authcid), len(password)) > 255:
        raise PlainFormatError("PLAIN field longer than 255 octets")
    try:
        return PlainCredentials(
            authzid.decode("utf-8"), authcid.decode("utf-8"), password.decode("utf-8")
        )
    except UnicodeDecodeError as exc:
        raise PlainFormatError("PLAIN field is not UTF-8") from exc


def plain_verifier(passwords: Mapping[str, str]) -> PlainVerifier:
    """A verifier over ``{authcid: password}``; an authzid must be empty or the authcid."""

    def verify(creds: PlainCredentials) -> str | None:
        expected = passwords.get(creds.authcid)
        # compare even for unknown users so timing does not tell which names exist
        good = hmac.compare_digest(
            (expected if expected is not None else "\x00" * 16).encode(), creds.password.encode()
        )
        if expected is None or not good:
            return None
        if creds.authzid and creds.authzid != creds.authcid:
            return None
        return creds.authcid

    return verify


class PlainServer:
    """Server side of PLAIN: an empty challenge when the Selection had no initial response."""

    name = "PLAIN"

    def __init__(self, verify: PlainVerifier) -> None:
        self._verify = verify
        self._challenged = False

    def step(self, data: bytes | None) -> SaslStep:
        if data is None or (not data and not self._challenged):
            if self._challenged:
                return SaslStep(SaslOutcome.FAILURE, reason="PLAIN: no credentials")
            self._challenged = True
            return SaslStep(SaslOutcome.CONTINUE, b"")
        try:
            creds = parse_plain(data)
        except ValueError as exc:
            return SaslStep(SaslOutcome.FAILURE, reason=f"PLAIN: {exc}")
        identity = self._verify(creds)
        if identity is None:
            return SaslStep(
                SaslOutcome.FAILURE, reason=f"PLAIN: credentials of {creds.authcid!r} refused"
            )
        return SaslStep(SaslOutcome.SUCCESS, identity=identity)


class PlainClient:
    """Client side of PLAIN; sends the credentials as the initial response."""

    name = "PLAIN"

    def __init__(self, authcid: str, password: str, authzid: str = "") -> None:
        self.authcid = authcid
        self.authzid = authzid
        self._password = password

    def _message(self) -> bytes:
        return b"\x00".join(
            (self.authzid.encode(), self.authcid.encode(), self._password.encode())
        )

    def initial(self) -> bytes:
        return self._message()

    def challenge(self, data: bytes) -> bytes:
        return self._message()

    def __repr__(self) -> str:
        return f"PlainClient(authcid={self.authcid!r})"
