"""The OS validator: product, versions, operational status, forwarding, default password,
device id and installed packages (what strongSwan's OS collector sends).

Policy types: PCKGS (blacklisted package versions, versions older than the product table's
security minimum), UNSRC (packages missing from the product's table), FWDEN (forwarding
enabled), PWDEN (factory default password enabled) and OSVER (minimum OS version).
"""

from __future__ import annotations

import fnmatch
from typing import Any, ClassVar

from nea.imv.base import (
    MAX_ATTRIBUTE_SIZE,
    MAX_SEGMENT_SIZE,
    Measured,
    Need,
    PolicyValidator,
    ValidatorConnection,
)
from nea.imv.subtypes import OS
from nea.pa import (
    Attribute,
    AttributeRequest,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    IetfAttributeType,
    InstalledPackages,
    ItaDeviceId,
    MaxAttributeSizeRequest,
    NumericVersion,
    OperationalStatus,
    ProductInformation,
    RequestedAttribute,
    StringVersion,
    Vendor,
)
from nea.policy.config import Policy, PolicyType
from nea.policy.version import compare_versions, parse_os_version

__all__ = ["OsValidator"]

_EVIDENCE_LIMIT = 200


def _request(*types: IetfAttributeType) -> AttributeRequest:
    return AttributeRequest(tuple(RequestedAttribute(Vendor.IETF, int(t)) for t in types))


_REQ_FORWARDING = _request(IetfAttributeType.FORWARDING_ENABLED)
_REQ_PASSWORD = _request(IetfAttributeType.FACTORY_DEFAULT_PASSWORD_ENABLED)
_REQ_PRODUCT = _request(
    IetfAttributeType.PRODUCT_INFORMATION,
    IetfAttributeType.STRING_VERSION,
    IetfAttributeType.NUMERIC_VERSION,
)
_REQ_PACKAGES = _request(IetfAttributeType.INSTALLED_PACKAGES)
_SEGMENTATION = MaxAttributeSizeRequest(MAX_ATTRIBUTE_SIZE, MAX_SEGMENT_SIZE)
"""Sent with the package request: the collector may segment a large Installed Packages."""


def _capped(items: list[list[str]]) -> list[list[str]]:
    return items[:_EVIDENCE_LIMIT]


