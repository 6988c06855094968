"""The ``nea-gateway`` configuration: TOML in swanctl.conf's vocabulary.

:func:`load_config` reads a file, :func:`parse_config` a parsed document, and
:func:`default_config` gives the embedded defaults ``nea-gateway run`` uses without ``-c``.
Every problem raises :class:`ConfigError` naming the file, the key and the reason; unknown keys
are errors.  The reference for every key is ``docs/config.md``.

This module only checks and types the values (proposals, traffic selectors, identities and
addresses are parsed here so that a typo is reported with its key); reading certificates and
keys and building the engines is :mod:`gateway.daemon.compose`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ike.config import EspProposal, Identity, IkeProposal
from ike.errors import IkeError
from ike.payloads import TrafficSelector

__all__ = [
    "AUTH_METHODS",
    "DATAPLANES",
    "LOG_SUBSYSTEMS",
    "SQL_POOL_KEYS",
    "AuthoritySpec",
    "ChildSpec",
    "ConfigError",
    "ConnectionSpec",
    "ControlSpec",
    "GatewayConfig",
    "IkeSpec",
    "LocalSpec",
    "LogSpec",
    "NeaSpec",
    "PostureSpec",
    "PtTlsSpec",
    "RadiusClientSpec",
    "RadiusSpec",
    "RemoteSpec",
    "SecretSpec",
    "SqlPoolSpec",
    "default_config",
    "default_socket_path",
    "load_config",
    "memory_pools",
    "parse_config",
    "sql_pools",
]

AUTH_METHODS = (
    "pubkey",
    "psk",
    "eap-tls",
    "eap-ttls",
    "eap-peap",
    "eap-fast",
    "eap-md5",
    "eap-mschapv2",
    "eap-gtc",
)
"""swanctl ``auth`` values the gateway knows (``local`` takes pubkey and psk only)."""

TUNNEL_METHODS = ("eap-ttls", "eap-peap", "eap-fast")
INNER_METHODS = ("md5", "mschapv2", "gtc")
DATAPLANES = ("auto", "xfrm", "userspace", "none")
VERDICTS = ("allow", "isolate")
START_ACTIONS = ("none", "start")
POSTURE_METHODS = ("pt-eap", "eap-tnc")
VALIDATORS = ("test", "ports", "os", "swima")
RECOMMENDATION_POLICIES = ("default", "any", "all")
PT_TLS_CLIENT_AUTH = ("none", "tls", "sasl", "tls-or-sasl", "tls-and-sasl")
"""strongSwan's PT-TLS client authentication modes (``[pt_tls] client_auth``)."""

LOG_SUBSYSTEMS = ("default", "dmn", "ike", "chd", "cfg", "enc", "net", "knl", "tls", "tnc", "imv")
"""strongSwan's subsystem names the ``[log]`` section takes (see docs/config.md)."""

LOG_LEVELS = {"-1": -1, "0": 0, "1": 1, "2": 2, "3": 3, "4": 4}
LOG_LEVEL_NAMES = {"silent": -1, "audit": 0, "control": 1, "controlmore": 2, "raw": 3, "private": 4}
LOG_LEVEL_NAMES |= {"error": 0, "warning": 0, "info": 1, "debug": 2}

DEFAULT_DB_URL = "sqlite:///var/nea-evidence.db"
UNPRIVILEGED_PORTS = (10500, 14500)


