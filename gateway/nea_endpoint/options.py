"""``nea-endpoint`` options: command line and an optional small TOML file.

The TOML file takes the long option names (``-`` or ``_``) at its top level::

    server = "vpn.example.com:500"
    id = "alice@example.com"
    eap = "eap-ttls"          # eap-md5 eap-mschapv2 eap-gtc eap-tls eap-ttls eap-peap eap-fast
    password = "secret"       # or: psk = "..." (IKE PSK instead of EAP)
    ca = "ca.pem"
    profile = "examples/profiles/compliant.toml"
    inner = "mschapv2"        # inner method of eap-ttls / eap-peap
    timeout = 30
    watch-profile = true      # re-assess when the profile file changes
    reassess-after = 3600     # re-assess every hour

Command-line options win over the file.  Problems raise :class:`OptionsError` (exit 2).
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "EAP_METHODS",
    "INNER_METHODS",
    "EndpointOptions",
    "OptionsError",
    "load_options_file",
    "merged",
    "parse_server",
]

EAP_METHODS = (
    "eap-md5",
    "eap-mschapv2",
    "eap-gtc",
    "eap-tls",
    "eap-ttls",
    "eap-peap",
    "eap-fast",
)
"""``--eap`` values (strongSwan's ``auth`` names)."""

TUNNEL_METHODS = ("eap-ttls", "eap-peap", "eap-fast")
INNER_METHODS = ("md5", "mschapv2", "gtc")
DEFAULT_PORT = 500
DATAPLANES = ("none", "userspace")


class OptionsError(ValueError):
    """A usage or configuration problem (the message names the option)."""


@dataclass(frozen=True)
class EndpointOptions:
    """Everything one endpoint run needs (paths already resolved)."""

    server: str
    """Host name or address of the gateway."""
    port: int = DEFAULT_PORT
    id: str = "endpoint"
    """IKE identity (IDi) and, unless ``eap_id`` is given, the EAP identity."""
    eap: str | None = "eap-ttls"
    """EAP method, or None for IKE PSK (``psk``) / certificate (``cert``) authentication."""
    eap_id: str | None = None
    password: str | None = field(default=None, repr=False)
    psk: str | None = field(default=None, repr=False)
    cert: Path | None = None
    key: Path | None = None
    ca: tuple[Path, ...] = ()
    server_id: str | None = None
    """The gateway's identity (IDr) to insist on; None accepts any the CA vouches for."""
    inner: str = "mschapv2"
    profile: Path | None = None
    """Simulated endpoint (TOML profile); None reads this host unless ``posture`` is off."""
    posture: bool = True
    timeout: float = 30.0
    source: str | None = None
    """Local address to send from (default: the one the route to the server uses)."""
    dataplane: str = "none"
    """``none``: negotiate and report only; ``userspace``: install the virtual IP, routes and
    the CHILD_SAs (userspace ESP on a TUN device; root)."""
    natt_port: int = 4500
    """The gateway's NAT-T port; with a dataplane IKE and ESP both go there (RFC 3948)."""
    reassess_after: float | None = None
    """Without ``--once``: re-assess (re-authenticate) every that many seconds."""
    watch_profile: bool = False
    """Without ``--once``: re-assess when the ``profile`` file changes."""
    pt_tls: str | None = None
    """``HOST[:PORT]`` of the gateway's PT-TLS PDP (port 271 by default), or ``referral``
    (the PB-PDP-Referral of the IKEv2 assessment): re-assess over PT-TLS inside the tunnel
    (CRETRY) instead of re-authenticating."""

    @property
    def eap_identity(self) -> str:
        return self.eap_id or self.id

    def check(self) -> EndpointOptions:
        """Cross-option checks; returns self."""
        if not self.server:
            raise OptionsError("--server: missing (the gateway's address, HOST[:PORT])")
        if self.eap is not None and self.eap not in EAP_METHODS:
            raise OptionsError(f"--eap: {self.eap!r} is not one of: {', '.join(EAP_METHODS)}")
        if self.inner not in INNER_METHODS:
            raise OptionsError(f"--inner: {self.inner!r} is not one of: {', '.join(INNER_METHODS)}")
        if self.eap is None:
            if self.psk is None and self.cert is None:
                raise OptionsError("without --eap give --psk or --cert/--key")
        elif self.eap == "eap-tls":
            if self.cert is None or self.key is None:
                raise OptionsError("--eap eap-tls needs --cert and --key")
        elif self.password is None:
            raise OptionsError(f"--eap {self.eap} needs --password")
        if (self.cert is None) != (self.key is None):
            raise OptionsError("--cert and --key go together")
        if self.psk is None and not self.ca:
            raise OptionsError("--ca: the CA certificate that signs the gateway is needed")
        if self.eap in ("eap-tls", "eap-ttls", "eap-peap", "eap-fast") and not self.ca:
            raise OptionsError(f"--ca: {self.eap} checks the gateway's TLS certificate")
        for name in ("cert", "key", "profile"):
            p = getattr(self, name)
            if p is not None and not p.is_file():
                raise OptionsError(f"--{name}: {p}: no such file")
        for p in self.ca:
            if not p.is_file():
                raise OptionsError(f"--ca: {p}: no such file")
        if self.dataplane not in DATAPLANES:
            raise OptionsError(
                f"--dataplane: {self.dataplane!r} is not one of: {', '.join(DATAPLANES)}"
            )
        if not 0 < self.natt_port < 65536:
            raise OptionsError("--natt-port: not a UDP port")
        if self.timeout <= 0:
            raise OptionsError("--timeout must be positive")
        if self.reassess_after is not None and not self.reassess_after > 0:
            raise OptionsError("--reassess-after must be a positive number of seconds")
        if self.watch_profile and self.profile is None:
            raise OptionsError("--watch-profile needs --profile")
        if self.pt_tls is not None:
            from gateway.nea_endpoint.pt_tls import parse_pt_tls

            if not self.posture:
                raise OptionsError("--pt-tls needs the posture assessment (not --no-posture)")
            if not self.ca:
                raise OptionsError("--pt-tls: --ca checks the PDP's TLS certificate")
            try:
                parse_pt_tls(self.pt_tls)
            except OptionsError as exc:
                raise OptionsError(str(exc).replace("--server", "--pt-tls")) from None
        return self

    def local_address(self, remote_ip: str) -> str:
        """The source address: ``source`` or what the kernel's route to the server uses."""
        if self.source:
            return self.source
        family = socket.AF_INET6 if ipaddress.ip_address(remote_ip).version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((remote_ip, self.port))
            return str(s.getsockname()[0])

    def resolve(self) -> str:
        """The server's address (resolved once, at start)."""
        try:
            return str(ipaddress.ip_address(self.server))
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(self.server, self.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise OptionsError(f"--server: cannot resolve {self.server!r}: {exc}") from None
        return str(infos[0][4][0])


def parse_server(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    text = text.strip()
    if not text:
        raise OptionsError("--server: empty")
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise OptionsError(f"--server: {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise OptionsError(f"--server: {text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    if not host:
        raise OptionsError(f"--server: {text!r}: no host")
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise OptionsError(f"--server: {whole!r}: {text!r} is not a UDP port")
    return int(text)


_FILE_KEYS = {f.name for f in fields(EndpointOptions)} - {"port"}


def load_options_file(path: Path) -> dict[str, Any]:
    """Read a TOML options file into keyword arguments of :class:`EndpointOptions`
    (relative paths are taken from the file's directory)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionsError(f"--config: {path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionsError(f"--config: {path}: not valid TOML: {exc}") from None
    return _from_mapping(data, path)


def _from_mapping(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    base = path.resolve().parent
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in _FILE_KEYS:
            raise OptionsError(f"{path}: {raw_key}: unknown key")
        where = f"{path}: {raw_key}"
        if key in ("cert", "key", "profile"):
            out[key] = _path(value, base, where)
        elif key == "ca":
            values = value if isinstance(value, list) else [value]
            out[key] = tuple(_path(v, base, where) for v in values)
        elif key == "natt_port":
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionsError(f"{where}: must be a UDP port number")
            out[key] = value
        elif key in ("timeout", "reassess_after"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OptionsError(f"{where}: must be a number of seconds")
            out[key] = float(value)
        elif key in ("posture", "watch_profile"):
            if not isinstance(value, bool):
                raise OptionsError(f"{where}: must be true or false")
            out[key] = value
        elif key == "eap":
            if value is False or value == "none":
                out[key] = None
            elif isinstance(value, str):
                out[key] = value
            else:
                raise OptionsError(f"{where}: must be a method name or \"none\"")
        else:
            if not isinstance(value, str):
                raise OptionsError(f"{where}: must be a string")
            out[key] = value
    return out


def _path(value: Any, base: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise OptionsError(f"{where}: must be a file name")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def merged(file_values: Mapping[str, Any], cli_values: Mapping[str, Any]) -> EndpointOptions:
    """File values overridden by the command line's (None = not given); then checked."""
    values = dict(file_values) | {k: v for k, v in cli_values.items() if v is not None}
    server = values.pop("server", None)
    if not server:
        raise OptionsError("--server: missing (the gateway's address, HOST[:PORT])")
    host, port = parse_server(str(server))
    try:
        opts = EndpointOptions(server=host, port=port, **values)
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise OptionsError(str(exc)) from None
    return replace(opts).check()
