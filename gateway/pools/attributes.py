"""IKEv2 configuration attributes (CP payload) handed out with a virtual IP.

Attributes are stored and returned as ``(type, value bytes)``, ready for the configuration
payload (RFC 7296, 3.15.1). They live on three levels, as with strongSwan's attr-sql plugin:
global, per pool, and per identity within a pool. The most specific level that has any
attribute wins *as a whole*: an identity with its own attributes in a pool gets only those,
otherwise the pool's, otherwise the global ones. That is what lets a quarantine pool hand its
isolated endpoints a remediation DNS server and banner without leaking the corporate DNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum

from gateway.pools.errors import InvalidArgument

__all__ = [
    "ATTRIBUTE_KEYWORDS",
    "Attribute",
    "AttributeKeyword",
    "AttributeStore",
    "ConfigAttributeType",
    "ValueKind",
    "attribute_type_name",
    "encode_attribute",
    "format_attribute_value",
    "lookup_keyword",
    "resolve_attribute_levels",
]


class ConfigAttributeType(IntEnum):
    """IKEv2 Configuration Payload Attribute Types: RFC 7296, 3.15.1 and the IANA registry
    "IKEv2 Configuration Payload Attribute Types" (RFC 4306 for the types 7296 retired,
    RFC 5026/5739/5844/7651/8598 and 3GPP for 16-26); 23456/23457 are Microsoft's server
    attributes and 28672-28682 Cisco Unity's (private use range), as strongSwan names them."""

    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_ADDRESS_EXPIRY = 5  # RFC 4306 only
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_NETMASK = 9  # RFC 4306 only
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_NBNS = 11  # RFC 4306 only
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    MIP6_HOME_PREFIX = 16  # RFC 5026
    INTERNAL_IP6_LINK = 17  # RFC 5739
    INTERNAL_IP6_PREFIX = 18  # RFC 5739
    HOME_AGENT_ADDRESS = 19  # RFC 5844
    P_CSCF_IP4_ADDRESS = 20  # RFC 7651
    P_CSCF_IP6_ADDRESS = 21  # RFC 7651
    FTT_KAT = 22  # 3GPP TS 24.302 (IANA registry)
    EXTERNAL_SOURCE_IP4_NAT_INFO = 23  # 3GPP (IANA registry)
    TIMEOUT_PERIOD_FOR_LIVENESS_CHECK = 24  # 3GPP TS 24.302 (IANA registry)
    INTERNAL_DNS_DOMAIN = 25  # RFC 8598
    INTERNAL_DNSSEC_TA = 26  # RFC 8598
    INTERNAL_IP4_SERVER = 23456  # Microsoft
    INTERNAL_IP6_SERVER = 23457  # Microsoft
    UNITY_BANNER = 28672
    UNITY_SAVE_PASSWD = 28673
    UNITY_DEF_DOMAIN = 28674
    UNITY_SPLITDNS_NAME = 28675
    UNITY_SPLIT_INCLUDE = 28676
    UNITY_NATT_PORT = 28677
    UNITY_LOCAL_LAN = 28678
    UNITY_PFS = 28679
    UNITY_FW_TYPE = 28680
    UNITY_BACKUP_SERVERS = 28681
    UNITY_DDNS_HOSTNAME = 28682


T = ConfigAttributeType


class ValueKind(Enum):
    """How a value is written on the command line (``--addr``, ``--subnet``, ``--string``)."""

    ADDR = "addr"
    SUBNET = "subnet"
    STRING = "string"
    HEX = "hex"


@dataclass(frozen=True)
class AttributeKeyword:
    """A keyword of ``nea-pool --addattr`` / the ``[pools.NAME]`` config: type per family."""

    keyword: str
    kind: ValueKind
    ip4: int | None
    ip6: int | None
    description: str

    def type_for(self, version: int | None) -> int:
        chosen = self.ip6 if version == 6 else self.ip4
        if chosen is None:
            family = "IPv6" if version == 6 else "IPv4"
            raise InvalidArgument(f"attribute '{self.keyword}' has no {family} variant")
        return chosen


def _kw(
    keyword: str, kind: ValueKind, ip4: int | None, ip6: int | None, desc: str
) -> AttributeKeyword:
    return AttributeKeyword(keyword, kind, ip4, ip6, desc)


_A, _S, _T = ValueKind.ADDR, ValueKind.SUBNET, ValueKind.STRING

