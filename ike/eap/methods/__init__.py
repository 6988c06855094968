"""The simple EAP methods: MD5-Challenge, MS-CHAPv2 and GTC (server and peer sides)."""

from ike.eap.methods.credentials import (
    NtHashLookup,
    PasswordCheck,
    PasswordLookup,
    StaticPasswords,
    password_check,
)
from ike.eap.methods.gtc import GtcPeerMethod, GtcServerMethod, gtc_server_factory
from ike.eap.methods.md5 import Md5PeerMethod, Md5ServerMethod, md5_server_factory
from ike.eap.methods.mschapv2 import (
    MsChapV2PeerMethod,
    MsChapV2ServerMethod,
    mschapv2_server_factory,
)

__all__ = [
    "GtcPeerMethod",
    "GtcServerMethod",
    "Md5PeerMethod",
    "Md5ServerMethod",
    "MsChapV2PeerMethod",
    "MsChapV2ServerMethod",
    "NtHashLookup",
    "PasswordCheck",
    "PasswordLookup",
    "StaticPasswords",
    "gtc_server_factory",
    "md5_server_factory",
    "mschapv2_server_factory",
    "password_check",
]
