"""IETF standard PA-TNC attributes, RFC 5792 section 4.2 (types 0-12; 8 is in error_attr)."""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

from nea.pa._wire import Reader, check_rfc3339_20, u8, u16, u24, u32, vec8, vec32
from nea.pa.attribute import Attribute, Vendor, attribute_name, register
from nea.pa.errors import InvalidParameter, LocalPaTncError

__all__ = [
    "AssessmentResult",
    "AssessmentResultCode",
    "AttributeRequest",
    "FactoryDefaultPasswordEnabled",
    "ForwardingEnabled",
    "ForwardingStatus",
    "IetfAttributeType",
    "InstalledPackages",
    "NumericVersion",
    "OperationalResult",
    "OperationalStatus",
    "OperationalStatusCode",
    "Package",
    "PortFilter",
    "PortFilterEntry",
    "ProductInformation",
    "RemediationInstructions",
    "RemediationParamType",
    "RemediationString",
    "RemediationUri",
    "RequestedAttribute",
    "StringVersion",
    "Testing",
]


class IetfAttributeType(enum.IntEnum):
    """IETF PA-TNC attribute types: RFC 5792, 4.2 and 7.2 (0-12); RFC 8412, 5 (13-17)."""

    TESTING = 0
    ATTRIBUTE_REQUEST = 1
    PRODUCT_INFORMATION = 2
    NUMERIC_VERSION = 3
    STRING_VERSION = 4
    OPERATIONAL_STATUS = 5
    PORT_FILTER = 6
    INSTALLED_PACKAGES = 7
    PA_TNC_ERROR = 8
    ASSESSMENT_RESULT = 9
    REMEDIATION_INSTRUCTIONS = 10
    FORWARDING_ENABLED = 11
    FACTORY_DEFAULT_PASSWORD_ENABLED = 12
    SW_REQUEST = 13
    SW_IDENTIFIER_INVENTORY = 14
    SW_IDENTIFIER_EVENTS = 15
    SW_INVENTORY = 16
    SW_EVENTS = 17


def _enum_name(enum_cls: type[enum.IntEnum], value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return f"unknown({value})"


@register
@dataclass(frozen=True)
class Testing(Attribute):
    """RFC 5792, 4.2 (type 0): opaque test data."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.TESTING
    NAME = "Testing"

    data: bytes = b""

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.rest(), flags=flags)

    def serialize_value(self) -> bytes:
        return self.data


class RequestedAttribute(NamedTuple):
    """One (vendor ID, type) in an Attribute Request; ``reserved`` kept as received."""

    vendor_id: int
    attr_type: int
    reserved: int = 0


@register
@dataclass(frozen=True)
class AttributeRequest(Attribute):
    """RFC 5792, 4.2.1: Reserved (8), Vendor ID (24), Type (32), repeated."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.ATTRIBUTE_REQUEST
    NAME = "Attribute Request"

    requested: tuple[RequestedAttribute, ...] = ()

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        if reader.remaining % 8:
            raise InvalidParameter(
                "Attribute Request length is not a multiple of 8",
                offset=reader.offset + reader.remaining - reader.remaining % 8,
            )
        out = []
        while reader.remaining:
            reserved = reader.u8("reserved")
            out.append(RequestedAttribute(reader.u24("vendor ID"), reader.u32("type"), reserved))
        return cls(tuple(out), flags=flags)

    def serialize_value(self) -> bytes:
        return b"".join(
            u8(r.reserved, "reserved") + u24(r.vendor_id, "vendor ID") + u32(r.attr_type, "type")
            for r in self.requested
        )

    def summary(self) -> str:
        return ", ".join(attribute_name(r.vendor_id, r.attr_type) for r in self.requested)

    def details(self) -> dict[str, Any]:
        return {
            "requested": [
                {"vendor_id": r.vendor_id, "type": r.attr_type,
                 "name": attribute_name(r.vendor_id, r.attr_type)}
                | ({"reserved": r.reserved} if r.reserved else {})
                for r in self.requested
            ]
        }


@register
@dataclass(frozen=True)
class ProductInformation(Attribute):
    """RFC 5792, 4.2.2: Product Vendor ID (24), Product ID (16), Product Name (UTF-8)."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.PRODUCT_INFORMATION
    NAME = "Product Information"

    product_vendor_id: int
    product_id: int
    product_name: str

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        vendor = reader.u24("product vendor ID")
        product = reader.u16("product ID")
        return cls(vendor, product, reader.rest_text("product name"), flags=flags)

    def serialize_value(self) -> bytes:
        return (
            u24(self.product_vendor_id, "product vendor ID")
            + u16(self.product_id, "product ID")
            + self.product_name.encode("utf-8")
        )


@register
@dataclass(frozen=True)
class NumericVersion(Attribute):
    """RFC 5792, 4.2.3: Major (32), Minor (32), Build (32), SP Major (16), SP Minor (16)."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.NUMERIC_VERSION
    NAME = "Numeric Version"

    major: int
    minor: int = 0
    build: int = 0
    service_pack_major: int = 0
    service_pack_minor: int = 0

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(
            reader.u32("major version"),
            reader.u32("minor version"),
            reader.u32("build number"),
            reader.u16("service pack major"),
            reader.u16("service pack minor"),
            flags=flags,
        )

    def serialize_value(self) -> bytes:
        return (
            u32(self.major, "major version")
            + u32(self.minor, "minor version")
            + u32(self.build, "build number")
            + u16(self.service_pack_major, "service pack major")
            + u16(self.service_pack_minor, "service pack minor")
        )


@register
@dataclass(frozen=True)
class StringVersion(Attribute):
    """RFC 5792, 4.2.4: product version, internal build, configuration version, each
    with a 1-octet length prefix."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.STRING_VERSION
    NAME = "String Version"

    product_version: str
    internal_build: str = ""
    configuration_version: str = ""

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(
            reader.text8("product version number"),
            reader.text8("internal build number"),
            reader.text8("configuration version number"),
            flags=flags,
        )

    def serialize_value(self) -> bytes:
        return (
            vec8(self.product_version, "product version number")
            + vec8(self.internal_build, "internal build number")
            + vec8(self.configuration_version, "configuration version number")
        )


class OperationalStatusCode(enum.IntEnum):
    """RFC 5792, 4.2.5: Status."""

    UNKNOWN = 0
    NOT_INSTALLED = 1
    INSTALLED_NOT_OPERATIONAL = 2
    OPERATIONAL = 3


class OperationalResult(enum.IntEnum):
    """RFC 5792, 4.2.5: Result of the last use."""

    UNKNOWN = 0
    SUCCESSFUL = 1
    ERRORS = 2
    UNSUCCESSFUL = 3


#: RFC 5792, 4.2.5: Last Use when the time is not known.
UNKNOWN_LAST_USE = "0000-00-00T00:00:00Z"


@register
@dataclass(frozen=True)
class OperationalStatus(Attribute):
    """RFC 5792, 4.2.5: Status (8), Result (8), Reserved (16), Last Use (20-octet RFC 3339)."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.OPERATIONAL_STATUS
    NAME = "Operational Status"

    status: int
    result: int
    last_use: str = UNKNOWN_LAST_USE
    reserved: int = 0

    @property
    def last_use_time(self) -> _dt.datetime | None:
        """Last use as an aware datetime, or None when unknown."""
        if self.last_use == UNKNOWN_LAST_USE:
            return None
        try:
            return _dt.datetime.strptime(self.last_use, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=_dt.UTC
            )
        except ValueError:
            return None

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        status = reader.u8("status")
        result = reader.u8("result")
        reserved = reader.u16("reserved")
        at = reader.offset
        last_use = check_rfc3339_20(reader.take(20, "last use"), "last use", at)
        return cls(status, result, last_use, reserved, flags=flags)

    def serialize_value(self) -> bytes:
        raw = self.last_use.encode("ascii", "replace")
        check = check_rfc3339_20
        try:
            check(raw, "last use", 0)
        except InvalidParameter as exc:
            raise LocalPaTncError(f"last_use {self.last_use!r}: {exc}") from None
        return u8(self.status, "status") + u8(self.result, "result") + u16(
            self.reserved, "reserved"
        ) + raw

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "status_name": _enum_name(OperationalStatusCode, self.status),
            "result": self.result,
            "result_name": _enum_name(OperationalResult, self.result),
            "last_use": self.last_use,
        }
        if self.reserved:
            out["reserved"] = self.reserved
        return out


class PortFilterEntry(NamedTuple):
    """RFC 5792, 4.2.6: Reserved (7 bits), B (1 bit, blocked), Protocol (8), Port (16)."""

    blocked: bool
    protocol: int
    port: int
    reserved: int = 0


@register
@dataclass(frozen=True)
class PortFilter(Attribute):
    """RFC 5792, 4.2.6."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.PORT_FILTER
    NAME = "Port Filter"

    entries: tuple[PortFilterEntry, ...] = ()

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        if reader.remaining % 4:
            raise InvalidParameter(
                "Port Filter length is not a multiple of 4",
                offset=reader.offset + reader.remaining - reader.remaining % 4,
            )
        out = []
        while reader.remaining:
            first = reader.u8("blocked flag")
            out.append(
                PortFilterEntry(bool(first & 1), reader.u8("protocol"), reader.u16("port"),
                                first >> 1)
            )
        return cls(tuple(out), flags=flags)

    def summary(self) -> str:
        names = {6: "tcp", 17: "udp", 132: "sctp"}
        return ", ".join(
            f"{names.get(e.protocol, f'proto {e.protocol}')}/{e.port} "
            f"{'blocked' if e.blocked else 'open'}"
            for e in self.entries
        ) or "no entries"

    def serialize_value(self) -> bytes:
        out = bytearray()
        for e in self.entries:
            if not 0 <= e.reserved < 0x80:
                raise LocalPaTncError("port filter reserved bits out of range")
            out += u8((e.reserved << 1) | int(e.blocked), "blocked flag")
            out += u8(e.protocol, "protocol") + u16(e.port, "port")
        return bytes(out)


class Package(NamedTuple):
    """One installed package (RFC 5792, 4.2.7)."""

    name: str
    version: str


@register
@dataclass(frozen=True)
class InstalledPackages(Attribute):
    """RFC 5792, 4.2.7: Reserved (16), Package Count (16), then per
    package a 1-octet-length name and a 1-octet-length version."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.INSTALLED_PACKAGES
    NAME = "Installed Packages"

    packages: tuple[Package, ...] = ()
    reserved: int = 0

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        reserved = reader.u16("reserved")
        count = reader.u16("package count")
        out = []
        for _ in range(count):
            name = reader.text8("package name", nul_ok=False)
            version = reader.text8("package version number", nul_ok=False)
            out.append(Package(name, version))
        reader.expect_end(f"{count} packages")
        return cls(tuple(out), reserved, flags=flags)

    def serialize_value(self) -> bytes:
        out = u16(self.reserved, "reserved") + u16(len(self.packages), "package count")
        return out + b"".join(
            vec8(p.name, "package name") + vec8(p.version, "package version")
            for p in self.packages
        )


class AssessmentResultCode(enum.IntEnum):
    """RFC 5792, 4.2.9 (Assessment Result values)."""

    COMPLIANT = 0
    NON_COMPLIANT_MINOR = 1
    NON_COMPLIANT_MAJOR = 2
    ERROR = 3
    DONT_KNOW = 4


