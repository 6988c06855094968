"""A sans-I/O TLS endpoint on pyOpenSSL memory BIOs, with EAP's certificate policy.

``TlsSession`` wraps one ``OpenSSL.SSL.Connection`` that reads and writes memory BIOs: bytes
in with :meth:`TlsSession.receive`, bytes out with :meth:`TlsSession.data_to_send`.  The
configuration objects (:class:`TlsServerConfig`, :class:`TlsPeerConfig`) build one
``SSL.Context`` lazily and keep it, so sessions made from the same configuration share
OpenSSL's session cache and ticket keys (needed for resumption).

Certificate policy (checked inside the handshake, so the right alert goes out):

* chain to one of ``ca_pems``; failures give ``unknown_ca``;
* validity at the injected wall clock ``clock()`` (X509_VERIFY_PARAM time);
  ``certificate_expired``;
* extended key usage: OpenSSL's default purpose (``ssl_client`` on the server,
  ``ssl_server`` on the peer) rejects a certificate whose EKU lacks clientAuth / serverAuth
  with ``unsupported_certificate``;
* optional CRLs (parsed with ``cryptography``, checked by OpenSSL for the end entity,
  ``certificate_revoked``);
* the end-entity identity: server side, the EAP identity must equal the subject CN or a
  DNS / e-mail subjectAltName (``bind_identity``); peer side, ``server_name`` must match a DNS
  subjectAltName or the CN.  A mismatch is refused with ``bad_certificate`` (the verify
  callback sets X509_V_ERR_CERT_REJECTED, see :meth:`TlsSession._install_verify`).

Every refusal sets :attr:`TlsSession.failure_reason` to a line naming the cause.
"""

from __future__ import annotations

import collections
import datetime
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _openssl_ffi
from OpenSSL._util import lib as _openssl_lib

from ike.eap_tls.errors import AlertDescription, TlsFailure

__all__ = [
    "Clock",
    "TlsPeerConfig",
    "TlsServerConfig",
    "TlsSession",
    "TlsSessionCache",
    "TlsVersion",
    "identity_matches",
    "server_name_matches",
    "system_clock",
    "verify_server_chain",
]

Clock = Callable[[], datetime.datetime]
"""Wall clock (timezone-aware UTC) used for certificate validity."""


def system_clock() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TlsVersion(enum.IntEnum):
    """Protocol versions offered (RFC 5246, RFC 8446; EAP-TLS 1.3 is RFC 9190)."""

    TLS1_2 = SSL.TLS1_2_VERSION
    TLS1_3 = SSL.TLS1_3_VERSION


# X509_V_ERR_* codes (openssl/x509_vfy.h) -> (readable cause, alert OpenSSL sends for it:
# ssl_x509err2alert() in OpenSSL's statem_lib.c; the tests check the alert the peer receives).
_VERIFY_ERRORS: dict[int, tuple[str, AlertDescription]] = {
    2: ("issuer certificate not found: not issued by a trusted CA", AlertDescription.unknown_ca),
    3: ("no CRL found for the issuer", AlertDescription.unknown_ca),
    4: ("certificate signature could not be decrypted", AlertDescription.decrypt_error),
    7: ("certificate signature invalid", AlertDescription.decrypt_error),
    8: ("CRL signature invalid", AlertDescription.decrypt_error),
    9: ("certificate not yet valid", AlertDescription.bad_certificate),
    10: ("certificate expired", AlertDescription.certificate_expired),
    11: ("CRL not yet valid", AlertDescription.bad_certificate),
    12: ("CRL expired", AlertDescription.certificate_expired),
    18: (
        "unknown CA: self-signed certificate not among the trusted CAs",
        AlertDescription.unknown_ca,
    ),
    19: ("unknown CA: self-signed CA in chain not trusted", AlertDescription.unknown_ca),
    20: ("unknown CA: issuer not among the trusted CAs", AlertDescription.unknown_ca),
    21: ("unknown CA: cannot verify the leaf signature", AlertDescription.unknown_ca),
    23: ("certificate revoked", AlertDescription.certificate_revoked),
    24: ("invalid CA certificate in chain", AlertDescription.unknown_ca),
    26: (
        "unsupported purpose: extended key usage does not allow this role",
        AlertDescription.unsupported_certificate,
    ),
    28: ("certificate rejected for this purpose", AlertDescription.bad_certificate),
}


