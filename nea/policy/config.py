"""The posture policy: device groups, policies, enforcements and package tables, from TOML.

The format (see ``examples/policy.toml`` for a commented example)::

    [groups.<name>]            # a device group; a device is in it when every criterion
    parent = "<group>"         #   given matches (glob patterns, OR within a list);
    identities = ["*@corp"]    #   no criteria = every device. A device in a group is
    products = ["Debian 12*"]  #   also in its parent (enforcements are inherited);
    device_ids = ["3d12..."]   #   products match "<Product Information> <String Version>"

    [policies.<name>]
    type = "FWDEN"             # PCKGS UNSRC FWDEN PWDEN OSVER TCPOP TCPBL UDPOP UDPBL
                               # SWIDT SWREQ SWFRB
    argument = ...             # type-specific (ports, minimum versions, software globs)
    rec_fail = "isolate"       # allow | isolate | block | none
    rec_noresult = "allow"
    reason = { en = "..." }    # reason string per language when the policy fails
    remediation_uri = "https://..."
    remediation = { en = "..." }   # remediation text per language

    [[enforcements]]
    policy = "<policy>"
    group = "<group>"
    max_age = 3600             # seconds (or "30m", "12h", "7d"); optional
    rec_fail = "block"         # optional overrides of the policy's recommendations
    rec_noresult = "isolate"

    [products."Debian 12*".packages]     # package table for OSes matching the glob
    openssl = { min = "3.0.15-1~deb12u1", blacklist = ["3.0.9-1"] }

Errors raise :class:`PolicyError` naming the file, the key and the reason.
"""

from __future__ import annotations

import datetime as _dt
import enum
import fnmatch
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nea.pb_tnc.imv import ActionRecommendation
from nea.policy.version import parse_os_version

__all__ = [
    "DeviceGroup",
    "Enforcement",
    "PackageRule",
    "Policy",
    "PolicyConfig",
    "PolicyError",
    "PolicyType",
    "ProductTable",
    "load_policy",
    "parse_policy",
    "parse_recommendation",
]


class PolicyError(Exception):
    """A policy file is invalid; the message names the file, the key and the reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}" if key else f"{source}: {reason}")


class PolicyType(enum.Enum):
    """Policy types. The first ones are strongSwan's policy types (its database code in
    :attr:`strongswan_code`); OSVER, SWREQ and SWFRB are ours."""

    PCKGS = "PCKGS"
    """Installed packages against the product's package table (blacklisted version,
    version older than the security minimum)."""
    UNSRC = "UNSRC"
    """Installed packages not in the product's package table (unknown source)."""
    FWDEN = "FWDEN"
    """IP forwarding must be disabled."""
    PWDEN = "PWDEN"
    """The factory default password must not be enabled."""
    OSVER = "OSVER"
    """The OS must be listed with at least the given version (argument: table)."""
    TCPOP = "TCPOP"
    """Only the listed TCP ports may be open."""
    TCPBL = "TCPBL"
    """The listed TCP ports must not be open."""
    UDPOP = "UDPOP"
    UDPBL = "UDPBL"
    SWIDT = "SWIDT"
    """Collect the SWIMA software inventory (passes when it arrives)."""
    SWREQ = "SWREQ"
    """Software matching each glob must be installed (SWIMA identifiers)."""
    SWFRB = "SWFRB"
    """No software may match the globs (SWIMA identifiers)."""

    @property
    def strongswan_code(self) -> int | None:
        return _STRONGSWAN_CODES.get(self)


_STRONGSWAN_CODES = {
    PolicyType.PCKGS: 1, PolicyType.UNSRC: 2, PolicyType.FWDEN: 3, PolicyType.PWDEN: 4,
    PolicyType.TCPOP: 11, PolicyType.TCPBL: 12, PolicyType.UDPOP: 13, PolicyType.UDPBL: 14,
    PolicyType.SWIDT: 15,
}

_PORT_TYPES = {PolicyType.TCPOP, PolicyType.TCPBL, PolicyType.UDPOP, PolicyType.UDPBL}
_SW_TYPES = {PolicyType.SWREQ, PolicyType.SWFRB}

_RECOMMENDATIONS = {
    "allow": ActionRecommendation.ALLOW,
    "isolate": ActionRecommendation.ISOLATE,
    "block": ActionRecommendation.NO_ACCESS,
    "none": ActionRecommendation.NO_RECOMMENDATION,
}


