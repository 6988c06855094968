"""EAP-MD5-Challenge (RFC 3748 section 5.4; the CHAP computation of RFC 1994 section 4.1).

Type-Data: Value-Size (1) || Value || Name.  The Response Value is
MD5(Identifier || password || Challenge), where Identifier is the EAP Identifier of the
Request, which the EAP layer hands in through ``set_identifier``.  No keys: EAP-MD5 derives
no MSK and gives no mutual authentication (RFC 3748 7.2), so use it only inside a tunnel or
in tests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ike.eap.method import Decision, ServerMethodFactory, Step
from ike.eap.methods.credentials import PasswordLookup
from ike.eap.packet import EapType, MalformedPacket

__all__ = ["Md5PeerMethod", "Md5ServerMethod", "md5_server_factory"]

_CHALLENGE_LENGTH = 16


def _md5_response(identifier: int, password: str, challenge: bytes) -> bytes:
    return hashlib.md5(  # noqa: S324 - RFC 1994 CHAP with MD5 is the method
        bytes((identifier,)) + password.encode("utf-8") + challenge
    ).digest()


def _split_value(type_data: bytes) -> tuple[bytes, bytes]:
    if not type_data:
        raise MalformedPacket("EAP-MD5 Type-Data is empty", 5)
    size = type_data[0]
    if size == 0 or 1 + size > len(type_data):
        raise MalformedPacket(f"EAP-MD5 Value-Size {size} does not fit the packet", 5)
    return bytes(type_data[1 : 1 + size]), bytes(type_data[1 + size :])


class Md5ServerMethod:
    """Authenticator side: one challenge, one check."""

    def __init__(
        self,
        identity: bytes,
        lookup: PasswordLookup,
        *,
        name: bytes = b"",
        challenge: bytes | None = None,
    ) -> None:
        self._identity = identity
        self._lookup = lookup
        self._name = name
        self._challenge = challenge if challenge is not None else secrets.token_bytes(16)
        self._identifier: int | None = None
        self._failure_reason: str | None = None

    @property
    def eap_type(self) -> int:
        return EapType.MD5_CHALLENGE

    def set_identifier(self, identifier: int) -> None:
        self._identifier = identifier

    def start(self) -> bytes:
        return bytes((len(self._challenge),)) + self._challenge + self._name

    def receive(self, type_data: bytes) -> Step:
        try:
            value, _peer_name = _split_value(type_data)
        except MalformedPacket as exc:
            return self._fail(f"malformed EAP-MD5 Response: {exc}")
        if len(value) != _CHALLENGE_LENGTH:
            return self._fail(f"EAP-MD5 Response value of {len(value)} bytes, expected 16")
        if self._identifier is None:
            return self._fail("EAP-MD5 Response before the Request had an identifier")
        password = self._lookup(self._identity)
        if password is None:
            return self._fail(f"unknown user {self._identity!r}")
        expected = _md5_response(self._identifier, password, self._challenge)
        if not hmac.compare_digest(expected, value):
            return self._fail(f"EAP-MD5 response does not match the password of {self._identity!r}")
        return Step(None, Decision.SUCCESS)

    def _fail(self, reason: str) -> Step:
        self._failure_reason = reason
        return Step(None, Decision.FAILURE)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason


def md5_server_factory(lookup: PasswordLookup, *, name: bytes = b"") -> ServerMethodFactory:
    """A :data:`ServerMethodFactory` for EAP-MD5 checking passwords from ``lookup``."""

    def factory(identity: bytes) -> Md5ServerMethod:
        return Md5ServerMethod(identity, lookup, name=name)

    return factory


class Md5PeerMethod:
    """Peer side: answers each challenge; the method is then done on this side."""

    def __init__(self, password: str, *, name: bytes = b"") -> None:
        self._password = password
        self._name = name
        self._identifier: int | None = None
        self._failure_reason: str | None = None

    def __repr__(self) -> str:
        return "Md5PeerMethod(<secret>)"

    @property
    def eap_type(self) -> int:
        return EapType.MD5_CHALLENGE

    def set_identifier(self, identifier: int) -> None:
        self._identifier = identifier

    def receive(self, type_data: bytes) -> Step:
        try:
            challenge, _server_name = _split_value(type_data)
        except MalformedPacket as exc:
            self._failure_reason = f"malformed EAP-MD5 Request: {exc}"
            return Step(None, Decision.FAILURE)
        if self._identifier is None:
            self._failure_reason = "EAP-MD5 Request without an identifier"
            return Step(None, Decision.FAILURE)
        value = _md5_response(self._identifier, self._password, challenge)
        return Step(bytes((len(value),)) + value + self._name, Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason
