"""EAP-MS-CHAPv2 (draft-kamath-pppext-eap-mschapv2-02), server and peer.

Type-Data = OpCode (1) || MS-CHAPv2-ID (1) || MS-Length (2) || data, where MS-Length is the
length of the Type-Data (the EAP Length minus 5).  OpCodes: Challenge 1, Response 2,
Success 3, Failure 4 (Change-Password 7 is not supported).  The peer's Success and Failure
Responses are the single OpCode byte.

Flow: Challenge (Value-Size 16, challenge, server name) -> Response (Value-Size 49:
peer challenge 16, reserved 8, NT-Response 24, flags 1; user name) -> Success Request
``S=<authenticator response> M=<message>`` -> Success Response -> EAP-Success.  Wrong
credentials end in EAP-Failure, or with ``send_error`` first in a Failure Request
``E=691 R=0 C=<new challenge> V=3 M=<message>`` and the peer's Failure Response.  Retry
(R=1) and Change-Password are not offered.

MSK (64 bytes) = MasterReceiveKey || MasterSendKey || 32 zeros, both ends computing the
authenticator's view ([MS-CHAP] 3.1.5.1); ``master_keys`` gives the two keys for PEAP and
EAP-FAST compound keys.  No EMSK.
"""

from __future__ import annotations

import enum
import hmac
import re
import secrets
import struct

from ike.eap import mschapv2 as ms
from ike.eap.method import Decision, ServerMethodFactory, Step
from ike.eap.methods.credentials import NtHashLookup, PasswordLookup
from ike.eap.packet import EapType, MalformedPacket

__all__ = [
    "MsChapV2OpCode",
    "MsChapV2PeerMethod",
    "MsChapV2ServerMethod",
    "mschapv2_server_factory",
]

ERROR_AUTHENTICATION_FAILURE = 691  # draft-kamath 2.4 / RFC 2759 section 6
_ERROR_NAMES = {
    646: "ERROR_RESTRICTED_LOGON_HOURS",
    647: "ERROR_ACCT_DISABLED",
    648: "ERROR_PASSWD_EXPIRED",
    649: "ERROR_NO_DIALIN_PERMISSION",
    691: "ERROR_AUTHENTICATION_FAILURE",
    709: "ERROR_CHANGING_PASSWORD",
}