@dataclass
class _Shared:
    """Mutable cache hung on a frozen configuration (the OpenSSL context is built once)."""

    context: SSL.Context | None = None


def _load_chain(pem: bytes) -> list[x509.Certificate]:
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise ValueError("no certificate in PEM data")
    return certs


def _install_trust(
    ctx: SSL.Context, ca_pems: tuple[bytes, ...], crl_pems: tuple[bytes, ...]
) -> None:
    store = ctx.get_cert_store()
    if store is None:  # pragma: no cover - OpenSSL always has one
        raise RuntimeError("SSL context without certificate store")
    _fill_store(store, ca_pems, crl_pems)


def _fill_store(
    store: crypto.X509Store, ca_pems: tuple[bytes, ...], crl_pems: tuple[bytes, ...]
) -> None:
    for pem in ca_pems:
        for cert in _load_chain(pem):
            store.add_cert(crypto.X509.from_cryptography(cert))
    if crl_pems:
        for pem in crl_pems:
            store.add_crl(x509.load_pem_x509_crl(pem))
        store.set_flags(crypto.X509StoreFlags.CRL_CHECK)


def _install_identity(ctx: SSL.Context, chain_pem: bytes, key_pem: bytes) -> None:
    chain = _load_chain(chain_pem)
    ctx.use_certificate(chain[0])
    for extra in chain[1:]:
        ctx.add_extra_chain_cert(extra)
    key = serialization.load_pem_private_key(key_pem, password=None)
    try:
        ctx.use_privatekey(key)  # type: ignore[arg-type]
        ctx.check_privatekey()
    except SSL.Error:
        raise ValueError("the private key does not match the certificate") from None


def _pin_chain(ctx: SSL.Context, chain_pem: bytes, ca_pems: tuple[bytes, ...]) -> None:
    """Build our own certificate chain once, instead of once per handshake.

    When the configured chain holds only the end-entity certificate, OpenSSL completes the
    Certificate message itself on every handshake ("auto chain": ``ssl_add_cert_chain``
    runs ``X509_verify_cert`` against the context's store, a signature check per chain
    link, and sends the chain it built, trust anchor included).  Here the same store
    contents (``ca_pems``) build that chain now and it becomes the context's extra chain,
    which OpenSSL sends as is: the same certificates in the same order, without the
    per-handshake verification.  When the chain does not verify now (no issuer among
    ``ca_pems``, a certificate outside its validity...), nothing is pinned and OpenSSL
    keeps building what it can per handshake, as before.  A configured chain with
    intermediates is sent as configured either way."""
    chain = _load_chain(chain_pem)
    if len(chain) > 1 or not ca_pems:
        return
    store = crypto.X509Store()
    _fill_store(store, ca_pems, ())
    leaf = crypto.X509.from_cryptography(chain[0])
    try:
        built = crypto.X509StoreContext(store, leaf).get_verified_chain()
    except crypto.X509StoreContextError:
        return
    for cert in built[1:]:
        ctx.add_extra_chain_cert(cert.to_cryptography())


def _check_sizes(fragment_size: int, max_message: int) -> None:
    if fragment_size < 1:
        raise ValueError("fragment_size must be positive")
    if max_message < fragment_size:
        raise ValueError("max_message smaller than fragment_size")