class ConfigError(ValueError):
    """A configuration problem: ``file: key: reason``."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}" if key else f"{source}: {reason}")


# --------------------------------------------------------------------------------------------
# Typed configuration


@dataclass(frozen=True)
class IkeSpec:
    listen: str = "127.0.0.1"
    port: int = 500
    port_nat_t: int = 4500
    cookie_threshold: int = 10
    half_open_timeout: float = 30.0
    auth_timeout: float = 120.0
    retransmit_timeout: float = 4.0
    retransmit_base: float = 1.8
    retransmit_tries: int = 5
    fragment_size: int = 1280
    reauth_grace: float = 60.0
    """Seconds an IKE_SA asked to re-authenticate (``reassess``) may live on."""


@dataclass(frozen=True)
class ControlSpec:
    socket: Path


@dataclass(frozen=True)
class LocalSpec:
    auth: str = "pubkey"
    id: str | None = None
    certs: tuple[Path, ...] = ()
    eap_id: str | None = None


@dataclass(frozen=True)
class RemoteSpec:
    auth: str = "pubkey"
    id: str | None = None
    certs: tuple[Path, ...] = ()
    cacerts: tuple[Path, ...] = ()
    eap_id: str | None = None
    eap_inner: tuple[str, ...] = INNER_METHODS
    fast_a_id: str = "nea-gateway"
    fast_provisioning: int = 3
    fast_pac_lifetime: float = 90 * 86400.0


@dataclass(frozen=True)
class ChildSpec:
    name: str
    local_ts: tuple[str, ...] = ()
    remote_ts: tuple[str, ...] = ()
    esp_proposals: tuple[str, ...] = ()
    start_action: str = "none"
    verdict: tuple[str, ...] = VERDICTS
    pools: tuple[str, ...] | None = None
    rekey_time: float | None = None


@dataclass(frozen=True)
class PostureSpec:
    assess: bool = False
    method: str = "pt-eap"


@dataclass(frozen=True)
class ConnectionSpec:
    name: str
    local: LocalSpec
    remote: RemoteSpec
    local_addrs: tuple[str, ...] = ()
    remote_addrs: tuple[str, ...] = ()
    proposals: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    children: tuple[ChildSpec, ...] = ()
    posture: PostureSpec = field(default_factory=PostureSpec)
    fragmentation: bool = True
    send_certreq: bool = True
    vips: tuple[str, ...] = ()
    rekey_time: float | None = None
    reauth_time: float | None = None
    dpd_delay: float | None = None


@dataclass(frozen=True)
class SecretSpec:
    name: str
    kind: str  # "eap", "ike", "private" or "pac"
    ids: tuple[str, ...] = ()
    secret: bytes | None = field(default=None, repr=False)
    file: Path | None = None
    previous: tuple[bytes, ...] = field(default=(), repr=False)
    """``pac``: the retired PAC-Opaque keys that still open PACs (current one in ``secret``)."""


@dataclass(frozen=True)
class AuthoritySpec:
    name: str
    cacert: Path
    crl: Path | None = None


@dataclass(frozen=True)
class NeaSpec:
    validators: tuple[str, ...] = VALIDATORS
    policy: Path | None = None
    database: str | None = DEFAULT_DB_URL
    recommendation_policy: str = "default"


@dataclass(frozen=True)
class PtTlsSpec:
    """``[pt_tls]``: the daemon's own PT-TLS (RFC 6876) listener, a PDP for posture
    re-assessments over TLS (SASL PLAIN users are the ``[secrets.eap-*]`` entries)."""

    listen: str = "127.0.0.1"
    port: int = 271
    client_auth: str = "tls-or-sasl"
    certs: tuple[Path, ...] = ()
    """Server certificate (chain); empty: the first connection's ``local.certs``."""
    cacerts: tuple[Path, ...] = ()
    """CAs for client certificates, besides ``[authorities]``."""
    referral: bool = False
    """Advertise this listener as PDP (PB-PDP-Referral) in IKEv2 posture assessments."""
    referral_name: str | None = None
    """The FQDN (or address) put in the referral; None: ``listen``."""
    idle_timeout: float = 300.0
    max_sasl_attempts: int = 1
    move_grace: float = 2.0
    """Seconds the old verdict's children live on after the new ones are up (in-flight
    PT-TLS messages of the session that decided the move still reach the endpoint)."""


@dataclass(frozen=True)
class RadiusClientSpec:
    address: str
    secret: str = field(repr=False)
    name: str = ""
    require_message_authenticator: bool = True


@dataclass(frozen=True)
class RadiusSpec:
    clients: tuple[RadiusClientSpec, ...]
    listen: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    methods: tuple[str, ...] = ("md5",)
    inner_methods: tuple[str, ...] = INNER_METHODS
    certs: tuple[Path, ...] = ()
    cacerts: tuple[Path, ...] = ()
    posture: bool = False
    session_timeout: int | None = None
    conversation_timeout: float = 60.0
    vlans: Mapping[str, str] = field(default_factory=dict)
    dynauth: Mapping[str, Any] | None = None
    """``[radius.dynauth]``: RFC 5176 CoA / Disconnect to the NASes (checked by
    :func:`gateway.radius.parse_config`: port, timeout, tries, listen, fallback_disconnect)."""
    accounting: bool = True
    """Record RADIUS accounting (into the evidence database when there is one)."""


@dataclass(frozen=True)
class LogSpec:
    levels: Mapping[str, int] = field(default_factory=lambda: {"default": 1})
    file: Path | None = None


@dataclass(frozen=True)
class GatewayConfig:
    source: str
    ike: IkeSpec
    control: ControlSpec
    connections: tuple[ConnectionSpec, ...] = ()
    pools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secrets: tuple[SecretSpec, ...] = ()
    authorities: tuple[AuthoritySpec, ...] = ()
    nea: NeaSpec | None = field(default_factory=NeaSpec)
    radius: RadiusSpec | None = None
    pt_tls: PtTlsSpec | None = None
    dataplane: str = "auto"
    log: LogSpec = field(default_factory=LogSpec)

    def connection(self, name: str) -> ConnectionSpec | None:
        return next((c for c in self.connections if c.name == name), None)


# --------------------------------------------------------------------------------------------
# Helpers