def parse_recommendation(text: str) -> ActionRecommendation:
    """``allow`` / ``isolate`` / ``block`` / ``none`` -> the IF-IMV recommendation."""
    try:
        return _RECOMMENDATIONS[text]
    except KeyError:
        raise ValueError(f"{text!r} is not one of allow, isolate, block, none") from None


@dataclass(frozen=True)
class DeviceGroup:
    name: str
    parent: str | None = None
    identities: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    description: str = ""

    def matches(self, identity: str | None, os_label: str | None, device_id: str | None) -> bool:
        """Every given criterion kind must match (any pattern within the kind)."""
        checks = (
            (self.identities, identity),
            (self.products, os_label),
            (self.device_ids, device_id),
        )
        for patterns, value in checks:
            if patterns and (
                value is None or not any(fnmatch.fnmatchcase(value, p) for p in patterns)
            ):
                return False
        return True


@dataclass(frozen=True)
class Policy:
    name: str
    type: PolicyType
    argument: str = ""
    """Canonical text of the argument (what an evidence database stores)."""
    rec_fail: ActionRecommendation = ActionRecommendation.NO_ACCESS
    rec_noresult: ActionRecommendation = ActionRecommendation.ALLOW
    reason: Mapping[str, str] = field(default_factory=dict)
    remediation_uri: str | None = None
    remediation: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[tuple[int, int], ...] = ()
    """Port ranges (inclusive) for the port types."""
    min_versions: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """(product glob, minimum numeric version) for OSVER."""
    patterns: tuple[str, ...] = ()
    """Software identifier globs for SWREQ / SWFRB."""

    def port_listed(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ports)


@dataclass(frozen=True)
class Enforcement:
    policy: str
    group: str
    max_age: _dt.timedelta | None = None
    rec_fail: ActionRecommendation | None = None
    rec_noresult: ActionRecommendation | None = None


@dataclass(frozen=True)
class PackageRule:
    name: str
    min_version: str | None = None
    """Versions older than this lack a security update."""
    blacklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProductTable:
    pattern: str
    """Glob on the OS label ("Debian 12 x86_64")."""
    packages: Mapping[str, PackageRule] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyConfig:
    groups: Mapping[str, DeviceGroup] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    enforcements: tuple[Enforcement, ...] = ()
    products: tuple[ProductTable, ...] = ()
    source: str = "<policy>"

    def ancestors(self, group: str) -> list[str]:
        """``group`` and its parents, nearest first."""
        out = []
        name: str | None = group
        while name is not None and name not in out:
            out.append(name)
            name = self.groups[name].parent if name in self.groups else None
        return out

    def product_table(self, os_label: str | None) -> ProductTable | None:
        if os_label is None:
            return None
        for table in self.products:
            if fnmatch.fnmatchcase(os_label, table.pattern):
                return table
        return None


