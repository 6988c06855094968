"""TLS over EAP (pyOpenSSL memory BIOs, L/M/S framing) and EAP-TLS (RFC 5216, RFC 9190).

Public API:

* :class:`TlsServerConfig`, :class:`TlsPeerConfig`, :class:`TlsSessionCache`,
  :class:`TlsVersion` - configuration (``ike.eap_tls.tls``);
* :class:`EapTlsServer` (``EapTlsServer(config, identity)``) and :class:`EapTlsPeer`
  (``EapTlsPeer(config)``) - EAP type 13 (``ike.eap_tls.method``);
* :class:`TlsServerDriver`, :class:`TlsPeerDriver` - the shared engine the tunnel methods
  build on (``ike.eap_tls.driver``); :class:`Framing` (``ike.eap_tls.framing``);
* :func:`key_material`, :func:`session_id` (``ike.eap_tls.keys``); :func:`tls12_prf`
  (``ike.eap_tls.prf``);
* errors: :class:`TlsEapError` (root), :class:`FramingError`, :class:`ReassemblyLimitError`,
  :class:`TlsFailure`.
"""

from ike.eap_tls.driver import TlsPeerDriver, TlsServerDriver
from ike.eap_tls.errors import (
    AlertDescription,
    FramingError,
    ReassemblyLimitError,
    TlsEapError,
    TlsFailure,
)
from ike.eap_tls.framing import Framing
from ike.eap_tls.keys import key_material, session_id
from ike.eap_tls.method import EapTlsPeer, EapTlsServer
from ike.eap_tls.prf import tls10_prf, tls12_prf
from ike.eap_tls.tls import (
    TlsPeerConfig,
    TlsServerConfig,
    TlsSession,
    TlsSessionCache,
    TlsVersion,
)

__all__ = [
    "AlertDescription",
    "EapTlsPeer",
    "EapTlsServer",
    "Framing",
    "FramingError",
    "ReassemblyLimitError",
    "TlsEapError",
    "TlsFailure",
    "TlsPeerConfig",
    "TlsPeerDriver",
    "TlsServerConfig",
    "TlsServerDriver",
    "TlsSession",
    "TlsSessionCache",
    "TlsVersion",
    "key_material",
    "session_id",
    "tls10_prf",
    "tls12_prf",
]
