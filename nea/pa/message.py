"""PA-TNC messages (RFC 5792, 4.1) and the receive-side processing rules.

Header: Version (8, = 1), Reserved (24), Message Identifier (32); then attributes, each
consuming exactly its declared length, to the end of the message.
"""

from __future__ import annotations

import secrets
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from nea.pa._wire import Reader, u8, u24, u32
from nea.pa.attribute import (
    ATTRIBUTE_REGISTRY,
    Attribute,
    AttributeHeader,
    UnknownAttribute,
    Vendor,
    parse_attribute,
)
from nea.pa.error_attr import PaTncErrorAttribute
from nea.pa.errors import (
    MESSAGE_HEADER_LEN,
    InvalidParameter,
    PaTncError,
    UnsupportedMandatoryAttribute,
    VersionNotSupported,
)

__all__ = [
    "PA_TNC_VERSION",
    "PaMessage",
    "ProcessResult",
    "error_message",
    "process_message",
]

PA_TNC_VERSION = 1

_A = TypeVar("_A", bound=Attribute)


def _keep_bad_error_attribute(
    header: AttributeHeader, value: bytes, exc: InvalidParameter
) -> Attribute | None:
    """A malformed PA-TNC Error attribute is kept raw instead of failing the message:
    answering an error with an error invites loops (strongSwan suppresses these too)."""
    if (header.vendor_id, header.attr_type) == (Vendor.IETF, PaTncErrorAttribute.TYPE):
        return UnknownAttribute(header.vendor_id, header.attr_type, value, flags=header.flags)
    return None


@dataclass(frozen=True)
class PaMessage:
    """One PA-TNC message: an identifier and its attributes, in order."""

    identifier: int
    attributes: tuple[Attribute, ...] = ()
    reserved: int = 0

    @classmethod
    def create(cls, attributes: Iterable[Attribute], identifier: int | None = None) -> PaMessage:
        """A new message; the identifier is random unless given (RFC 5792, 4.1)."""
        ident = secrets.randbits(32) if identifier is None else identifier
        return cls(ident, tuple(attributes))

    @classmethod
    def parse(cls, data: bytes) -> PaMessage:
        """Decode strictly. Raises a :class:`PaTncError` whose ``offset`` is from the start
        of ``data`` and whose ``header`` is the message header copy. Attributes of unknown
        type are kept as :class:`UnknownAttribute` whatever their NOSKIP flag; use
        :func:`process_message` to apply the NOSKIP rule."""
        data = bytes(data)
        try:
            return cls._parse(data)
        except PaTncError as exc:
            raise exc.with_header(data[:MESSAGE_HEADER_LEN]) from None

    @classmethod
    def _parse(cls, data: bytes) -> PaMessage:
        r = Reader(data)
        if len(data) < MESSAGE_HEADER_LEN:
            raise InvalidParameter(
                f"{len(data)} octets cannot hold the PA-TNC message header", offset=0
            )
        version = r.u8("version")
        if version != PA_TNC_VERSION:
            raise VersionNotSupported(
                f"PA-TNC version {version} not supported", offset=0,
                max_version=PA_TNC_VERSION, min_version=PA_TNC_VERSION,
            )
        reserved = r.u24("reserved")
        identifier = r.u32("message identifier")
        attrs: list[Attribute] = []
        while r.remaining:
            attrs.append(
                parse_attribute(r, ATTRIBUTE_REGISTRY, on_value_error=_keep_bad_error_attribute)
            )
        return cls(identifier, tuple(attrs), reserved)

    def serialize(self) -> bytes:
        return (
            u8(PA_TNC_VERSION, "version")
            + u24(self.reserved, "reserved")
            + u32(self.identifier, "message identifier")
            + b"".join(a.serialize() for a in self.attributes)
        )

    @property
    def header(self) -> bytes:
        return self.serialize()[:MESSAGE_HEADER_LEN]

    # -- convenience ----------------------------------------------------------------
    def __iter__(self) -> Iterator[Attribute]:
        return iter(self.attributes)

    def find(self, cls: type[_A]) -> list[_A]:
        """All attributes of class ``cls``, in order."""
        return [a for a in self.attributes if isinstance(a, cls)]

    def first(self, cls: type[_A]) -> _A | None:
        found = self.find(cls)
        return found[0] if found else None

    # -- presentation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": PA_TNC_VERSION,
            "identifier": self.identifier,
            "attributes": [a.to_dict() for a in self.attributes],
        }
        if self.reserved:
            out["reserved"] = self.reserved
        return out

    def describe(self) -> str:
        n = len(self.attributes)
        lines = [
            f"PA-TNC message v{PA_TNC_VERSION} id {self.identifier:#010x}, "
            f"{n} attribute{'s' if n != 1 else ''}"
        ]
        lines += [f"  {a.describe()}" for a in self.attributes]
        return "\n".join(lines)


@dataclass(frozen=True)
class ProcessResult:
    """What :func:`process_message` found.

    ``decoded`` is the message if it could be decoded at all (for logging); ``errors`` are
    the PA-TNC Error attributes to send back (wrap them with :func:`error_message`).
    ``message`` is the message to act on: None whenever there are errors, because RFC
    5792 forbids processing a message that is malformed or carries an unsupported
    NOSKIP attribute.
    """

    decoded: PaMessage | None
    errors: tuple[PaTncErrorAttribute, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def message(self) -> PaMessage | None:
        return self.decoded if self.ok else None


def process_message(
    data: bytes, supported: Container[tuple[int, int]] | None = None
) -> ProcessResult:
    """Decode a received PA-TNC message and apply RFC 5792's receive rules.

    ``supported`` is the set of (vendor, type) the receiving collector/validator handles
    (default: every type this package decodes). An unknown or unsupported attribute
    without NOSKIP is skipped silently; with NOSKIP it yields an "Attribute Type Not
    Supported" error naming it (one per such attribute) and the message must not be acted
    on. A decoding failure yields the matching PA-TNC Error. Never raises PaTncError.
    """
    data = bytes(data)
    try:
        msg = PaMessage.parse(data)
    except PaTncError as exc:
        return ProcessResult(None, (exc.to_attribute(data[:MESSAGE_HEADER_LEN]),))
    known = ATTRIBUTE_REGISTRY if supported is None else supported
    errors = []
    offset = MESSAGE_HEADER_LEN
    for attr in msg.attributes:
        if attr.noskip and attr.key not in known:
            err = UnsupportedMandatoryAttribute(
                f"unsupported attribute {attr.name} with NOSKIP",
                flags=attr.flags, vendor_id=attr.vendor_id, attr_type=attr.attr_type,
                offset=offset, header=data[:MESSAGE_HEADER_LEN],
            )
            errors.append(err.to_attribute())
        offset += len(attr.serialize())
    return ProcessResult(msg, tuple(errors))


def error_message(
    errors: Iterable[PaTncErrorAttribute], identifier: int | None = None
) -> PaMessage:
    """A PA-TNC message carrying the given error attributes (to send back)."""
    return PaMessage.create(errors, identifier)