# --------------------------------------------------------------------------- parsing


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> PolicyError:
        return PolicyError(self.source, key, reason)

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {type(value).__name__}")
        return value

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def strings(self, value: object, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a string or a list of strings")
        return tuple(value)

    def lang_map(self, value: object, key: str) -> dict[str, str]:
        if isinstance(value, str):
            return {"en": value}
        table = self.table(value, key)
        return {lang: self.string(text, f"{key}.{lang}") for lang, text in table.items()}

    def rec(self, value: object, key: str) -> ActionRecommendation:
        try:
            return parse_recommendation(self.string(value, key))
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def unknown_keys(self, table: Mapping[str, object], allowed: set[str], key: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            names = ", ".join(sorted(allowed))
            raise self.fail(f"{key}.{extra[0]}", f"unknown key (allowed: {names})")


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(ctx: _Ctx, value: object, key: str) -> _dt.timedelta:
    if isinstance(value, bool):
        raise ctx.fail(key, "must be seconds or a duration like '12h'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ctx.fail(key, "must be seconds or a duration like '30m', '12h', '7d'")
    if seconds < 0:
        raise ctx.fail(key, "must not be negative")
    return _dt.timedelta(seconds=seconds)


def _parse_ports(ctx: _Ctx, value: object, key: str) -> tuple[tuple[int, int], ...]:
    items: list[str]
    if isinstance(value, str):
        items = [p for p in re.split(r"[\s,]+", value) if p]
    elif isinstance(value, list):
        items = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | str):
                raise ctx.fail(key, "ports are numbers or 'low-high' ranges")
            items.append(str(v))
    else:
        raise ctx.fail(key, "must be a port list like \"22 443 8000-8080\" or [22, 443]")
    out = []
    for item in items:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
        if not m:
            raise ctx.fail(key, f"{item!r} is not a port or a 'low-high' range")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not 0 <= lo <= hi <= 65535:
            raise ctx.fail(key, f"port range {item!r} is outside 0-65535 or reversed")
        out.append((lo, hi))
    return tuple(out)


def _ports_text(ports: tuple[tuple[int, int], ...]) -> str:
    return " ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports)


def _parse_group(ctx: _Ctx, name: str, value: object) -> DeviceGroup:
    key = f"groups.{name}"
    t = ctx.table(value, key)
    ctx.unknown_keys(t, {"parent", "identities", "products", "device_ids", "description"}, key)
    return DeviceGroup(
        name=name,
        parent=ctx.string(t["parent"], f"{key}.parent") if "parent" in t else None,
        identities=ctx.strings(t.get("identities", []), f"{key}.identities"),
        products=ctx.strings(t.get("products", []), f"{key}.products"),
        device_ids=ctx.strings(t.get("device_ids", []), f"{key}.device_ids"),
        description=ctx.string(t.get("description", ""), f"{key}.description"),
    )


def _parse_policy(ctx: _Ctx, name: str, value: object) -> Policy:
    key = f"policies.{name}"
    t = ctx.table(value, key)
    ctx.unknown_keys(
        t,
        {"type", "argument", "rec_fail", "rec_noresult", "reason", "remediation_uri",
         "remediation", "description"},
        key,
    )
    if "type" not in t:
        names = ", ".join(p.value for p in PolicyType)
        raise ctx.fail(f"{key}.type", f"missing (one of {names})")
    type_text = ctx.string(t["type"], f"{key}.type")
    try:
        ptype = PolicyType(type_text.upper())
    except ValueError:
        raise ctx.fail(
            f"{key}.type",
            f"unknown policy type {type_text!r} (one of "
            + ", ".join(p.value for p in PolicyType) + ")",
        ) from None
    akey = f"{key}.argument"
    arg = t.get("argument")
    ports: tuple[tuple[int, int], ...] = ()
    mins: tuple[tuple[str, tuple[int, ...]], ...] = ()
    patterns: tuple[str, ...] = ()
    argument = ""
    if ptype in _PORT_TYPES:
        ports = _parse_ports(ctx, arg if arg is not None else "", akey)
        argument = _ports_text(ports)
    elif ptype is PolicyType.OSVER:
        if arg is None:
            raise ctx.fail(akey, "OSVER needs a table of product = minimum version")
        table = ctx.table(arg, akey)
        parsed = []
        for product, minimum in table.items():
            text = minimum if isinstance(minimum, str) else str(minimum)
            if isinstance(minimum, bool) or not isinstance(minimum, str | int | float):
                raise ctx.fail(f"{akey}.{product}", "must be a version like \"12\" or \"22.04\"")
            version = parse_os_version(text)
            if not version:
                raise ctx.fail(f"{akey}.{product}", f"{text!r} is not a numeric version")
            parsed.append((product, version))
        mins = tuple(parsed)
        argument = ", ".join(f"{p} {'.'.join(map(str, v))}" for p, v in mins)
    elif ptype in _SW_TYPES:
        if arg is None:
            raise ctx.fail(akey, f"{ptype.value} needs software identifier globs")
        patterns = ctx.strings(arg, akey)
        argument = " ".join(patterns)
    elif arg is not None:
        raise ctx.fail(akey, f"{ptype.value} takes no argument")
    return Policy(
        name=name,
        type=ptype,
        argument=argument,
        rec_fail=ctx.rec(t.get("rec_fail", "block"), f"{key}.rec_fail"),
        rec_noresult=ctx.rec(t.get("rec_noresult", "allow"), f"{key}.rec_noresult"),
        reason=ctx.lang_map(t.get("reason", {}), f"{key}.reason"),
        remediation_uri=(
            ctx.string(t["remediation_uri"], f"{key}.remediation_uri")
            if "remediation_uri" in t else None
        ),
        remediation=ctx.lang_map(t.get("remediation", {}), f"{key}.remediation"),
        ports=ports,
        min_versions=mins,
        patterns=patterns,
    )


def _parse_enforcement(
    ctx: _Ctx, index: int, value: object, groups: Mapping[str, DeviceGroup],
    policies: Mapping[str, Policy],
) -> Enforcement:
    key = f"enforcements[{index}]"
    t = ctx.table(value, key)
    ctx.unknown_keys(t, {"policy", "group", "max_age", "rec_fail", "rec_noresult"}, key)
    if "policy" not in t:
        raise ctx.fail(f"{key}.policy", "missing")
    policy = ctx.string(t["policy"], f"{key}.policy")
    if policy not in policies:
        raise ctx.fail(f"{key}.policy", f"no policy named {policy!r}")
    group = ctx.string(t.get("group", "default"), f"{key}.group")
    if group not in groups:
        raise ctx.fail(f"{key}.group", f"no group named {group!r}")
    return Enforcement(
        policy=policy,
        group=group,
        max_age=_parse_duration(ctx, t["max_age"], f"{key}.max_age") if "max_age" in t else None,
        rec_fail=ctx.rec(t["rec_fail"], f"{key}.rec_fail") if "rec_fail" in t else None,
        rec_noresult=(
            ctx.rec(t["rec_noresult"], f"{key}.rec_noresult") if "rec_noresult" in t else None
        ),
    )


def _parse_products(ctx: _Ctx, value: object) -> tuple[ProductTable, ...]:
    tables = []
    for pattern, body in ctx.table(value, "products").items():
        key = f"products.{pattern}"
        t = ctx.table(body, key)
        ctx.unknown_keys(t, {"packages"}, key)
        rules: dict[str, PackageRule] = {}
        for pkg, spec in ctx.table(t.get("packages", {}), f"{key}.packages").items():
            pkey = f"{key}.packages.{pkg}"
            s = ctx.table(spec, pkey)
            ctx.unknown_keys(s, {"min", "blacklist"}, pkey)
            rules[pkg] = PackageRule(
                pkg,
                ctx.string(s["min"], f"{pkey}.min") if "min" in s else None,
                ctx.strings(s.get("blacklist", []), f"{pkey}.blacklist"),
            )
        tables.append(ProductTable(pattern, rules))
    return tuple(tables)


def parse_policy(text: str, source: str = "<policy>") -> PolicyConfig:
    """Parse a TOML policy; ``source`` (the file name) goes into every error message."""
    ctx = _Ctx(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, "", f"not valid TOML: {exc}") from None
    ctx.unknown_keys(doc, {"groups", "policies", "enforcements", "products"}, "(top level)")
    groups = {
        name: _parse_group(ctx, name, body)
        for name, body in ctx.table(doc.get("groups", {}), "groups").items()
    }
    groups.setdefault("default", DeviceGroup("default", description="every device"))
    for g in groups.values():
        if g.parent is not None and g.parent not in groups:
            raise ctx.fail(f"groups.{g.name}.parent", f"no group named {g.parent!r}")
        seen = [g.name]
        parent = g.parent
        while parent is not None:
            if parent in seen:
                raise ctx.fail(f"groups.{g.name}.parent", "parent chain loops: "
                               + " -> ".join([*seen, parent]))
            seen.append(parent)
            parent = groups[parent].parent
    policies = {
        name: _parse_policy(ctx, name, body)
        for name, body in ctx.table(doc.get("policies", {}), "policies").items()
    }
    raw_enf = doc.get("enforcements", [])
    if not isinstance(raw_enf, list):
        raise ctx.fail("enforcements", "must be an array of tables ([[enforcements]])")
    enforcements = tuple(
        _parse_enforcement(ctx, i, e, groups, policies) for i, e in enumerate(raw_enf)
    )
    seen_pairs: set[tuple[str, str]] = set()
    for i, e in enumerate(enforcements):
        if (e.policy, e.group) in seen_pairs:
            raise ctx.fail(f"enforcements[{i}]", f"policy {e.policy!r} is already enforced "
                           f"on group {e.group!r}")
        seen_pairs.add((e.policy, e.group))
    products = _parse_products(ctx, doc.get("products", {}))
    return PolicyConfig(groups, policies, enforcements, products, source)


def load_policy(path: str | Path) -> PolicyConfig:
    """Read and parse a policy file (errors name the file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(p), "", f"cannot read: {exc}") from None
    return parse_policy(text, str(p))