#: strongSwan's keywords (attr plugin / ``ipsec pool --showattr``) plus the hyphenated forms
#: the issue tracker users write; ``-`` and ``_`` are interchangeable in lookups.
ATTRIBUTE_KEYWORDS: dict[str, AttributeKeyword] = {
    k.keyword: k
    for k in (
        _kw("address", _A, T.INTERNAL_IP4_ADDRESS, T.INTERNAL_IP6_ADDRESS, "internal address"),
        _kw("netmask", _A, T.INTERNAL_IP4_NETMASK, T.INTERNAL_IP6_NETMASK, "internal netmask"),
        _kw("dns", _A, T.INTERNAL_IP4_DNS, T.INTERNAL_IP6_DNS, "DNS server"),
        _kw("nbns", _A, T.INTERNAL_IP4_NBNS, T.INTERNAL_IP6_NBNS, "NBNS (WINS) server"),
        _kw("wins", _A, T.INTERNAL_IP4_NBNS, T.INTERNAL_IP6_NBNS, "alias of nbns"),
        _kw("dhcp", _A, T.INTERNAL_IP4_DHCP, T.INTERNAL_IP6_DHCP, "DHCP server"),
        _kw("server", _A, T.INTERNAL_IP4_SERVER, T.INTERNAL_IP6_SERVER, "internal server (MS)"),
        _kw("p-cscf", _A, T.P_CSCF_IP4_ADDRESS, T.P_CSCF_IP6_ADDRESS, "P-CSCF server (RFC 7651)"),
        _kw("subnet", _S, T.INTERNAL_IP4_SUBNET, T.INTERNAL_IP6_SUBNET, "protected subnet"),
        _kw("split-include", _S, T.UNITY_SPLIT_INCLUDE, None, "Unity split-include subnet"),
        _kw("split-exclude", _S, T.UNITY_LOCAL_LAN, None, "Unity local LAN (split-exclude)"),
        _kw("local-lan", _S, T.UNITY_LOCAL_LAN, None, "alias of split-exclude"),
        _kw("version", _T, T.APPLICATION_VERSION, T.APPLICATION_VERSION, "application version"),
        _kw(
            "dns-domain",
            _T,
            T.INTERNAL_DNS_DOMAIN,
            T.INTERNAL_DNS_DOMAIN,
            "split DNS domain (RFC 8598)",
        ),
        _kw("banner", _T, T.UNITY_BANNER, T.UNITY_BANNER, "Unity login banner"),
        _kw("def-domain", _T, T.UNITY_DEF_DOMAIN, T.UNITY_DEF_DOMAIN, "Unity default domain"),
        _kw("split-dns", _T, T.UNITY_SPLITDNS_NAME, T.UNITY_SPLITDNS_NAME, "Unity split DNS names"),
        _kw(
            "backup-servers",
            _T,
            T.UNITY_BACKUP_SERVERS,
            T.UNITY_BACKUP_SERVERS,
            "Unity backup servers",
        ),
    )
}

_ADDR_TYPES = {
    t for k in ATTRIBUTE_KEYWORDS.values() if k.kind is _A for t in (k.ip4, k.ip6) if t is not None
}
_SUBNET_TYPES = {
    t for k in ATTRIBUTE_KEYWORDS.values() if k.kind is _S for t in (k.ip4, k.ip6) if t is not None
}
_STRING_TYPES = {
    t for k in ATTRIBUTE_KEYWORDS.values() if k.kind is _T for t in (k.ip4, k.ip6) if t is not None
}


def lookup_keyword(name: str) -> AttributeKeyword:
    """The keyword ``name`` (case-insensitive, ``_`` = ``-``), an IANA name such as
    ``internal_ip4_dns`` or ``unity_banner``, or a number (any type, value taken as given)."""
    norm = name.strip().lower().replace("_", "-")
    if norm in ATTRIBUTE_KEYWORDS:
        return ATTRIBUTE_KEYWORDS[norm]
    enum_name = norm.replace("-", "_").upper()
    if enum_name in ConfigAttributeType.__members__:
        t = ConfigAttributeType[enum_name]
        kind = ValueKind.HEX
        if t in _ADDR_TYPES:
            kind = _A
        elif t in _SUBNET_TYPES:
            kind = _S
        elif t in _STRING_TYPES:
            kind = _T
        return AttributeKeyword(norm, kind, int(t), int(t), t.name)
    try:
        number = int(norm, 0)
    except ValueError:
        raise InvalidArgument(
            f"unknown attribute type '{name}': use a keyword from --showattr "
            "(dns, nbns, subnet, split-include, banner, ...) or a number 1-32767"
        ) from None
    if not 1 <= number <= 0x7FFF:
        raise InvalidArgument(f"attribute type {number} out of range: must be 1-32767 (15 bits)")
    return AttributeKeyword(str(number), ValueKind.HEX, number, number, "numeric type")


def attribute_type_name(type_: int) -> str:
    try:
        return T(type_).name
    except ValueError:
        return str(type_)


def _addr_bytes(text: str) -> tuple[int, bytes]:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid address '{text}' for --addr/--mask/--server") from None
    return addr.version, addr.packed


def _subnet_bytes(text: str) -> tuple[int, bytes]:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(
            f"invalid subnet '{text}': expected CIDR such as 10.1.0.0/16"
        ) from None
    if net.version == 4:
        # RFC 7296 3.15.1: INTERNAL_IP4_SUBNET is an address and a netmask, 8 octets
        return 4, net.network_address.packed + net.netmask.packed
    # INTERNAL_IP6_SUBNET: an address and a one-octet prefix length, 17 octets
    return 6, net.network_address.packed + bytes([net.prefixlen])


