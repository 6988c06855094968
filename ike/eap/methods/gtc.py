"""EAP-GTC, Generic Token Card (RFC 3748 section 5.6).

The Request carries a displayable prompt, the Response the user's input in clear text (here
UTF-8).  The server checks it with a pluggable :data:`PasswordCheck` (a token server, PAM,
or :func:`~ike.eap.methods.credentials.password_check` over a password lookup).  No keys and no
mutual authentication: use inside a tunnel.  The EAP-FAST "RESPONSE=" framing is not used.
"""

from __future__ import annotations

from collections.abc import Callable

from ike.eap.method import Decision, ServerMethodFactory, Step
from ike.eap.methods.credentials import PasswordCheck
from ike.eap.packet import EapType

__all__ = ["GtcPeerMethod", "GtcServerMethod", "gtc_server_factory"]


class GtcServerMethod:
    def __init__(
        self, identity: bytes, check: PasswordCheck, *, prompt: bytes = b"Password: "
    ) -> None:
        self._identity = identity
        self._check = check
        self._prompt = prompt
        self._failure_reason: str | None = None

    @property
    def eap_type(self) -> int:
        return EapType.GTC

    def start(self) -> bytes:
        return self._prompt

    def receive(self, type_data: bytes) -> Step:
        try:
            answer = type_data.decode("utf-8")
        except UnicodeDecodeError:
            self._failure_reason = "EAP-GTC response is not UTF-8"
            return Step(None, Decision.FAILURE)
        if not self._check(self._identity, answer):
            self._failure_reason = f"EAP-GTC response rejected for {self._identity!r}"
            return Step(None, Decision.FAILURE)
        return Step(None, Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason


def gtc_server_factory(
    check: PasswordCheck, *, prompt: bytes = b"Password: "
) -> ServerMethodFactory:
    def factory(identity: bytes) -> GtcServerMethod:
        return GtcServerMethod(identity, check, prompt=prompt)

    return factory


class GtcPeerMethod:
    """Answers the prompt with a fixed password or with ``respond(prompt)``."""

    def __init__(self, password: str | Callable[[bytes], str]) -> None:
        self._password = password

    def __repr__(self) -> str:
        return "GtcPeerMethod(<secret>)"

    @property
    def eap_type(self) -> int:
        return EapType.GTC

    def receive(self, type_data: bytes) -> Step:
        answer = self._password(type_data) if callable(self._password) else self._password
        return Step(answer.encode("utf-8"), Decision.SUCCESS)

    def msk(self) -> bytes | None:
        return None

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return None