class _Ctx:
    """Carries the file name and the base directory for relative paths."""

    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.source, key, reason)

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, not {_kind(value)}")
        return value

    def keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(
                    _join(where, key), f"unknown key (expected one of: {', '.join(allowed)})"
                )

    def string(self, table: Mapping[str, Any], key: str, where: str, default: Any = None) -> Any:
        value = table.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(_join(where, key), f"must be a string, not {_kind(value)}")
        return value

    def strings(
        self, table: Mapping[str, Any], key: str, where: str, default: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """A list of strings, or one string with comma-separated items (swanctl style)."""
        value = table.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(v.strip() for v in value)
        raise self.error(_join(where, key), "must be a string or a list of strings")

    def boolean(self, table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if isinstance(value, str) and value in ("yes", "no"):
            return value == "yes"
        if not isinstance(value, bool):
            raise self.error(_join(where, key), f"must be true or false, not {_kind(value)}")
        return value

    def integer(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        default: int | None,
        lo: int = 0,
        hi: int | None = None,
    ) -> Any:
        value = table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(_join(where, key), f"must be an integer, not {_kind(value)}")
        if value < lo or (hi is not None and value > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.error(_join(where, key), f"must be {rng}, not {value}")
        return value

    def seconds(self, table: Mapping[str, Any], key: str, where: str, default: float | None) -> Any:
        """A number of seconds, or a swanctl duration string (``30s``, ``10m``, ``1h``, ``1d``)."""
        value = table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool):
            raise self.error(_join(where, key), "must be a number of seconds")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            text = value.strip()
            mult = units.get(text[-1:], None)
            digits = text[:-1] if mult is not None else text
            try:
                number = float(digits) * (mult or 1)
            except ValueError:
                raise self.error(
                    _join(where, key), f"{value!r} is not a duration (e.g. 30, 30s, 10m, 1h)"
                ) from None
        else:
            raise self.error(_join(where, key), f"must be a number of seconds, not {_kind(value)}")
        if number <= 0:
            raise self.error(_join(where, key), "must be positive")
        return number

    def choice(
        self, table: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...], default: str
    ) -> str:
        value = self.string(table, key, where, default)
        assert isinstance(value, str)
        if value not in choices:
            raise self.error(_join(where, key), f"{value!r} is not one of: {', '.join(choices)}")
        return value

    def path(self, text: str) -> Path:
        p = Path(os.path.expanduser(text))
        return p if p.is_absolute() else self.base / p

    def paths(self, table: Mapping[str, Any], key: str, where: str) -> tuple[Path, ...]:
        return tuple(self.path(p) for p in self.strings(table, key, where))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def random_secret(nbytes: int = 18) -> str:
    """A random secret for generated configurations (``init``, the demo).

    URL-safe base64 characters only, so it needs no quoting in TOML or in clients' configs;
    never starting with ``0x``/``0s`` (those prefixes make swanctl, and this parser, read the
    rest as hex/base64, which a random text is not) nor with ``-`` (on a command line,
    ``--password -x...`` reads as an option).
    """
    while True:
        text = secrets.token_urlsafe(nbytes)
        if not text.startswith(("0x", "0s", "-")):
            return text


def _secret(ctx: _Ctx, text: str, key: str) -> bytes:
    """swanctl secrets: plain text, ``0x`` hex or ``0s`` base64."""
    try:
        if text.startswith("0x"):
            return binascii.unhexlify(text[2:])
        if text.startswith("0s"):
            return base64.b64decode(text[2:], validate=True)
    except (binascii.Error, ValueError):
        raise ctx.error(key, "secret with 0x/0s prefix is not valid hex/base64") from None
    return text.encode()


def _address(ctx: _Ctx, text: str, key: str, *, any_ok: bool = True) -> str:
    if any_ok and text in ("%any", "%any4", "%any6", "0.0.0.0", "::"):  # noqa: S104
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ctx.error(key, f"{text!r} is not an IP address") from None
    return text


# --------------------------------------------------------------------------------------------
# Sections

_TOP = (
    "ike",
    "control",
    "connections",
    "pools",
    "secrets",
    "authorities",
    "nea",
    "radius",
    "pt_tls",
    "dataplane",
    "log",
)


def _parse_ike(ctx: _Ctx, data: Mapping[str, Any], defaults: IkeSpec) -> IkeSpec:
    w = "ike"
    t = ctx.table(data, w)
    ctx.keys(
        t,
        (
            "listen",
            "port",
            "port_nat_t",
            "cookie_threshold",
            "half_open_timeout",
            "auth_timeout",
            "retransmit_timeout",
            "retransmit_base",
            "retransmit_tries",
            "fragment_size",
            "reauth_grace",
        ),
        w,
    )
    listen = _address(ctx, ctx.string(t, "listen", w, defaults.listen), "ike.listen")
    port = ctx.integer(t, "port", w, defaults.port, 1, 65535)
    natt = ctx.integer(t, "port_nat_t", w, defaults.port_nat_t, 1, 65535)
    if port == natt:
        raise ctx.error("ike.port_nat_t", "must differ from ike.port")
    base = t.get("retransmit_base", defaults.retransmit_base)
    if isinstance(base, bool) or not isinstance(base, int | float) or base < 1:
        raise ctx.error("ike.retransmit_base", "must be a number >= 1")
    return IkeSpec(
        listen=listen,
        port=port,
        port_nat_t=natt,
        cookie_threshold=ctx.integer(t, "cookie_threshold", w, defaults.cookie_threshold, 0),
        half_open_timeout=ctx.seconds(t, "half_open_timeout", w, defaults.half_open_timeout),
        auth_timeout=ctx.seconds(t, "auth_timeout", w, defaults.auth_timeout),
        retransmit_timeout=ctx.seconds(t, "retransmit_timeout", w, defaults.retransmit_timeout),
        retransmit_base=float(base),
        retransmit_tries=ctx.integer(t, "retransmit_tries", w, defaults.retransmit_tries, 0, 20),
        fragment_size=ctx.integer(t, "fragment_size", w, defaults.fragment_size, 576, 65000),
        reauth_grace=ctx.seconds(t, "reauth_grace", w, defaults.reauth_grace),
    )


def _parse_local(ctx: _Ctx, data: Any, where: str) -> LocalSpec:
    t = ctx.table(data, where)
    ctx.keys(t, ("auth", "id", "certs", "eap_id"), where)
    auth = ctx.choice(t, "auth", where, ("pubkey", "psk"), "pubkey")
    ident = ctx.string(t, "id", where)
    if ident is not None:
        _identity(ctx, ident, f"{where}.id")
    certs = ctx.paths(t, "certs", where)
    if auth == "pubkey" and not certs:
        raise ctx.error(f"{where}.certs", "auth = pubkey needs a certificate")
    return LocalSpec(auth, ident, certs, ctx.string(t, "eap_id", where))


def _parse_remote(ctx: _Ctx, data: Any, where: str) -> RemoteSpec:
    t = ctx.table(data, where)
    fast_keys = ("fast_a_id", "fast_provisioning", "fast_pac_lifetime")
    ctx.keys(t, ("auth", "id", "certs", "cacerts", "eap_id", "eap_inner", *fast_keys), where)
    auth = ctx.choice(t, "auth", where, AUTH_METHODS, "pubkey")
    for k in fast_keys:
        if k in t and auth != "eap-fast":
            raise ctx.error(f"{where}.{k}", f"only with auth = eap-fast, not {auth}")
    a_id = ctx.string(t, "fast_a_id", where, "nea-gateway")
    if not 1 <= len(a_id.encode()) <= 0xFFFF:
        raise ctx.error(f"{where}.fast_a_id", "must be 1..65535 bytes")
    ident = ctx.string(t, "id", where)
    if ident is not None and ident != "%any":
        _identity(ctx, ident, f"{where}.id")
    inner = ctx.strings(t, "eap_inner", where, INNER_METHODS)
    for m in inner:
        if m not in INNER_METHODS:
            raise ctx.error(
                f"{where}.eap_inner", f"{m!r} is not one of: {', '.join(INNER_METHODS)}"
            )
    if "eap_inner" in t and auth not in TUNNEL_METHODS:
        raise ctx.error(f"{where}.eap_inner", f"only for tunnel methods, not auth = {auth}")
    return RemoteSpec(
        auth=auth,
        id=None if ident == "%any" else ident,
        certs=ctx.paths(t, "certs", where),
        cacerts=ctx.paths(t, "cacerts", where),
        eap_id=ctx.string(t, "eap_id", where),
        eap_inner=inner,
        fast_a_id=a_id,
        fast_provisioning=ctx.integer(t, "fast_provisioning", where, 3, 0, 3),
        fast_pac_lifetime=ctx.seconds(t, "fast_pac_lifetime", where, 90 * 86400.0),
    )


def _identity(ctx: _Ctx, text: str, key: str) -> Identity:
    try:
        return Identity.parse(text)
    except (IkeError, ValueError) as exc:
        raise ctx.error(key, f"{text!r} is not an identity: {exc}") from None


def _parse_child(
    ctx: _Ctx, name: str, data: Any, where: str, pools: Mapping[str, Any]
) -> ChildSpec:
    t = ctx.table(data, where)
    ctx.keys(
        t,
        (
            "local_ts",
            "remote_ts",
            "esp_proposals",
            "start_action",
            "mode",
            "verdict",
            "pools",
            "rekey_time",
        ),
        where,
    )
    out_ts: list[tuple[str, ...]] = []
    for key in ("local_ts", "remote_ts"):
        values = ctx.strings(t, key, where)
        for v in values:
            if v == "dynamic":
                continue
            try:
                TrafficSelector.from_network(v)
            except (ValueError, IkeError) as exc:
                raise ctx.error(f"{where}.{key}", f"{v!r} is not a subnet: {exc}") from None
        out_ts.append(tuple(v for v in values if v != "dynamic"))
    esp = ctx.strings(t, "esp_proposals", where)
    for p in esp:
        if p == "default":
            continue
        try:
            EspProposal.parse(p)
        except (IkeError, ValueError) as exc:
            raise ctx.error(f"{where}.esp_proposals", str(exc)) from None
    mode = ctx.choice(t, "mode", where, ("tunnel",), "tunnel")
    del mode
    verdict = ctx.strings(t, "verdict", where, VERDICTS)
    for v in verdict:
        if v not in VERDICTS:
            raise ctx.error(f"{where}.verdict", f"{v!r} is not one of: allow, isolate")
    if not verdict:
        raise ctx.error(f"{where}.verdict", "must name allow, isolate or both")
    child_pools: tuple[str, ...] | None = None
    if "pools" in t:
        child_pools = ctx.strings(t, "pools", where)
        for p in child_pools:
            if p not in pools:
                raise ctx.error(f"{where}.pools", f"no [pools.{p}]")
    return ChildSpec(
        name=name,
        local_ts=out_ts[0],
        remote_ts=out_ts[1],
        esp_proposals=tuple(p for p in esp if p != "default"),
        start_action=ctx.choice(t, "start_action", where, START_ACTIONS, "none"),
        verdict=verdict,
        pools=child_pools,
        rekey_time=ctx.seconds(t, "rekey_time", where, None),
    )


def _parse_connection(ctx: _Ctx, name: str, data: Any, pools: Mapping[str, Any]) -> ConnectionSpec:
    w = f"connections.{name}"
    t = ctx.table(data, w)
    ctx.keys(
        t,
        (
            "local_addrs",
            "remote_addrs",
            "proposals",
            "pools",
            "local",
            "remote",
            "children",
            "posture",
            "fragmentation",
            "send_certreq",
            "version",
            "vips",
            "rekey_time",
            "reauth_time",
            "dpd_delay",
        ),
        w,
    )
    version = ctx.integer(t, "version", w, 2, 0, 2)
    if version == 1:
        raise ctx.error(f"{w}.version", "IKEv1 is not supported (use 0 or 2)")
    local_addrs = tuple(
        _address(ctx, a, f"{w}.local_addrs") for a in ctx.strings(t, "local_addrs", w)
    )
    remote_addrs = tuple(
        _address(ctx, a, f"{w}.remote_addrs") for a in ctx.strings(t, "remote_addrs", w)
    )
    proposals = ctx.strings(t, "proposals", w)
    for p in proposals:
        if p == "default":
            continue
        try:
            IkeProposal.parse(p)
        except (IkeError, ValueError) as exc:
            raise ctx.error(f"{w}.proposals", str(exc)) from None
    vips = ctx.strings(t, "vips", w)
    for v in vips:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ctx.error(f"{w}.vips", f"{v!r} is not an address (0.0.0.0 or ::)") from None
    conn_pools = ctx.strings(t, "pools", w)
    for p in conn_pools:
        if p not in pools:
            raise ctx.error(f"{w}.pools", f"no [pools.{p}]")
    if "local" not in t:
        raise ctx.error(f"{w}.local", "missing (a connection needs local and remote sections)")
    if "remote" not in t:
        raise ctx.error(f"{w}.remote", "missing (a connection needs local and remote sections)")
    local = _parse_local(ctx, t["local"], f"{w}.local")
    remote = _parse_remote(ctx, t["remote"], f"{w}.remote")
    children_t = ctx.table(t.get("children", {}), f"{w}.children")
    children = tuple(
        _parse_child(ctx, cname, body, f"{w}.children.{cname}", pools)
        for cname, body in children_t.items()
    )
    pw = f"{w}.posture"
    pt = ctx.table(t.get("posture", {}), pw)
    ctx.keys(pt, ("assess", "method"), pw)
    posture = PostureSpec(
        assess=ctx.boolean(pt, "assess", pw, False),
        method=ctx.choice(pt, "method", pw, POSTURE_METHODS, "pt-eap"),
    )
    if posture.assess and remote.auth not in TUNNEL_METHODS:
        raise ctx.error(
            f"{pw}.assess",
            "posture runs inside a tunnel method (eap-ttls, eap-peap, eap-fast), "
            f"not {remote.auth}",
        )
    has_isolate = any("isolate" in c.verdict for c in children)
    has_allow = any("allow" in c.verdict for c in children)
    if children and posture.assess and not (has_allow and has_isolate):
        missing = "allow" if not has_allow else "isolate"
        raise ctx.error(
            f"{w}.children", f"with posture.assess a child must serve the {missing} verdict"
        )
    if local.auth == "psk" or remote.auth == "psk":
        if local.auth != remote.auth:
            raise ctx.error(
                f"{w}.remote.auth", "psk on one side needs psk on the other in this version"
            )
    return ConnectionSpec(
        name=name,
        local=local,
        remote=remote,
        local_addrs=local_addrs,
        remote_addrs=remote_addrs,
        proposals=tuple(p for p in proposals if p != "default"),
        pools=conn_pools,
        children=children,
        posture=posture,
        fragmentation=ctx.boolean(t, "fragmentation", w, True),
        send_certreq=ctx.boolean(t, "send_certreq", w, True),
        vips=vips,
        rekey_time=ctx.seconds(t, "rekey_time", w, None),
        reauth_time=ctx.seconds(t, "reauth_time", w, None),
        dpd_delay=ctx.seconds(t, "dpd_delay", w, None),
    )


SQL_POOL_KEYS = ("database", "crash_recovery", "lease_history")
"""The keys of a ``[pools.NAME]`` whose addresses and attributes live in SQL (``nea-pool``)."""


@dataclass(frozen=True)
class SqlPoolSpec:
    """``[pools.NAME] database = URL``: the pool NAME of an attr-sql style database."""

    name: str
    database: str
    crash_recovery: bool = True
    """On start, mark every online lease in the database offline (strongSwan's attr-sql
    ``crash_recovery``); false when several gateways share the database."""
    lease_history: bool = True


def sql_pools(pools: Mapping[str, Mapping[str, Any]]) -> dict[str, SqlPoolSpec]:
    """The ``[pools.*]`` sections that name a database (checked by the loader)."""
    return {
        name: SqlPoolSpec(
            name,
            str(body["database"]),
            bool(body.get("crash_recovery", True)),
            bool(body.get("lease_history", True)),
        )
        for name, body in pools.items()
        if "database" in body
    }


def memory_pools(pools: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The ``[pools.*]`` sections with their addresses in the configuration."""
    return {name: body for name, body in pools.items() if "database" not in body}


def _sql_pool(ctx: _Ctx, name: str, body: dict[str, Any]) -> dict[str, Any]:
    w = f"pools.{name}"
    ctx.keys(body, SQL_POOL_KEYS, w)
    url = ctx.string(body, "database", w)
    if not url or "://" not in url:
        raise ctx.error(
            f"{w}.database", f"{url!r} is not a URL (sqlite:///path, postgresql://...)"
        )
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///") :]
        if rel and not rel.startswith(":memory:"):
            url = f"sqlite:///{(ctx.base / rel).resolve()}"
    out = dict(body, database=url)
    for key in ("crash_recovery", "lease_history"):
        out[key] = ctx.boolean(body, key, w, True)
    return out


def _parse_pools(ctx: _Ctx, data: Any) -> dict[str, dict[str, Any]]:
    t = ctx.table(data, "pools")
    out: dict[str, dict[str, Any]] = {}
    for name, body in t.items():
        out[name] = ctx.table(body, f"pools.{name}")
        if "database" in out[name]:
            out[name] = _sql_pool(ctx, name, out[name])
    # The pool module checks keys and ranges; its message is prefixed with the file.
    from gateway.pools import MemoryPools, PoolError

    try:
        MemoryPools.from_config(memory_pools(out))
    except PoolError as exc:
        raise ctx.error("pools", str(exc)) from None
    return out


def _parse_secrets(ctx: _Ctx, data: Any) -> tuple[SecretSpec, ...]:
    t = ctx.table(data, "secrets")
    out: list[SecretSpec] = []
    for name, body in t.items():
        w = f"secrets.{name}"
        b = ctx.table(body, w)
        kind = name.split("-", 1)[0]
        if kind in ("eap", "ike", "xauth"):
            ids = tuple(
                v for k in b if k == "id" or k.startswith("id-") for v in ctx.strings(b, k, w)
            )
            for k in b:
                if k not in ("secret", "id") and not k.startswith("id-"):
                    raise ctx.error(f"{w}.{k}", "unknown key (expected secret, id, id-*)")
            text = ctx.string(b, "secret", w)
            if text is None:
                raise ctx.error(f"{w}.secret", "missing")
            out.append(
                SecretSpec(name, "ike" if kind == "ike" else "eap", ids, _secret(ctx, text, w))
            )
        elif kind in ("private", "rsa", "ecdsa", "pkcs8"):
            ctx.keys(b, ("file", "secret"), w)
            f = ctx.string(b, "file", w)
            if f is None:
                raise ctx.error(f"{w}.file", "missing")
            text = ctx.string(b, "secret", w)
            out.append(
                SecretSpec(
                    name,
                    "private",
                    (),
                    _secret(ctx, text, w) if text is not None else None,
                    ctx.path(f),
                )
            )
        elif kind == "pac":
            if any(o.kind == "pac" for o in out):
                raise ctx.error(w, "only one [secrets.pac-*] (it holds every PAC-Opaque key)")
            ctx.keys(b, ("secret", "previous"), w)
            text = ctx.string(b, "secret", w)
            if text is None:
                raise ctx.error(f"{w}.secret", "missing (the current PAC-Opaque key)")
            keys = [_pac_key(ctx, text, f"{w}.secret")]
            for i, old in enumerate(ctx.strings(b, "previous", w)):
                keys.append(_pac_key(ctx, old, f"{w}.previous[{i}]"))
            out.append(SecretSpec(name, "pac", (), keys[0], previous=tuple(keys[1:])))
        else:
            raise ctx.error(
                w,
                "a secret's name starts with eap-, ike-, private-, rsa-, ecdsa-, pkcs8- or pac-",
            )
    return tuple(out)


def _pac_key(ctx: _Ctx, text: str, key: str) -> bytes:
    """An EAP-FAST PAC-Opaque key: 32 bytes, written 0x<64 hex digits> (or 0s base64)."""
    if not text.startswith(("0x", "0s")):
        raise ctx.error(key, "a PAC-Opaque key is 32 bytes written 0x<64 hex digits>")
    data = _secret(ctx, text, key)
    if len(data) != 32:
        raise ctx.error(key, f"a PAC-Opaque key is 32 bytes (AES-256-GCM), not {len(data)}")
    return data


def _parse_authorities(ctx: _Ctx, data: Any) -> tuple[AuthoritySpec, ...]:
    t = ctx.table(data, "authorities")
    out = []
    for name, body in t.items():
        w = f"authorities.{name}"
        b = ctx.table(body, w)
        ctx.keys(b, ("cacert", "crl"), w)
        cacert = ctx.string(b, "cacert", w)
        if cacert is None:
            raise ctx.error(f"{w}.cacert", "missing")
        crl = ctx.string(b, "crl", w)
        out.append(AuthoritySpec(name, ctx.path(cacert), ctx.path(crl) if crl else None))
    return tuple(out)


def _parse_nea(ctx: _Ctx, data: Any) -> NeaSpec | None:
    w = "nea"
    t = ctx.table(data, w)
    ctx.keys(t, ("enabled", "validators", "policy", "database", "recommendation_policy"), w)
    if not ctx.boolean(t, "enabled", w, True):
        return None
    validators = ctx.strings(t, "validators", w, VALIDATORS)
    for v in validators:
        if v not in VALIDATORS:
            raise ctx.error("nea.validators", f"{v!r} is not one of: {', '.join(VALIDATORS)}")
    if len(set(validators)) != len(validators):
        raise ctx.error("nea.validators", "a validator is listed twice")
    policy = ctx.string(t, "policy", w)
    database = t.get("database", DEFAULT_DB_URL)
    if database is False or database == "":
        database = None
    elif not isinstance(database, str):
        raise ctx.error("nea.database", "must be a database URL or false")
    elif "://" not in database:
        raise ctx.error(
            "nea.database", f"{database!r} is not a URL (sqlite:///path, postgresql://)"
        )
    return NeaSpec(
        validators=validators,
        policy=ctx.path(policy) if policy else None,
        database=database,
        recommendation_policy=ctx.choice(
            t, "recommendation_policy", w, RECOMMENDATION_POLICIES, "default"
        ),
    )


def _parse_radius(ctx: _Ctx, data: Any) -> RadiusSpec:
    w = "radius"
    t = ctx.table(data, w)
    ctx.keys(
        t,
        (
            "listen",
            "auth_port",
            "acct_port",
            "clients",
            "methods",
            "inner_methods",
            "certs",
            "cacerts",
            "posture",
            "session_timeout",
            "conversation_timeout",
            "vlans",
            "dynauth",
            "accounting",
        ),
        w,
    )
    raw_clients = t.get("clients", [])
    if not isinstance(raw_clients, list) or not raw_clients:
        raise ctx.error("radius.clients", "at least one [[radius.clients]] (address, secret)")
    clients = []
    for i, entry in enumerate(raw_clients):
        cw = f"radius.clients[{i}]"
        e = ctx.table(entry, cw)
        ctx.keys(e, ("address", "secret", "name", "require_message_authenticator"), cw)
        address = ctx.string(e, "address", cw)
        secret = ctx.string(e, "secret", cw)
        if address is None or secret is None:
            raise ctx.error(cw, "needs address and secret")
        _address(ctx, address, f"{cw}.address", any_ok=False)
        clients.append(
            RadiusClientSpec(
                address,
                secret,
                ctx.string(e, "name", cw, ""),
                ctx.boolean(e, "require_message_authenticator", cw, True),
            )
        )
    methods = ctx.strings(t, "methods", w, ("md5",))
    known = ("tls", "ttls", "peap", "fast", "md5", "mschapv2", "gtc")
    for m in methods:
        if m not in known:
            raise ctx.error("radius.methods", f"{m!r} is not one of: {', '.join(known)}")
    inner = ctx.strings(t, "inner_methods", w, INNER_METHODS)
    for m in inner:
        if m not in INNER_METHODS:
            raise ctx.error("radius.inner_methods", f"{m!r} is not one of: mschapv2, md5, gtc")
    certs = ctx.paths(t, "certs", w)
    if any(m in ("tls", "ttls", "peap", "fast") for m in methods) and not certs:
        raise ctx.error("radius.certs", "TLS-based methods need the server certificate")
    vw = "radius.vlans"
    vt = ctx.table(t.get("vlans", {}), vw)
    ctx.keys(vt, ("allow", "allow_filter_id", "isolate", "isolate_filter_id"), vw)
    vlans = {}
    for k, v in vt.items():
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            raise ctx.error(f"{vw}.{k}", "must be a string or an integer")
        vlans[k] = v
    return RadiusSpec(
        clients=tuple(clients),
        listen=_address(ctx, ctx.string(t, "listen", w, "127.0.0.1"), "radius.listen"),
        auth_port=ctx.integer(t, "auth_port", w, 1812, 0, 65535),
        acct_port=ctx.integer(t, "acct_port", w, 1813, 0, 65535),
        methods=methods,
        inner_methods=inner,
        certs=certs,
        cacerts=ctx.paths(t, "cacerts", w),
        posture=ctx.boolean(t, "posture", w, False),
        session_timeout=ctx.integer(t, "session_timeout", w, None, 1),
        conversation_timeout=ctx.seconds(t, "conversation_timeout", w, 60.0),
        vlans=vlans,
        dynauth=dict(ctx.table(t["dynauth"], "radius.dynauth")) if "dynauth" in t else None,
        accounting=ctx.boolean(t, "accounting", w, True),
    )


def _parse_pt_tls(ctx: _Ctx, data: Any, ike: IkeSpec) -> PtTlsSpec | None:
    w = "pt_tls"
    t = ctx.table(data, w)
    ctx.keys(
        t,
        (
            "enabled",
            "listen",
            "port",
            "client_auth",
            "certs",
            "cacerts",
            "referral",
            "referral_name",
            "idle_timeout",
            "max_sasl_attempts",
            "move_grace",
        ),
        w,
    )
    if not ctx.boolean(t, "enabled", w, True):
        return None
    listen = ctx.string(t, "listen", w, ike.listen)
    if listen in ("%any", "%any4"):
        listen = "0.0.0.0"  # noqa: S104
    elif listen == "%any6":
        listen = "::"
    name = ctx.string(t, "referral_name", w)
    if name is not None:
        try:
            name.encode("ascii")
        except UnicodeEncodeError:
            raise ctx.error("pt_tls.referral_name", "must be an ASCII name or address") from None
    return PtTlsSpec(
        listen=_address(ctx, listen, "pt_tls.listen"),
        port=ctx.integer(t, "port", w, 271, 0, 65535),
        client_auth=ctx.choice(t, "client_auth", w, PT_TLS_CLIENT_AUTH, "tls-or-sasl"),
        certs=ctx.paths(t, "certs", w),
        cacerts=ctx.paths(t, "cacerts", w),
        referral=ctx.boolean(t, "referral", w, False),
        referral_name=name,
        idle_timeout=ctx.seconds(t, "idle_timeout", w, 300.0),
        max_sasl_attempts=ctx.integer(t, "max_sasl_attempts", w, 1, 1, 10),
        move_grace=_grace(ctx, t.get("move_grace", 2.0)),
    )


def _grace(ctx: _Ctx, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
        raise ctx.error("pt_tls.move_grace", "must be a number of seconds, 0..60")
    return float(value)


def _parse_log(ctx: _Ctx, data: Any) -> LogSpec:
    t = ctx.table(data, "log")
    levels: dict[str, int] = {"default": 1}
    file: Path | None = None
    for key, value in t.items():
        if key == "file":
            if not isinstance(value, str):
                raise ctx.error("log.file", "must be a path")
            file = ctx.path(value)
            continue
        if key not in LOG_SUBSYSTEMS:
            raise ctx.error(
                f"log.{key}",
                f"unknown subsystem (expected file or one of: {', '.join(LOG_SUBSYSTEMS)})",
            )
        text = str(value).lower() if not isinstance(value, bool) else ""
        level = LOG_LEVELS.get(text, LOG_LEVEL_NAMES.get(text))
        if level is None:
            raise ctx.error(
                f"log.{key}",
                f"{value!r} is not a level (-1..4, silent, audit, control, "
                "controlmore, raw, private, error, info, debug)",
            )
        levels[key] = level
    return LogSpec(levels, file)


def default_socket_path() -> Path:
    """``./var/nea-gateway.ctl`` under the working directory (``NEA_GATEWAY_SOCKET``
    overrides it)."""
    env = os.environ.get("NEA_GATEWAY_SOCKET")
    return Path(env) if env else Path("var") / "nea-gateway.ctl"


def _default_ike() -> IkeSpec:
    if os.geteuid() == 0:
        return IkeSpec()
    return IkeSpec(port=UNPRIVILEGED_PORTS[0], port_nat_t=UNPRIVILEGED_PORTS[1])


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", base: Path | None = None
) -> GatewayConfig:
    """Check and type a parsed TOML document; relative paths are taken from ``base``."""
    ctx = _Ctx(source, base if base is not None else Path.cwd())
    ctx.keys(data, _TOP, "")
    ike = _parse_ike(ctx, data.get("ike", {}), _default_ike())
    cw = "control"
    ct = ctx.table(data.get("control", {}), cw)
    ctx.keys(ct, ("socket",), cw)
    sock = ctx.string(ct, "socket", cw)
    control = ControlSpec(ctx.path(sock) if sock else default_socket_path())
    pools = _parse_pools(ctx, data.get("pools", {}))
    conns_t = ctx.table(data.get("connections", {}), "connections")
    connections = tuple(_parse_connection(ctx, name, body, pools) for name, body in conns_t.items())
    secrets = _parse_secrets(ctx, data.get("secrets", {}))
    authorities = _parse_authorities(ctx, data.get("authorities", {}))
    nea = _parse_nea(ctx, data.get("nea", {}))
    for conn in connections:
        if conn.posture.assess and nea is None:
            raise ctx.error(f"connections.{conn.name}.posture.assess", "needs [nea] enabled")
        if conn.remote.auth in ("psk",) and not any(s.kind == "ike" for s in secrets):
            raise ctx.error(
                f"connections.{conn.name}.remote.auth", "psk needs an [secrets.ike-*] secret"
            )
    radius = _parse_radius(ctx, data["radius"]) if "radius" in data else None
    if radius is not None and radius.posture and nea is None:
        raise ctx.error("radius.posture", "needs [nea] enabled")
    pt_tls = _parse_pt_tls(ctx, data["pt_tls"], ike) if "pt_tls" in data else None
    if pt_tls is not None and nea is None:
        raise ctx.error("pt_tls", "needs [nea] enabled (the validators assess PT-TLS clients)")
    dataplane = data.get("dataplane", "auto")
    if not isinstance(dataplane, str) or dataplane not in DATAPLANES:
        raise ctx.error("dataplane", f"{dataplane!r} is not one of: {', '.join(DATAPLANES)}")
    log = _parse_log(ctx, data.get("log", {}))
    return GatewayConfig(
        source=source,
        ike=ike,
        control=control,
        connections=connections,
        pools=pools,
        secrets=secrets,
        authorities=authorities,
        nea=nea,
        radius=radius,
        pt_tls=pt_tls,
        dataplane=dataplane,
        log=log,
    )


def load_config(path: Path | str) -> GatewayConfig:
    """Read and check a configuration file; errors name it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            str(p), "", f"cannot read: {exc.strerror if isinstance(exc, OSError) else exc}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "", f"not valid TOML: {exc}") from None
    return parse_config(data, str(p), p.resolve().parent)


def default_config() -> GatewayConfig:
    """The embedded defaults: IKE on 127.0.0.1 (500/4500 as root, else 10500/14500), one
    memory pool ``rw`` (10.3.0.0/24), validators on with an empty policy and the evidence
    database ``sqlite:///var/nea-evidence.db``, control socket ``./var/nea-gateway.ctl``,
    dataplane ``auto`` (``none`` without root), no connections."""
    return parse_config(
        {"pools": {"rw": {"addrs": "10.3.0.0/24"}}}, "<embedded defaults>", Path.cwd()
    )