class OsValidator(PolicyValidator):
    NAME: ClassVar[str] = "os"
    TYPES: ClassVar[frozenset[PolicyType]] = frozenset({
        PolicyType.PCKGS, PolicyType.UNSRC, PolicyType.FWDEN, PolicyType.PWDEN,
        PolicyType.OSVER,
    })
    SUBSCRIPTIONS: ClassVar[tuple[tuple[int, int], ...]] = (OS,)
    DEFAULT_ID: ClassVar[int] = 3

    def take(self, conn_id: int, st: ValidatorConnection, attr: Attribute) -> None:
        rec = self.engine.record_facts
        if isinstance(attr, ProductInformation):
            st.data["product"] = attr.product_name
            rec(conn_id, product=attr.product_name, product_vendor_id=attr.product_vendor_id,
                product_id=attr.product_id)
        elif isinstance(attr, StringVersion):
            st.data["version"] = attr.product_version
            rec(conn_id, version=attr.product_version)
        elif isinstance(attr, NumericVersion):
            st.data["numeric"] = (attr.major, attr.minor, attr.build)
            rec(conn_id, numeric_version=(attr.major, attr.minor, attr.build))
        elif isinstance(attr, OperationalStatus):
            rec(conn_id, operational_status=attr.status, operational_result=attr.result,
                last_use=attr.last_use)
        elif isinstance(attr, ForwardingEnabled):
            st.data["forwarding"] = attr.status
            rec(conn_id, forwarding=attr.status)
        elif isinstance(attr, FactoryDefaultPasswordEnabled):
            st.data["default_password"] = attr.enabled
            if attr.enabled in (0, 1):
                rec(conn_id, default_password=bool(attr.enabled))
        elif isinstance(attr, ItaDeviceId):
            rec(conn_id, device_id=attr.device_id)
        elif isinstance(attr, InstalledPackages):
            pkgs = tuple((p.name, p.version) for p in attr.packages)
            st.data["packages"] = st.data.get("packages", ()) + pkgs
            rec(conn_id, packages=st.data["packages"])

    def measure(self, conn_id: int, st: ValidatorConnection, policy: Policy) -> Measured | Need:
        t = policy.type
        if t is PolicyType.FWDEN:
            return self._forwarding(st)
        if t is PolicyType.PWDEN:
            return self._password(st)
        if t is PolicyType.OSVER:
            return self._os_version(conn_id, st, policy)
        return self._packages(conn_id, st, policy)

    @staticmethod
    def _forwarding(st: ValidatorConnection) -> Measured | Need:
        value = st.data.get("forwarding")
        if value is None:
            return Need("forwarding", _REQ_FORWARDING, "the endpoint did not report IP forwarding")
        ev = {"forwarding": value}
        if value == 0:
            return Measured(True, ev, "IP forwarding is disabled")
        if value == 1:
            return Measured(False, ev, "IP forwarding is enabled")
        return Measured(None, ev, "the endpoint does not know whether IP forwarding is enabled")

    @staticmethod
    def _password(st: ValidatorConnection) -> Measured | Need:
        value = st.data.get("default_password")
        if value is None:
            return Need("password", _REQ_PASSWORD,
                        "the endpoint did not report the factory default password state")
        ev = {"default_password": value}
        if value == 0:
            return Measured(True, ev, "no factory default password")
        if value == 1:
            return Measured(False, ev, "a factory default password is enabled")
        return Measured(None, ev, f"unknown factory default password value {value}")

    def _os_version(
        self, conn_id: int, st: ValidatorConnection, policy: Policy
    ) -> Measured | Need:
        facts = self.engine.facts(conn_id)
        if "product" not in st.data or ("numeric" not in st.data and "version" not in st.data):
            return Need("product", _REQ_PRODUCT, "the endpoint did not report its OS and version")
        product = st.data["product"]
        numeric = st.data.get("numeric")
        version: tuple[int, ...] = ()
        if numeric is not None and any(numeric):
            version = tuple(numeric)
        elif "version" in st.data:
            version = parse_os_version(st.data["version"])
        label = facts.os_label or product
        ev: dict[str, Any] = {"os": label, "version": list(version)}
        for pattern, minimum in policy.min_versions:
            if fnmatch.fnmatchcase(product, pattern) or fnmatch.fnmatchcase(label, pattern):
                ev["minimum"] = list(minimum)
                if not version:
                    return Measured(None, ev, f"{label}: no numeric version reported")
                width = max(len(version), len(minimum))
                have = version + (0,) * (width - len(version))
                need = minimum + (0,) * (width - len(minimum))
                if have >= need:
                    return Measured(True, ev, f"{label} is supported")
                want = ".".join(map(str, minimum))
                return Measured(False, ev, f"{label} is outdated (minimum {pattern} {want})")
        return Measured(False, ev, f"{label} is not a supported operating system")

    def _packages(self, conn_id: int, st: ValidatorConnection, policy: Policy) -> Measured | Need:
        if "product" not in st.data:
            return Need("product", _REQ_PRODUCT, "the endpoint did not report its OS")
        if "packages" not in st.data:
            return Need("packages", _REQ_PACKAGES, "the endpoint did not send its packages",
                        (_SEGMENTATION,))
        label = self.engine.facts(conn_id).os_label
        table = self.engine.product_table(conn_id)
        if table is None:
            return Measured(None, {"os": label}, f"no package table for {label}")
        packages: tuple[tuple[str, str], ...] = st.data["packages"]
        ev: dict[str, Any] = {"os": label, "table": table.pattern, "packages": len(packages)}
        if policy.type is PolicyType.UNSRC:
            unknown = sorted([n, v] for n, v in packages if n not in table.packages)
            ev["unknown"] = _capped(unknown)
            ev["unknown_count"] = len(unknown)
            if unknown:
                names = ", ".join(n for n, _ in unknown[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                return Measured(False, ev, f"{len(unknown)} packages of unknown source: "
                                f"{names}{more}")
            return Measured(True, ev, "every package is known")
        blacklisted: list[list[str]] = []
        outdated: list[list[str]] = []
        for name, version in packages:
            rule = table.packages.get(name)
            if rule is None:
                continue
            if version in rule.blacklist:
                blacklisted.append([name, version])
            elif rule.min_version is not None and compare_versions(version, rule.min_version) < 0:
                outdated.append([name, version, rule.min_version])
        ev["blacklisted"] = _capped(sorted(blacklisted))
        ev["outdated"] = _capped(sorted(outdated))
        if blacklisted or outdated:
            parts = [f"{n} {v} is blacklisted" for n, v in blacklisted[:5]]
            parts += [f"{n} {v} lacks the security update {m}" for n, v, m in outdated[:5]]
            return Measured(False, ev, "; ".join(parts))
        return Measured(True, ev, "no blacklisted or outdated package")
