"""EAP-TLS (RFC 5216; TLS 1.3 per RFC 9190), EAP type 13, server and peer.

TLS 1.2: after the server's Finished the peer answers with an empty EAP-TLS Response and the
server sends EAP-Success.  With a resumed TLS 1.2 session the peer sends the last Finished and
the server succeeds at once.  TLS 1.3: once the handshake is complete the server sends one
byte of application data, 0x00, the protected success indication (RFC 9190 2.5); the peer
withholds its keys until it has decrypted it, then answers with an empty Response.

MSK || EMSK = 128 bytes of Key_Material (see :mod:`ike.eap_tls.keys`).
"""

from __future__ import annotations

from ike.eap.method import Decision, Step
from ike.eap_tls.driver import TlsPeerDriver, TlsServerDriver
from ike.eap_tls.keys import EAP_TYPE_TLS, key_material, session_id
from ike.eap_tls.tls import TlsPeerConfig, TlsServerConfig, TlsVersion

__all__ = ["SUCCESS_INDICATION", "EapTlsPeer", "EapTlsServer"]

SUCCESS_INDICATION = b"\x00"
"""RFC 9190 2.5: the TLS 1.3 protected success indication (one byte of application data)."""


class _Keys:
    def __init__(self) -> None:
        self._keys: bytes | None = None
        self._session_id: bytes | None = None

    def msk(self) -> bytes | None:
        return self._keys[:64] if self._keys is not None else None

    def emsk(self) -> bytes | None:
        return self._keys[64:] if self._keys is not None else None

    @property
    def session_id(self) -> bytes | None:
        """EAP Session-Id (RFC 5247) once keys exist."""
        return self._session_id

    def _forget_keys(self) -> None:
        self._keys = None
        self._session_id = None


class EapTlsServer(_Keys, TlsServerDriver):
    """EAP-TLS authenticator: ``EapTlsServer(config, identity)``; implements EapServerMethod."""

    method_name = "EAP-TLS"

    def __init__(self, config: TlsServerConfig, identity: bytes) -> None:
        TlsServerDriver.__init__(self, config, identity, version=0)
        _Keys.__init__(self)
        self._awaiting_ack = False

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_TLS

    def _derive(self) -> None:
        self._keys = key_material(self.tls, EAP_TYPE_TLS)
        self._session_id = session_id(self.tls, EAP_TYPE_TLS)

    def _handshake_done(self, app: bytes) -> Step:
        if app:
            return self._fail("EAP-TLS: peer sent application data")
        if self.tls.version >= TlsVersion.TLS1_3:
            self.tls.write_application_data(SUCCESS_INDICATION)
        out = self.tls.data_to_send()
        if not out:
            # TLS 1.2 resumption: the peer sent the last Finished.
            self._derive()
            return self._succeed()
        self._awaiting_ack = True
        return self._frame(out)

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        if app:
            return self._fail("EAP-TLS: peer sent application data")
        if not empty:
            return self._fail("EAP-TLS: expected an empty response after the final flight")
        if not self._awaiting_ack:
            return self._fail("EAP-TLS: unexpected response")
        self._derive()
        return self._succeed()


class EapTlsPeer(_Keys, TlsPeerDriver):
    """EAP-TLS peer: ``EapTlsPeer(config)``; implements EapPeerMethod."""

    method_name = "EAP-TLS"

    def __init__(self, config: TlsPeerConfig) -> None:
        TlsPeerDriver.__init__(self, config, version=0)
        _Keys.__init__(self)

    @property
    def eap_type(self) -> int:
        return EAP_TYPE_TLS

    def _derive(self) -> None:
        self._keys = key_material(self.tls, EAP_TYPE_TLS)
        self._session_id = session_id(self.tls, EAP_TYPE_TLS)

    def _handshake_done(self, app: bytes) -> Step:
        if self.tls.version >= TlsVersion.TLS1_3:
            if app:
                return self._indication(app)
            return self._send()
        if app:
            return self._fail("EAP-TLS: unexpected application data from the server")
        self._derive()
        return self._send(decision=Decision.SUCCESS)

    def _tunnel(self, app: bytes, *, empty: bool) -> Step:
        if self.tls.version < TlsVersion.TLS1_3:
            return self._fail("EAP-TLS: request after the handshake completed")
        if not app:
            # e.g. NewSessionTicket alone; keep waiting for the success indication
            return self._send()
        return self._indication(app)

    def _indication(self, app: bytes) -> Step:
        if app != SUCCESS_INDICATION:
            return self._fail("EAP-TLS 1.3: application data other than the success indication")
        self._derive()
        return self._send(decision=Decision.SUCCESS)