@register
@dataclass(frozen=True)
class AssessmentResult(Attribute):
    """RFC 5792, 4.2.9: Assessment Result (32)."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.ASSESSMENT_RESULT
    NAME = "Assessment Result"

    result: int

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.u32("assessment result"), flags=flags)

    def serialize_value(self) -> bytes:
        return u32(self.result, "assessment result")

    def details(self) -> dict[str, Any]:
        return {"result": self.result,
                "result_name": _enum_name(AssessmentResultCode, self.result)}


class RemediationParamType(enum.IntEnum):
    """RFC 5792, 4.2.10: IETF Remediation Parameters types."""

    URI = 1
    STRING = 2


@dataclass(frozen=True)
class RemediationUri:
    """RFC 5792, 4.2.10.1: the URI is the whole parameters field."""

    uri: str


@dataclass(frozen=True)
class RemediationString:
    """RFC 5792, 4.2.10.2: String Length (32), String, Lang Code Length (8), Lang Code."""

    text: str
    lang: str = ""


@register
@dataclass(frozen=True)
class RemediationInstructions(Attribute):
    """RFC 5792, 4.2.10: Reserved (8), Parameters Vendor ID (24), Parameters Type (32),
    Parameters. IETF URI and String parameters are decoded, others kept as octets."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.REMEDIATION_INSTRUCTIONS
    NAME = "Remediation Instructions"

    param_vendor_id: int
    param_type: int
    parameters: RemediationUri | RemediationString | bytes
    reserved: int = 0

    @classmethod
    def from_uri(cls, uri: str) -> Self:
        return cls(Vendor.IETF, RemediationParamType.URI, RemediationUri(uri))

    @classmethod
    def from_string(cls, text: str, lang: str = "") -> Self:
        return cls(Vendor.IETF, RemediationParamType.STRING, RemediationString(text, lang))

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        reserved = reader.u8("reserved")
        vendor = reader.u24("remediation parameters vendor ID")
        ptype = reader.u32("remediation parameters type")
        params: RemediationUri | RemediationString | bytes
        if vendor == Vendor.IETF and ptype == RemediationParamType.URI:
            params = RemediationUri(reader.rest_text("remediation URI"))
        elif vendor == Vendor.IETF and ptype == RemediationParamType.STRING:
            text = reader.text32("remediation string", nul_ok=False)
            lang = reader.text8("remediation string lang code", nul_ok=False)
            reader.expect_end("remediation string")
            params = RemediationString(text, lang)
        else:
            params = reader.rest()
        return cls(vendor, ptype, params, reserved, flags=flags)

    def serialize_value(self) -> bytes:
        head = (
            u8(self.reserved, "reserved")
            + u24(self.param_vendor_id, "remediation parameters vendor ID")
            + u32(self.param_type, "remediation parameters type")
        )
        ietf = self.param_vendor_id == Vendor.IETF
        p = self.parameters
        if ietf and self.param_type == RemediationParamType.URI:
            if not isinstance(p, RemediationUri):
                raise LocalPaTncError("URI remediation parameters need RemediationUri")
            return head + p.uri.encode("utf-8")
        if ietf and self.param_type == RemediationParamType.STRING:
            if not isinstance(p, RemediationString):
                raise LocalPaTncError("string remediation parameters need RemediationString")
            return head + vec32(p.text, "remediation string") + vec8(p.lang, "lang code")
        if not isinstance(p, bytes):
            raise LocalPaTncError("vendor-specific remediation parameters are octets")
        return head + p


class ForwardingStatus(enum.IntEnum):
    """RFC 5792, 4.2.11 (Forwarding Enabled values)."""

    DISABLED = 0
    ENABLED = 1
    UNKNOWN = 2


@register
@dataclass(frozen=True)
class ForwardingEnabled(Attribute):
    """RFC 5792, 4.2.11: Forwarding Enabled (32)."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.FORWARDING_ENABLED
    NAME = "Forwarding Enabled"

    status: int

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.u32("forwarding enabled"), flags=flags)

    def serialize_value(self) -> bytes:
        return u32(self.status, "forwarding enabled")

    def details(self) -> dict[str, Any]:
        return {"status": self.status, "status_name": _enum_name(ForwardingStatus, self.status)}


@register
@dataclass(frozen=True)
class FactoryDefaultPasswordEnabled(Attribute):
    """RFC 5792, 4.2.12: Factory Default Password Enabled (32): 0 no, 1 yes."""

    VENDOR = Vendor.IETF
    TYPE = IetfAttributeType.FACTORY_DEFAULT_PASSWORD_ENABLED
    NAME = "Factory Default Password Enabled"

    enabled: int

    @classmethod
    def parse_value(cls, reader: Reader, *, flags: int) -> Self:
        return cls(reader.u32("factory default password enabled"), flags=flags)

    def serialize_value(self) -> bytes:
        return u32(self.enabled, "factory default password enabled")
