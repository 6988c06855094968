"""Errors of the TLS-over-EAP layer (one root, subclasses carry what goes on the wire)."""

from __future__ import annotations

import enum

__all__ = [
    "AlertDescription",
    "FramingError",
    "ReassemblyLimitError",
    "TlsEapError",
    "TlsFailure",
]


class AlertDescription(enum.IntEnum):
    """TLS alert descriptions (RFC 8446 section 6, RFC 5246 section 7.2)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    user_canceled = 90
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


class TlsEapError(Exception):
    """Root of every error raised by ``ike.eap_tls`` and the tunnel methods built on it."""


class FramingError(TlsEapError):
    """The EAP-TLS framing (flags, length, fragments) of a message is malformed (RFC 5216 3.1)."""


class ReassemblyLimitError(FramingError):
    """A fragmented message announced or grew beyond the reassembly limit."""


class TlsFailure(TlsEapError):
    """The TLS engine failed; ``alert`` is the TLS alert (if any) OpenSSL queued for the peer."""

    def __init__(self, reason: str, alert: AlertDescription | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.alert = alert