class MsChapV2OpCode(enum.IntEnum):
    """draft-kamath-pppext-eap-mschapv2-02 section 2."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


_HDR = struct.Struct("!BBH")
_RESPONSE_VALUE_SIZE = 49


def _encode(opcode: int, ms_id: int, data: bytes) -> bytes:
    return _HDR.pack(opcode, ms_id, 4 + len(data)) + data


def _decode(type_data: bytes, *, strict: bool = True) -> tuple[int, int, bytes]:
    """(opcode, MS-CHAPv2-ID, data) of a four-byte-header message.

    MS-Length must equal the Type-Data length; with ``strict=False`` a wrong MS-Length is
    ignored (wpa_supplicant's default workaround: "some authentication servers use invalid
    ms_len").  The EAP Length has been checked exactly already either way.
    """
    if len(type_data) < 4:
        raise MalformedPacket(f"MS-CHAPv2 header needs 4 bytes, got {len(type_data)}", 5)
    opcode, ms_id, ms_length = _HDR.unpack_from(type_data)
    if strict and ms_length != len(type_data):
        raise MalformedPacket(
            f"MS-Length {ms_length} does not match the {len(type_data)} bytes of Type-Data", 7
        )
    return opcode, ms_id, bytes(type_data[4:])


class _ServerPhase(enum.Enum):
    CHALLENGE_SENT = "challenge-sent"
    SUCCESS_SENT = "success-sent"
    DONE = "done"


class MsChapV2ServerMethod:
    """Authenticator side.

    :param identity: the EAP identity; the password is looked up for it and the Response's
        Name must name the same user (a ``DOMAIN\\`` prefix ignored on both).
    :param lookup: clear-text password lookup; or give ``nt_hash_lookup`` for stored NT hashes.
    :param challenge: the 16-byte authenticator challenge (random when None; EAP-FAST and
        TTLS derive it from the tunnel keys).
    :param peer_challenge: when set, used instead of the Response's Peer-Challenge (EAP-FAST
        anonymous provisioning, where it comes from the tunnel keys too).
    :param send_error: on wrong credentials send the MS-CHAPv2 Failure Request
        (``E=691 R=0 C=... V=3 M=...``) and end with EAP-Failure after the peer's Failure
        Response.  Off by default, as FreeRADIUS's ``send_error`` and strongSwan: Windows 7
        and strongSwan peers never send the Failure Response, so the conversation would
        hang until a timeout; without it the server answers with EAP-Failure at once.
    """

    def __init__(
        self,
        identity: bytes,
        lookup: PasswordLookup | None = None,
        *,
        nt_hash_lookup: NtHashLookup | None = None,
        server_name: bytes = b"nea-gateway",
        challenge: bytes | None = None,
        ms_chap_id: int | None = None,
        success_message: bytes = b"Authentication succeeded",
        peer_challenge: bytes | None = None,
        send_error: bool = False,
    ) -> None:
        if lookup is None and nt_hash_lookup is None:
            raise ValueError("MsChapV2ServerMethod needs lookup or nt_hash_lookup")
        if peer_challenge is not None and len(peer_challenge) != 16:
            raise ValueError("the peer challenge is 16 bytes")
        self._fixed_peer_challenge = peer_challenge
        self._send_error = send_error
        self._identity = identity
        self._lookup = lookup
        self._nt_hash_lookup = nt_hash_lookup
        self._server_name = server_name
        self._challenge = challenge if challenge is not None else secrets.token_bytes(16)
        if len(self._challenge) != 16:
            raise ValueError("the authenticator challenge is 16 bytes")
        self._ms_id = secrets.randbelow(256) if ms_chap_id is None else ms_chap_id
        self._success_message = success_message
        self._phase = _ServerPhase.CHALLENGE_SENT
        self._keys: ms.MasterKeys | None = None
        self._failure_reason: str | None = None

    @property
    def eap_type(self) -> int:
        return EapType.MSCHAPV2

    @property
    def master_keys(self) -> ms.MasterKeys | None:
        """MasterSendKey / MasterReceiveKey once the peer accepted our Success."""
        return self._keys if self._phase is _ServerPhase.DONE else None

    def start(self) -> bytes:
        return _encode(
            MsChapV2OpCode.CHALLENGE,
            self._ms_id,
            bytes((16,)) + self._challenge + self._server_name,
        )

    def receive(self, type_data: bytes) -> Step:
        if self._phase is _ServerPhase.SUCCESS_SENT:
            return self._on_success_ack(type_data)
        if self._phase is _ServerPhase.DONE:
            return self._fail("MS-CHAPv2 message after the method finished")
        try:
            opcode, ms_id, data = _decode(type_data)
        except MalformedPacket as exc:
            return self._fail(f"malformed MS-CHAPv2 Response: {exc}")
        if opcode != MsChapV2OpCode.RESPONSE:
            return self._fail(f"MS-CHAPv2 OpCode {opcode} where a Response was expected")
        if ms_id != self._ms_id:
            return self._fail(f"MS-CHAPv2-ID {ms_id} does not match the Challenge's {self._ms_id}")
        if not data or data[0] != _RESPONSE_VALUE_SIZE or len(data) < 1 + _RESPONSE_VALUE_SIZE:
            return self._fail("MS-CHAPv2 Response value is not 49 bytes")
        value = data[1 : 1 + _RESPONSE_VALUE_SIZE]
        name = data[1 + _RESPONSE_VALUE_SIZE :]
        peer_challenge, nt_response = value[0:16], value[24:48]
        if self._fixed_peer_challenge is not None:
            # EAP-FAST anonymous provisioning (RFC 5422 3.2.3): both challenges come from
            # the TLS key material and the Response's Peer-Challenge field is not used.
            peer_challenge = self._fixed_peer_challenge
        user = ms.strip_domain(name)
        if user != ms.strip_domain(self._identity):
            return self._fail(
                f"MS-CHAPv2 user name {name!r} differs from the EAP identity {self._identity!r}"
            )
        password_hash = self._password_hash()
        if password_hash is None:
            return self._reject(f"unknown user {self._identity!r}")
        expected = ms.generate_nt_response(self._challenge, peer_challenge, user, password_hash)
        if not hmac.compare_digest(expected, nt_response):
            return self._reject(f"MS-CHAPv2 NT-Response wrong for {self._identity!r}")
        self._keys = ms.derive_master_keys(password_hash, nt_response)
        auth = ms.generate_authenticator_response(
            password_hash, nt_response, peer_challenge, self._challenge, user
        )
        self._phase = _ServerPhase.SUCCESS_SENT
        return Step(
            _encode(MsChapV2OpCode.SUCCESS, self._ms_id, auth + b" M=" + self._success_message)
        )

    def _on_success_ack(self, type_data: bytes) -> Step:
        if type_data == bytes((MsChapV2OpCode.SUCCESS,)):
            self._phase = _ServerPhase.DONE
            return Step(None, Decision.SUCCESS)
        if type_data[:1] == bytes((MsChapV2OpCode.FAILURE,)):
            return self._fail("peer rejected the MS-CHAPv2 authenticator response")
        return self._fail("unexpected MS-CHAPv2 message instead of the Success Response")

    def _password_hash(self) -> bytes | None:
        if self._nt_hash_lookup is not None:
            h = self._nt_hash_lookup(self._identity)
            if h is not None and len(h) == 16:
                return h
            if self._lookup is None:
                return None
        assert self._lookup is not None
        password = self._lookup(self._identity)
        return None if password is None else ms.nt_password_hash(password)

    def _reject(self, reason: str) -> Step:
        """Wrong credentials: EAP-Failure, or first a Failure Request E=691 R=0 (draft 2.4)."""
        self._failure_reason = reason
        self._phase = _ServerPhase.DONE
        if not self._send_error:
            return Step(None, Decision.FAILURE)
        message = (
            f"E={ERROR_AUTHENTICATION_FAILURE} R=0 C={secrets.token_bytes(16).hex().upper()} "
            "V=3 M=Authentication failed"
        ).encode("ascii")
        return Step(_encode(MsChapV2OpCode.FAILURE, self._ms_id, message), Decision.FAILURE)

    def _fail(self, reason: str) -> Step:
        self._failure_reason = reason
        self._phase = _ServerPhase.DONE
        self._keys = None
        return Step(None, Decision.FAILURE)

    def msk(self) -> bytes | None:
        keys = self.master_keys
        return None if keys is None else keys.msk

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason


def mschapv2_server_factory(
    lookup: PasswordLookup | None = None,
    *,
    nt_hash_lookup: NtHashLookup | None = None,
    server_name: bytes = b"nea-gateway",
    send_error: bool = False,
) -> ServerMethodFactory:
    """A :data:`ServerMethodFactory` for EAP-MS-CHAPv2 (``send_error``: see the method)."""
    if lookup is None and nt_hash_lookup is None:
        raise ValueError("mschapv2_server_factory needs lookup or nt_hash_lookup")

    def factory(identity: bytes) -> MsChapV2ServerMethod:
        return MsChapV2ServerMethod(
            identity,
            lookup,
            nt_hash_lookup=nt_hash_lookup,
            server_name=server_name,
            send_error=send_error,
        )

    return factory


_FAILURE_FIELDS = re.compile(rb"E=(\d+)")
_MESSAGE_FIELD = re.compile(rb"M=(.*)$", re.S)


class MsChapV2PeerMethod:
    """Peer side: answers the Challenge and checks the authenticator response (mutual auth).

    :param username: the Name sent in the Response (usually the EAP identity).
    :param peer_challenge: fixed 16-byte Peer-Challenge (random when None; EAP-FAST
        provisioning derives it from the tunnel keys).
    :param strict_ms_length: reject a Request whose MS-Length is wrong (default: tolerate it,
        as wpa_supplicant does for broken servers).
    """

    def __init__(
        self,
        username: bytes,
        password: str,
        *,
        peer_challenge: bytes | None = None,
        strict_ms_length: bool = False,
    ) -> None:
        self._username = username
        self._strict = strict_ms_length
        self._password_hash = ms.nt_password_hash(password)
        self._peer_challenge = (
            peer_challenge if peer_challenge is not None else secrets.token_bytes(16)
        )
        if len(self._peer_challenge) != 16:
            raise ValueError("the peer challenge is 16 bytes")
        self._auth_challenge: bytes | None = None
        self._nt_response: bytes | None = None
        self._keys: ms.MasterKeys | None = None
        self._done = False
        self._failure_reason: str | None = None

    def __repr__(self) -> str:
        return f"MsChapV2PeerMethod({self._username!r}, <secret>)"

    @property
    def eap_type(self) -> int:
        return EapType.MSCHAPV2

    @property
    def master_keys(self) -> ms.MasterKeys | None:
        """The authenticator-view keys, once the server's Success was verified."""
        return self._keys if self._done else None

    def receive(self, type_data: bytes) -> Step:
        try:
            opcode, ms_id, data = _decode(type_data, strict=self._strict)
        except MalformedPacket as exc:
            return self._fail(f"malformed MS-CHAPv2 Request: {exc}")
        if opcode == MsChapV2OpCode.CHALLENGE and self._nt_response is None:
            return self._on_challenge(ms_id, data)
        if opcode == MsChapV2OpCode.SUCCESS and self._nt_response is not None:
            return self._on_success(data)
        if opcode == MsChapV2OpCode.FAILURE:
            return self._on_failure(data)
        return self._fail(f"unexpected MS-CHAPv2 OpCode {opcode}")

    def _on_challenge(self, ms_id: int, data: bytes) -> Step:
        if len(data) < 17 or data[0] != 16:
            return self._fail("MS-CHAPv2 Challenge value is not 16 bytes")
        self._auth_challenge = data[1:17]
        user = ms.strip_domain(self._username)
        self._nt_response = ms.generate_nt_response(
            self._auth_challenge, self._peer_challenge, user, self._password_hash
        )
        value = self._peer_challenge + bytes(8) + self._nt_response + b"\x00"
        body = bytes((_RESPONSE_VALUE_SIZE,)) + value + self._username
        return Step(_encode(MsChapV2OpCode.RESPONSE, ms_id, body))

    def _on_success(self, data: bytes) -> Step:
        assert self._auth_challenge is not None and self._nt_response is not None
        if not ms.check_authenticator_response(
            self._password_hash,
            self._nt_response,
            self._peer_challenge,
            self._auth_challenge,
            ms.strip_domain(self._username),
            data[:42],
        ) or (len(data) > 42 and data[42:43] != b" "):
            # The server does not know the password: never accept its EAP-Success.
            return self._fail("MS-CHAPv2 authenticator response from the server is wrong")
        self._keys = ms.derive_master_keys(self._password_hash, self._nt_response)
        self._done = True
        return Step(bytes((MsChapV2OpCode.SUCCESS,)), Decision.SUCCESS)

    def _on_failure(self, data: bytes) -> Step:
        code = _FAILURE_FIELDS.search(data)
        message = _MESSAGE_FIELD.search(data)
        error = int(code.group(1)) if code else None
        text = f"E={error} {_ERROR_NAMES.get(error, 'unknown error')}" if error else "no E="
        if message:
            text += f": {message.group(1).decode('utf-8', 'replace')}"
        self._failure_reason = f"server sent MS-CHAPv2 Failure ({text})"
        return Step(bytes((MsChapV2OpCode.FAILURE,)), Decision.FAILURE)

    def _fail(self, reason: str) -> Step:
        self._failure_reason = reason
        return Step(None, Decision.FAILURE)

    def msk(self) -> bytes | None:
        keys = self.master_keys
        return None if keys is None else keys.msk

    def emsk(self) -> bytes | None:
        return None

    @property
    def failure_reason(self) -> str | None:
        return self._failure_reason