@dataclass(frozen=True)
class TlsServerConfig:
    """What an EAP server needs for the TLS part of EAP-TLS / TTLS / PEAP.

    ``fragment_size`` is the number of TLS bytes per EAP message (see
    :mod:`ike.eap_tls.framing`).  ``require_client_cert`` (EAP-TLS) demands and verifies a
    client certificate; ``request_client_cert`` asks for one but accepts its absence (a
    TTLS/PEAP option).  ``session_resumption`` enables TLS 1.2 session IDs / tickets and TLS
    1.3 PSK tickets (EAP-TLS only).  Tickets keep no state on the server; OpenSSL's internal
    session-ID cache is bounded by its default of 20480 entries (pyOpenSSL cannot change
    it) and entries expire after ``session_lifetime`` seconds.  Sessions are cached only
    after a handshake whose certificate checks passed; a resumed session is checked again
    against the clock and the EAP identity.
    """

    cert_chain_pem: bytes
    key_pem: bytes
    ca_pems: tuple[bytes, ...] = ()
    min_version: TlsVersion = TlsVersion.TLS1_2
    max_version: TlsVersion = TlsVersion.TLS1_3
    fragment_size: int = 1024
    require_client_cert: bool = True
    crl_pems: tuple[bytes, ...] = ()
    clock: Clock = system_clock
    request_client_cert: bool = False
    bind_identity: bool = True
    session_resumption: bool = False
    session_lifetime: int = 3600
    length_always: bool = False
    max_message: int = 64 * 1024
    _shared: _Shared = field(default_factory=_Shared, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Fail at configuration time, not at the first authentication: bad PEM, a key that
        # does not match the certificate, inconsistent versions or sizes.
        _check_sizes(self.fragment_size, self.max_message)
        self.context()

    def context(self) -> SSL.Context:
        """The shared OpenSSL context (built on first use)."""
        if self._shared.context is None:
            self._shared.context = self._build()
        return self._shared.context

    def _build(self) -> SSL.Context:
        if self.min_version > self.max_version:
            raise ValueError("min_version above max_version")
        if (self.require_client_cert or self.request_client_cert) and not self.ca_pems:
            raise ValueError("client certificates need ca_pems to verify them against")
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(int(self.min_version))
        ctx.set_max_proto_version(int(self.max_version))
        ctx.set_options(SSL.OP_NO_RENEGOTIATION)
        _install_identity(ctx, self.cert_chain_pem, self.key_pem)
        _install_trust(ctx, self.ca_pems, self.crl_pems)
        _pin_chain(ctx, self.cert_chain_pem, self.ca_pems)
        if self.require_client_cert or self.request_client_cert:
            # CertificateRequest names the acceptable CAs so clients pick the right cert.
            for pem in self.ca_pems:
                for cert in _load_chain(pem):
                    ctx.add_client_ca(cert)
        ctx.set_session_id(b"nea-gateway-eap")
        if self.session_resumption:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
            ctx.set_timeout(self.session_lifetime)
        else:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            ctx.set_options(SSL.OP_NO_TICKET)
        return ctx


class TlsSessionCache:
    """Bounded LRU of peer-side TLS sessions, keyed by the server we talked to."""

    def __init__(self, max_entries: int = 64) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[str, SSL.Session] = collections.OrderedDict()

    def get(self, key: str) -> SSL.Session | None:
        session = self._entries.get(key)
        if session is not None:
            self._entries.move_to_end(key)
        return session

    def put(self, key: str, session: SSL.Session) -> None:
        self._entries[key] = session
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class TlsPeerConfig:
    """What an EAP peer needs: the CAs that sign the server, optionally its own certificate.

    ``server_name`` (if set) must match a DNS subjectAltName or the CN of the server
    certificate.  ``session_cache`` enables resumption, keyed by ``server_name`` (or
    ``"default"``).

    ``allow_legacy_server_connect`` accepts a TLS 1.2 server that sends no RFC 5746
    renegotiation_info (OpenSSL's ``SSL_OP_LEGACY_SERVER_CONNECT``).  strongSwan's libtls
    (charon as the EAP server) is such a server, and OpenSSL 3 refuses it by default
    ("unsafe legacy renegotiation disabled").  Accepting it is safe here because the context
    refuses renegotiation altogether (``OP_NO_RENEGOTIATION``), so the prefix attack RFC 5746
    closes cannot happen.  Off by default.
    """

    ca_pems: tuple[bytes, ...] = ()
    cert_chain_pem: bytes | None = None
    key_pem: bytes | None = None
    server_name: str | None = None
    min_version: TlsVersion = TlsVersion.TLS1_2
    max_version: TlsVersion = TlsVersion.TLS1_3
    fragment_size: int = 1024
    verify_server: bool = True
    crl_pems: tuple[bytes, ...] = ()
    clock: Clock = system_clock
    session_cache: TlsSessionCache | None = None
    length_always: bool = False
    max_message: int = 64 * 1024
    allow_legacy_server_connect: bool = False
    _shared: _Shared = field(default_factory=_Shared, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_sizes(self.fragment_size, self.max_message)
        self.context()

    @property
    def cache_key(self) -> str:
        return self.server_name or "default"

    def context(self) -> SSL.Context:
        if self._shared.context is None:
            self._shared.context = self._build()
        return self._shared.context

    def _build(self) -> SSL.Context:
        if self.min_version > self.max_version:
            raise ValueError("min_version above max_version")
        if self.verify_server and not self.ca_pems:
            raise ValueError("verify_server needs ca_pems")
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(int(self.min_version))
        ctx.set_max_proto_version(int(self.max_version))
        ctx.set_options(SSL.OP_NO_RENEGOTIATION)
        if self.allow_legacy_server_connect:
            ctx.set_options(SSL.OP_LEGACY_SERVER_CONNECT)
        if self.cert_chain_pem is not None:
            if self.key_pem is None:
                raise ValueError("cert_chain_pem without key_pem")
            _install_identity(ctx, self.cert_chain_pem, self.key_pem)
        _install_trust(ctx, self.ca_pems, self.crl_pems)
        if self.cert_chain_pem is not None:
            _pin_chain(ctx, self.cert_chain_pem, self.ca_pems)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_CLIENT)
        return ctx


def _names(cert: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
    """(CNs, DNS SANs, e-mail SANs) of a certificate."""
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return cns, [], []
    return cns, san.get_values_for_type(x509.DNSName), san.get_values_for_type(x509.RFC822Name)


def identity_matches(cert: x509.Certificate, identity: str) -> bool:
    """EAP identity bound to the certificate: equal to the CN, or a DNS / e-mail SAN
    (case-insensitively for the SANs, whose syntax is case-insensitive).  A Windows machine
    identity ``host/<fqdn>`` matches a DNS SAN (or the CN) equal to ``<fqdn>``."""
    cns, dns, emails = _names(cert)
    if identity in cns:
        return True
    folded = identity.casefold()
    if any(folded == n.casefold() for n in dns + emails):
        return True
    if folded.startswith("host/"):
        fqdn = folded[len("host/") :]
        return any(fqdn == n.casefold() for n in dns + cns)
    return False


def server_name_matches(cert: x509.Certificate, name: str) -> bool:
    """``name`` equals a DNS SAN (a leading ``*.`` wildcard covers one label) or, without
    DNS SANs, the CN."""
    cns, dns, _ = _names(cert)
    folded = name.casefold()
    for pattern in dns:
        p = pattern.casefold()
        if p == folded:
            return True
        if p.startswith("*.") and "." in folded and folded.split(".", 1)[1] == p[2:]:
            return True
    if not dns:
        return any(folded == cn.casefold() for cn in cns)
    return False


def verify_server_chain(config: TlsPeerConfig, chain: Sequence[x509.Certificate]) -> None:
    """The server-certificate checks of a full handshake, for a chain that did not arrive
    through OpenSSL's handshake (EAP-FAST's fallback from PAC resumption, which runs on the
    project's own TLS 1.2 code): the chain to ``ca_pems`` (and ``crl_pems``) at the config's
    clock, serverAuth if the leaf restricts its use, ``server_name``.  Raises
    :class:`TlsFailure` with the alert a TLS client sends for the refusal."""
    if not config.verify_server:
        return
    if not chain:
        raise TlsFailure("server sent no certificate", AlertDescription.handshake_failure)
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    store = crypto.X509Store()
    _fill_store(store, config.ca_pems, config.crl_pems)
    store.set_time(config.clock().astimezone(datetime.UTC).replace(tzinfo=None))
    context = crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(c) for c in chain[1:]],
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as exc:
        errno, depth = int(exc.errors[0]), int(exc.errors[1])
        cause, alert = _VERIFY_ERRORS.get(errno, (str(exc), AlertDescription.bad_certificate))
        raise TlsFailure(
            f"server certificate {subject!r} (depth {depth}) refused: {cause}"
            f" (X509 error {errno}; alert {alert.name})",
            alert,
        ) from None
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and not {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    } & set(usages):
        raise TlsFailure(
            f"server certificate {subject!r} is not for TLS servers (no serverAuth usage)",
            AlertDescription.unsupported_certificate,
        )
    if config.server_name is not None and not server_name_matches(leaf, config.server_name):
        raise TlsFailure(
            f"server certificate {subject!r} does not match server name "
            f"{config.server_name!r} (alert bad_certificate)",
            AlertDescription.bad_certificate,
        )


class TlsSession:
    """One TLS connection over memory BIOs.  Server or client, chosen by the config type."""

    def __init__(
        self,
        config: TlsServerConfig | TlsPeerConfig,
        *,
        identity: str | None = None,
    ) -> None:
        self.config = config
        self.is_server = isinstance(config, TlsServerConfig)
        self.identity = identity
        self.failure_reason: str | None = None
        self.failure_alert: AlertDescription | None = None
        self._handshake_done = False
        self._closed = False
        ctx = config.context()
        self._conn = SSL.Connection(ctx, None)
        if isinstance(config, TlsServerConfig):
            if config.require_client_cert:
                mode = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            elif config.request_client_cert:
                mode = SSL.VERIFY_PEER
            else:
                mode = SSL.VERIFY_NONE
            # A server that asks for no client certificate receives none, so it has nothing
            # to verify: it keeps the context's VERIFY_NONE without our callback (a cffi
            # closure per session) and needs no verification time on the store.  A peer
            # always installs it: OpenSSL clients verify the server's chain, and call the
            # callback, even under VERIFY_NONE.
            self._verifies = mode != SSL.VERIFY_NONE
            if self._verifies:
                self._install_verify(mode)
            self._conn.set_accept_state()
        else:
            mode = SSL.VERIFY_PEER if config.verify_server else SSL.VERIFY_NONE
            self._verifies = True
            self._install_verify(mode)
            if config.server_name is not None:
                self._conn.set_tlsext_host_name(config.server_name.encode("idna"))
            if config.session_cache is not None:
                cached = config.session_cache.get(config.cache_key)
                if cached is not None:
                    self._conn.set_session(cached)
            self._conn.set_connect_state()

    # -- certificate policy ----------------------------------------------------------------
    def _set_time(self) -> None:
        store = self.config.context().get_cert_store()
        if store is not None:
            now = self.config.clock().astimezone(datetime.UTC)
            store.set_time(now.replace(tzinfo=None))

    def _refuse(self, reason: str, alert: AlertDescription | None) -> bool:
        if self.failure_reason is None:
            self.failure_reason = reason
            self.failure_alert = alert
        return False

    def _install_verify(self, mode: int) -> None:
        """Install the verify callback directly on the SSL object.

        pyOpenSSL's ``set_verify`` wrapper cannot choose the X509 error (and hence the TLS
        alert) of a refusal made by the callback itself: OpenSSL then reports an unspecified
        error and sends ``internal_error``.  Our own cffi callback sets
        X509_V_ERR_CERT_REJECTED for policy refusals (identity binding), which OpenSSL maps
        to ``bad_certificate``.
        """
        self._raw_verify = _openssl_ffi.callback(
            "int (*)(int, X509_STORE_CTX *)", self._verify_raw
        )
        _openssl_lib.SSL_set_verify(self._conn._ssl, mode, self._raw_verify)

    def _verify_raw(self, ok: int, store_ctx: Any) -> int:
        try:
            x509 = _openssl_lib.X509_STORE_CTX_get_current_cert(store_ctx)
            _openssl_lib.X509_up_ref(x509)
            cert = crypto.X509._from_raw_x509_ptr(x509).to_cryptography()
            errno = int(_openssl_lib.X509_STORE_CTX_get_error(store_ctx))
            depth = int(_openssl_lib.X509_STORE_CTX_get_error_depth(store_ctx))
            accept = self._verify(cert, errno, depth, ok)
        except Exception as exc:  # never let an exception cross the C boundary
            self._refuse(f"certificate check failed: {exc!r}", AlertDescription.internal_error)
            return 0
        if accept:
            _openssl_lib.X509_STORE_CTX_set_error(store_ctx, _openssl_lib.X509_V_OK)
            return 1
        if ok:
            # Our own policy refused a chain OpenSSL accepted.
            _openssl_lib.X509_STORE_CTX_set_error(
                store_ctx, _openssl_lib.X509_V_ERR_CERT_REJECTED
            )
        return 0

    def _verify(self, cert: x509.Certificate, errno: int, depth: int, ok: int) -> bool:
        whose = "client" if self.is_server else "server"
        subject = cert.subject.rfc4514_string()
        if not ok:
            known = _VERIFY_ERRORS.get(errno)
            if known is None:
                return self._refuse(
                    f"{whose} certificate {subject!r} (depth {depth}) refused: X509 "
                    f"verification error {errno} (alert chosen by OpenSSL)",
                    None,
                )
            cause, alert = known
            return self._refuse(
                f"{whose} certificate {subject!r} (depth {depth}) refused: {cause}"
                f" (X509 error {errno}; alert {alert.name})",
                alert,
            )
        if depth == 0:
            return self._check_end_entity(cert)
        return True

    def _check_end_entity(self, cert: x509.Certificate) -> bool:
        subject = cert.subject.rfc4514_string()
        config = self.config
        if isinstance(config, TlsServerConfig):
            if config.bind_identity and self.identity is not None:
                if not identity_matches(cert, self.identity):
                    return self._refuse(
                        f"client certificate {subject!r} does not match EAP identity "
                        f"{self.identity!r} (alert bad_certificate)",
                        AlertDescription.bad_certificate,
                    )
        elif config.server_name is not None and not server_name_matches(cert, config.server_name):
            return self._refuse(
                f"server certificate {subject!r} does not match server name "
                f"{config.server_name!r} (alert bad_certificate)",
                AlertDescription.bad_certificate,
            )
        return True

    def _check_resumed(self) -> None:
        """A resumed session skips the verify callback: re-check the cached peer certificate
        against the clock and the identity of this authentication."""
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None:
            if isinstance(self.config, TlsServerConfig) and self.config.require_client_cert:
                raise self._fail("resumed session carries no client certificate")
            return
        now = self.config.clock()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise self._fail("certificate of the resumed session is outside its validity")
        if not self._check_end_entity(cert):
            raise self._fail(self.failure_reason or "resumed session identity mismatch")

    def _fail(self, reason: str) -> TlsFailure:
        if self.failure_reason is None:
            self.failure_reason = reason
        return TlsFailure(self.failure_reason, self.failure_alert)

    # -- data flow ---------------------------------------------------------------------------
    def initiate(self) -> bytes:
        """Client: produce the ClientHello."""
        if self.is_server:
            raise TypeError("initiate() is for the client side")
        self._progress()
        return self.data_to_send()

    def receive(self, data: bytes) -> None:
        """Feed TLS records from the other side; raises :class:`TlsFailure`."""
        if self._closed:
            raise self._fail("TLS connection already closed")
        if data:
            self._conn.bio_write(data)
        self._progress()

    def _progress(self) -> None:
        if self._handshake_done:
            return
        if self._verifies:
            self._set_time()
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._closed = True
            raise self._fail(f"TLS handshake failed: {_ssl_error_text(exc)}") from None
        self._handshake_done = True
        if self.session_reused:
            self._check_resumed()

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_done

    def data_to_send(self) -> bytes:
        out = bytearray()
        while True:
            try:
                chunk = self._conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def read_application_data(self) -> bytes:
        """All decrypted application data available now (b"" if none)."""
        if not self._handshake_done:
            return b""
        out = bytearray()
        while True:
            try:
                chunk = self._conn.recv(65536)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._closed = True
                raise self._fail("peer closed the TLS connection (close_notify)") from None
            except SSL.Error as exc:
                self._closed = True
                raise self._fail(f"TLS failure: {_ssl_error_text(exc)}") from None
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def write_application_data(self, data: bytes) -> None:
        if not self._handshake_done:
            raise TlsFailure("application data before the handshake completed")
        if data:
            self._conn.sendall(data)

    # -- results ---------------------------------------------------------------------------
    @property
    def version(self) -> TlsVersion:
        name = self._conn.get_protocol_version_name()
        return TlsVersion.TLS1_3 if name == "TLSv1.3" else TlsVersion.TLS1_2

    @property
    def session_reused(self) -> bool:
        """True for an abbreviated (resumed) handshake (``SSL_session_reused``).

        pyOpenSSL's public API lacks it; its cffi binding has it (``OpenSSL._util.lib``).
        """
        if not self._handshake_done:
            return False
        return bool(_openssl_lib.SSL_session_reused(self._conn._ssl))

    def export(self, label: bytes, length: int, context: bytes | None = None) -> bytes:
        """RFC 5705 / RFC 8446 7.5 exporter."""
        return self._conn.export_keying_material(label, length, context)

    def client_random(self) -> bytes:
        value = self._conn.client_random()
        if value is None:
            raise TlsFailure("no client random yet")
        return value

    def server_random(self) -> bytes:
        value = self._conn.server_random()
        if value is None:
            raise TlsFailure("no server random yet")
        return value

    def master_key(self) -> bytes:
        value = self._conn.master_key()
        if value is None:
            raise TlsFailure("no master secret yet")
        return value

    def cipher_name(self) -> str | None:
        return self._conn.get_cipher_name()

    def peer_certificate(self) -> x509.Certificate | None:
        return self._conn.get_peer_certificate(as_cryptography=True)

    def remember_session(self) -> None:
        """Peer: store the session in the configured cache (after a successful method)."""
        config = self.config
        if isinstance(config, TlsPeerConfig) and config.session_cache is not None:
            session = self._conn.get_session()
            if session is not None:
                config.session_cache.put(config.cache_key, session)

    def forget_session(self) -> None:
        config = self.config
        if isinstance(config, TlsPeerConfig) and config.session_cache is not None:
            config.session_cache.discard(config.cache_key)


def _ssl_error_text(exc: SSL.Error) -> str:
    parts: list[str] = []
    for arg in exc.args:
        if isinstance(arg, list):
            for item in arg:
                if isinstance(item, tuple) and item:
                    parts.append(str(item[-1]))
        else:
            parts.append(str(arg))
    return "; ".join(p for p in parts if p) or exc.__class__.__name__