def encode_attribute(name: str, kind: ValueKind, value: str) -> tuple[int, bytes]:
    """Turn ``(keyword, how the value was given, value text)`` into ``(type, bytes)``.

    The value kind must suit the keyword (``dns`` takes ``--addr``, ``split-include`` takes
    ``--subnet``, ``banner`` takes ``--string``); ``--hex`` fits every keyword. For keywords with
    an IPv4 and an IPv6 type the value's family picks the type."""
    kw = lookup_keyword(name)
    if kind is ValueKind.HEX:
        text = value.strip().removeprefix("0x").replace(":", "").replace(" ", "")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise InvalidArgument(f"invalid hex value '{value}'") from None
        return kw.type_for(4), data
    if kw.kind is ValueKind.HEX:  # numeric type: take addr/subnet/string as given
        if kind is ValueKind.ADDR:
            return kw.type_for(4), _addr_bytes(value)[1]
        if kind is ValueKind.SUBNET:
            return kw.type_for(4), _subnet_bytes(value)[1]
        return kw.type_for(4), value.encode()
    if kind is not kw.kind:
        option = {_A: "--addr", _S: "--subnet", _T: "--string"}[kw.kind]
        raise InvalidArgument(
            f"attribute '{kw.keyword}' takes a {kw.kind.value} value: "
            f"give it with {option} (or --hex)"
        )
    if kind is ValueKind.ADDR:
        version, data = _addr_bytes(value)
        return kw.type_for(version), data
    if kind is ValueKind.SUBNET:
        version, data = _subnet_bytes(value)
        return kw.type_for(version), data
    return kw.type_for(4), value.encode()


def format_attribute_value(type_: int, value: bytes, hexout: bool = False) -> str:
    """A value for display: address, CIDR, text, or hex when unknown (or ``hexout``)."""
    if not hexout:
        if type_ in _ADDR_TYPES and len(value) in (4, 16):
            return str(ipaddress.ip_address(value))
        if type_ in _SUBNET_TYPES and len(value) == 8:
            mask = ipaddress.IPv4Address(value[4:])
            try:
                return str(ipaddress.IPv4Network(f"{ipaddress.IPv4Address(value[:4])}/{mask}"))
            except ValueError:
                pass
        if type_ in _SUBNET_TYPES and len(value) == 17 and value[16] <= 128:
            return str(ipaddress.IPv6Network((value[:16], value[16]), strict=False))
        if type_ in _STRING_TYPES:
            try:
                return value.decode()
            except UnicodeDecodeError:
                pass
    return "0x" + value.hex()


@dataclass(frozen=True)
class Attribute:
    """One stored attribute and where it applies (``None`` = any pool / any identity)."""

    type: int
    value: bytes
    pool: str | None = None
    identity: str | None = None


def resolve_attribute_levels(
    by_identity: list[tuple[int, bytes]],
    by_pool: list[tuple[int, bytes]],
    global_: list[tuple[int, bytes]],
) -> list[tuple[int, bytes]]:
    """attr-sql's rule: the most specific non-empty level wins as a whole."""
    return list(by_identity or by_pool or global_)


class AttributeStore:
    """Attributes held in memory (from the configuration), for :class:`MemoryPools`."""

    def __init__(self) -> None:
        self._items: list[Attribute] = []

    def add(
        self, type_: int, value: bytes, pool: str | None = None, identity: str | None = None
    ) -> None:
        if identity is not None and pool is None:
            raise InvalidArgument("an identity attribute needs a pool (--identity requires --pool)")
        self._items.append(Attribute(type_, bytes(value), pool, identity))

    def add_values(
        self,
        keyword: str,
        values: str | Iterable[str],
        pool: str | None = None,
        identity: str | None = None,
    ) -> None:
        """Add config-style values: ``dns = ["10.0.0.53", "fd00::53"]``, ``banner = "..."``."""
        kw = lookup_keyword(keyword)
        items = [values] if isinstance(values, str) else list(values)
        for item in items:
            kind = kw.kind
            if kind is ValueKind.HEX and not str(item).startswith("0x"):
                kind = ValueKind.STRING
            self.add(*encode_attribute(keyword, kind, str(item)), pool=pool, identity=identity)

    def all(self) -> list[Attribute]:
        return list(self._items)

    def resolve(self, pool: str, identity: str) -> list[tuple[int, bytes]]:
        by_id = [
            (a.type, a.value) for a in self._items if a.pool == pool and a.identity == identity
        ]
        by_pool = [(a.type, a.value) for a in self._items if a.pool == pool and a.identity is None]
        global_ = [(a.type, a.value) for a in self._items if a.pool is None]
        return resolve_attribute_levels(by_id, by_pool, global_)

    def load(self, pool: str | None, section: Mapping[str, object]) -> None:
        """Read every key of ``section`` as an attribute keyword with a value or a list."""
        for key, value in section.items():
            if isinstance(value, str):
                self.add_values(key, value, pool)
            elif isinstance(value, list):
                self.add_values(key, [str(v) for v in value], pool)
            else:
                where = f"[pools.{pool}]" if pool else "[attributes]"
                raise InvalidArgument(
                    f"{where} {key}: expected a string or a list of strings, got {value!r}"
                )
