"""The RADIUS front-end's TOML configuration.

::

    [radius]
    listen = "0.0.0.0"           # address to bind
    auth_port = 1812             # 0 = any free port (printed at start)
    acct_port = 1813
    conversation_timeout = 60    # seconds an idle EAP conversation is kept
    session_timeout = 3600       # Session-Timeout in Access-Accept (optional)

    [[radius.clients]]           # NASes: address or prefix, shared secret
    address = "192.0.2.0/24"
    secret = "testing123"
    name = "lab-switches"
    # require_message_authenticator = true  (Blast-RADIUS; only a legacy NAS turns it off)

    [eap]
    methods = ["tls", "peap", "ttls", "mschapv2", "md5", "gtc"]   # proposed in this order
    inner_methods = ["mschapv2", "md5", "gtc"]  # inner EAP of TTLS / PEAP (the default)
    peap_require_cryptobinding = true           # refuse PEAP peers without Crypto-Binding
    fast_a_id = "nea-gateway"                   # EAP-FAST Authority-ID (PACs are bound to it)
    fast_provisioning = 3                       # 1 anonymous, 2 authenticated, 3 both
    fast_pac_lifetime = 7776000                 # seconds (90 days)
    fast_pac_refresh = 604800                   # renew PACs with less left (lifetime/10)
    fast_pac_keys = ["<64 hex digits>"]         # PAC-Opaque keys, current first (else random)

    [users]                      # identity = password (MD5, MS-CHAPv2, GTC, inner methods)
    bob = "hello"

    [tls]                        # server certificate for EAP-TLS, TTLS, PEAP
    cert = "server.pem"          # chain, leaf first; paths relative to this file
    key = "server.key"
    ca = ["ca.pem"]              # trust anchors for client certificates
    min_version = "1.2"
    max_version = "1.3"
    fragment_size = 1024

    [vlans]                      # RFC 3580 VLAN assignment by NEA verdict
    allow = "10"
    allow_filter_id = "employees"
    isolate = "99"
    isolate_filter_id = "quarantine"

    [dynauth]                    # RFC 5176 CoA / Disconnect to the NASes (off without it)
    port = 3799                  # the NASes' Dynamic Authorization port
    listen = "0.0.0.0"           # local address the requests leave from
    timeout = 2.0                # first retransmission after (s), then doubling
    tries = 3                    # transmissions before giving up
    fallback_disconnect = true   # Disconnect-Request when a CoA to isolate fails
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radius import AuthorizationPolicy, LocalProtocolError, RadiusClient, VlanAssignment

__all__ = [
    "KNOWN_METHODS",
    "ConfigError",
    "DynauthSettings",
    "RadiusConfig",
    "TlsSettings",
    "load_config",
    "parse_config",
]

KNOWN_METHODS = ("tls", "peap", "ttls", "fast", "mschapv2", "md5", "gtc")
INNER_METHODS = ("mschapv2", "md5", "gtc")


class ConfigError(ValueError):
    """The configuration file is wrong; the message says where."""


@dataclass(frozen=True)
class TlsSettings:
    cert: Path
    key: Path
    ca: tuple[Path, ...] = ()
    min_version: str = "1.2"
    max_version: str = "1.3"
    fragment_size: int = 1024
    bind_identity: bool = True


@dataclass(frozen=True)
class DynauthSettings:
    """``[dynauth]``: Dynamic Authorization (RFC 5176) towards the NASes."""

    port: int = 3799
    listen: str = "0.0.0.0"  # noqa: S104 - the source address; config narrows it
    timeout: float = 2.0
    tries: int = 3
    fallback_disconnect: bool = True


@dataclass(frozen=True)
class RadiusConfig:
    clients: tuple[RadiusClient, ...]
    methods: tuple[str, ...]
    inner_methods: tuple[str, ...] = INNER_METHODS
    peap_require_cryptobinding: bool = True
    fast_a_id: str = "nea-gateway"
    fast_provisioning: int = 3
    fast_pac_lifetime: int = 90 * 86400
    fast_pac_refresh: int | None = None
    fast_pac_keys: tuple[bytes, ...] = field(default=(), repr=False)
    users: dict[str, str] = field(default_factory=dict, repr=False)
    tls: TlsSettings | None = None
    policy: AuthorizationPolicy = field(default_factory=AuthorizationPolicy)
    listen: str = "0.0.0.0"  # noqa: S104 - a RADIUS server serves the network; config narrows it
    auth_port: int = 1812
    acct_port: int = 1813
    conversation_timeout: float = 60.0
    dynauth: DynauthSettings | None = None


def _dynauth(data: dict[str, Any]) -> DynauthSettings | None:
    if "dynauth" not in data:
        return None
    table = _table(data, "dynauth")
    port = _typed(table, "port", int, 3799, "dynauth")
    if not 1 <= port <= 65535:
        raise ConfigError("dynauth.port must be 1..65535")
    timeout = _typed(table, "timeout", (int, float), 2.0, "dynauth")
    if not 0 < timeout <= 60:
        raise ConfigError("dynauth.timeout must be 0 < seconds <= 60")
    tries = _typed(table, "tries", int, 3, "dynauth")
    if not 1 <= tries <= 10:
        raise ConfigError("dynauth.tries must be 1..10")
    return DynauthSettings(
        port=port,
        listen=str(_typed(table, "listen", str, "0.0.0.0", "dynauth")),  # noqa: S104
        timeout=float(timeout),
        tries=tries,
        fallback_disconnect=bool(_typed(table, "fallback_disconnect", bool, True, "dynauth")),
    )


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _typed(
    table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str
) -> Any:
    value = table.get(key, default)
    if value is not None and not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "number"
        raise ConfigError(f"{where}.{key} must be a {name}")
    return value


def _port(table: dict[str, Any], key: str, default: int) -> int:
    value = _typed(table, key, int, default, "radius")
    if not 0 <= value <= 65535:
        raise ConfigError(f"radius.{key} must be 0..65535")
    return int(value)


def parse_config(data: dict[str, Any], base: Path) -> RadiusConfig:
    radius = _table(data, "radius")
    clients = []
    raw_clients = radius.get("clients", [])
    if not isinstance(raw_clients, list) or not raw_clients:
        raise ConfigError("[[radius.clients]]: at least one client (address, secret) is needed")
    for index, entry in enumerate(raw_clients):
        where = f"radius.clients[{index}]"
        if not isinstance(entry, dict) or "address" not in entry or "secret" not in entry:
            raise ConfigError(f"{where} needs address and secret")
        try:
            clients.append(
                RadiusClient.from_prefix(
                    str(entry["address"]),
                    str(entry["secret"]),
                    str(entry.get("name", "")),
                    require_message_authenticator=bool(
                        entry.get("require_message_authenticator", True)
                    ),
                )
            )
        except (ValueError, LocalProtocolError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    eap = _table(data, "eap")
    methods = eap.get("methods", ["md5"])
    if not isinstance(methods, list) or not methods:
        raise ConfigError("eap.methods must be a non-empty list")
    for method in methods:
        if method not in KNOWN_METHODS:
            raise ConfigError(f"eap.methods: unknown method {method!r} (known: {KNOWN_METHODS})")

    inner_methods = eap.get("inner_methods", list(INNER_METHODS))
    if not isinstance(inner_methods, list):
        raise ConfigError("eap.inner_methods must be a list")
    for method in inner_methods:
        if method not in INNER_METHODS:
            raise ConfigError(
                f"eap.inner_methods: {method!r} cannot run inside a tunnel (use {INNER_METHODS})"
            )

    users = _table(data, "users")
    for name, password in users.items():
        if not isinstance(password, str):
            raise ConfigError(f"users.{name} must be a string password")

    tls = None
    tls_table = data.get("tls")
    if tls_table is not None:
        if not isinstance(tls_table, dict) or "cert" not in tls_table or "key" not in tls_table:
            raise ConfigError("[tls] needs cert and key")
        ca = tls_table.get("ca", [])
        if isinstance(ca, str):
            ca = [ca]
        tls = TlsSettings(
            cert=base / str(tls_table["cert"]),
            key=base / str(tls_table["key"]),
            ca=tuple(base / str(p) for p in ca),
            min_version=str(tls_table.get("min_version", "1.2")),
            max_version=str(tls_table.get("max_version", "1.3")),
            fragment_size=int(tls_table.get("fragment_size", 1024)),
            bind_identity=bool(tls_table.get("bind_identity", True)),
        )
        # RFC 3579 3.1: the EAP packet must fit a 4096-octet RADIUS packet with its State,
        # Message-Authenticator and the EAP-Message headers (one per 253 octets).
        if not 256 <= tls.fragment_size <= 3000:
            raise ConfigError("tls.fragment_size must be 256..3000 (RADIUS packets are 4 KiB)")
        for version in (tls.min_version, tls.max_version):
            if version not in ("1.2", "1.3"):
                raise ConfigError(f"tls: version {version!r} is not 1.2 or 1.3")
    fast_provisioning = eap.get("fast_provisioning", 3)
    if fast_provisioning not in (0, 1, 2, 3):
        raise ConfigError("eap.fast_provisioning must be 0, 1, 2 or 3")
    fast_pac_lifetime = eap.get("fast_pac_lifetime", 90 * 86400)
    if not isinstance(fast_pac_lifetime, int) or fast_pac_lifetime <= 0:
        raise ConfigError("eap.fast_pac_lifetime must be a positive number of seconds")
    fast_pac_refresh = eap.get("fast_pac_refresh")
    if fast_pac_refresh is not None and (
        not isinstance(fast_pac_refresh, int) or not 0 <= fast_pac_refresh < fast_pac_lifetime
    ):
        raise ConfigError("eap.fast_pac_refresh must be 0 .. fast_pac_lifetime - 1 seconds")
    raw_keys = eap.get("fast_pac_keys", [])
    if not isinstance(raw_keys, list):
        raise ConfigError("eap.fast_pac_keys must be a list of 64-hex-digit keys")
    try:
        fast_pac_keys = tuple(bytes.fromhex(str(k)) for k in raw_keys)
    except ValueError:
        raise ConfigError("eap.fast_pac_keys: not hexadecimal") from None
    if any(len(k) != 32 for k in fast_pac_keys):
        raise ConfigError("eap.fast_pac_keys: each key is 32 bytes (64 hex digits)")
    if tls is None and any(m in ("tls", "peap", "ttls", "fast") for m in methods):
        raise ConfigError("eap.methods lists a TLS-based method but [tls] is missing")

    vlans = _table(data, "vlans")
    allow = VlanAssignment(
        _typed(vlans, "allow", str, None, "vlans"),
        _typed(vlans, "allow_filter_id", str, None, "vlans"),
    )
    isolate_vlan = _typed(vlans, "isolate", str, None, "vlans")
    isolate_filter = _typed(vlans, "isolate_filter_id", str, None, "vlans")
    isolate = (
        VlanAssignment(isolate_vlan, isolate_filter)
        if isolate_vlan is not None or isolate_filter is not None
        else None
    )
    session_timeout = _typed(radius, "session_timeout", int, None, "radius")
    return RadiusConfig(
        clients=tuple(clients),
        methods=tuple(methods),
        inner_methods=tuple(inner_methods),
        peap_require_cryptobinding=bool(eap.get("peap_require_cryptobinding", True)),
        fast_a_id=str(eap.get("fast_a_id", "nea-gateway")),
        fast_provisioning=int(fast_provisioning),
        fast_pac_lifetime=int(fast_pac_lifetime),
        fast_pac_refresh=fast_pac_refresh,
        fast_pac_keys=fast_pac_keys,
        users=dict(users),
        tls=tls,
        policy=AuthorizationPolicy(session_timeout, allow, isolate),
        listen=str(radius.get("listen", "0.0.0.0")),  # noqa: S104
        auth_port=_port(radius, "auth_port", 1812),
        acct_port=_port(radius, "acct_port", 1813),
        conversation_timeout=float(radius.get("conversation_timeout", 60.0)),
        dynauth=_dynauth(data),
    )


def load_config(path: Path | str) -> RadiusConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, path.parent)
