"""``nea-gateway init DIR``: a working directory for a new gateway.

Writes, under ``DIR``::

    certs/ca.crt          the CA certificate (trust anchor for clients and for the gateway)
    private/ca.key        the CA key, 0600 -- only when init made the CA (move it offline)
    certs/gw.crt          the gateway certificate, issued by the CA
    private/gw.key        its key, 0600 (PKCS#8 PEM, unencrypted: the daemon reads it unattended)
    gateway.toml          the daemon configuration (``nea-gateway run -c DIR/gateway.toml``), 0600
    policy.toml           the posture policy (a copy of examples/policy.toml)
    var/nea-evidence.db   the evidence database (SQLite; or ``--database URL``)
    var/nea-pool.db       the SQL pool database ``nea-pool --db`` manages (SQLite)

The gateway certificate carries ``--name`` (default: this host's fully qualified name) as its
subjectAltName (a DNS name; for an IP address an iPAddress SAN plus the same text as a dNSName,
which Windows wants) and its CN, the EKUs
serverAuth (EAP-TLS/TTLS/PEAP server; Windows requires it) and iKEIntermediate
(1.3.6.1.5.5.8.2.2, which older macOS releases want for IKEv2), and an ECDSA P-256 key
(``--rsa``: RSA 3072; with ``--eap fast`` the gateway key is always RSA, the only kind
wpa_supplicant's and Cisco's EAP-FAST provisioning accept). ``--ca-cert`` / ``--ca-key``
issue it from an existing CA instead of making one (the CA key is then not copied).

The configuration it writes is checked with the daemon's own loader
(:func:`gateway.daemon.config.load_config`) and composed
(:func:`gateway.daemon.compose.compose`, which reads the certificates and keys) before init
reports success, and the policy with :func:`nea.policy.load_policy`.

Existing files are never overwritten without ``--force``; the databases are not files init
owns: their schemas are created or brought up to date, their rows kept.

Exit status: 0 done, 2 usage error, existing files without ``--force``, or a CA that cannot
be used; 1 when a check of the written files failed (a bug: please report it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from gateway.daemon.config import random_secret

__all__ = [
    "IKE_INTERMEDIATE_EKU",
    "InitError",
    "InitResult",
    "add_arguments",
    "init_directory",
    "main",
    "run_from_args",
]

IKE_INTERMEDIATE_EKU = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
"""The "IP Security IKE Intermediate" EKU (iKEIntermediate, IETF IPsec arc 1.3.6.1.5.5.8): older
macOS releases accept an IKEv2 server certificate with it; strongSwan recommends it next to
serverAuth for Windows and macOS clients."""

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_POLICY = REPO / "examples" / "policy.toml"

EAP_METHODS = ("ttls", "peap", "fast", "tls")
"""Methods ``--eap`` offers for the generated road-warrior connection."""

CA_DAYS = 3650
CERT_DAYS = 825

# Relative to DIR.
CA_CERT = Path("certs/ca.crt")
CA_KEY = Path("private/ca.key")
GW_CERT = Path("certs/gw.crt")
GW_KEY = Path("private/gw.key")
CONFIG = Path("gateway.toml")
POLICY = Path("policy.toml")
EVIDENCE_DB = Path("var/nea-evidence.db")
POOL_DB = Path("var/nea-pool.db")
SOCKET = Path("var/nea-gateway.ctl")


class InitError(Exception):
    """Init refused (existing files, a CA that cannot be used): exit status 2."""


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_directory` wrote."""

    directory: Path
    config: Path
    policy: Path
    ca_cert: Path
    ca_key: Path | None
    gateway_cert: Path
    gateway_key: Path
    evidence_url: str | None
    pool_url: str | None
    users: tuple[str, ...] = ()
    written: tuple[Path, ...] = field(default=())


# --------------------------------------------------------------------------------------------
# Certificates


def _new_key(use_rsa: bool) -> PrivateKey:
    if use_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, ca: bool, key: PrivateKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey) and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(name: str, use_rsa: bool, now: _dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = _new_key(use_rsa)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nea-gateway"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"nea-gateway CA {name}"[:64]),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, key=key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _sans(name: str) -> list[x509.GeneralName]:
    """A DNS name, or for an address an iPAddress SAN (what IKE ID_IPV4/6_ADDR identities
    are matched against) plus the same text as a dNSName: Windows' IKEv2 client only looks
    at dNSName SANs and fails with error 13801 otherwise."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return [x509.DNSName(name)]
    return [x509.IPAddress(address), x509.DNSName(str(address))]


def _issue_gateway(
    name: str,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    use_rsa: bool,
    days: int,
    now: _dt.datetime,
) -> tuple[x509.Certificate, PrivateKey]:
    key = _new_key(use_rsa)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nea-gateway"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name[:64]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(min(now + _dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, key=key), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE_EKU]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(_sans(name)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, PrivateKey]:
    try:
        cert_data = cert_path.read_bytes()
        key_data = key_path.read_bytes()
    except OSError as exc:
        raise InitError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        cert = (
            x509.load_pem_x509_certificate(cert_data)
            if b"-----BEGIN" in cert_data
            else x509.load_der_x509_certificate(cert_data)
        )
    except ValueError as exc:
        raise InitError(f"{cert_path}: not a PEM or DER certificate ({exc})") from None
    try:
        loaded = (
            serialization.load_pem_private_key(key_data, password=None)
            if b"-----BEGIN" in key_data
            else serialization.load_der_private_key(key_data, password=None)
        )
    except (ValueError, TypeError) as exc:
        raise InitError(f"{key_path}: not an unencrypted PEM or DER private key ({exc})") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InitError(f"{key_path}: only ECDSA and RSA CA keys are supported")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if loaded.public_key().public_bytes(
        serialization.Encoding.DER, pub
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise InitError(f"{key_path} is not the key of {cert_path}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise InitError(f"{cert_path} is not a CA certificate (basicConstraints CA:TRUE missing)")
    now = _dt.datetime.now(_dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InitError(f"{cert_path} is not valid now (expired or not yet valid)")
    return cert, loaded


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --------------------------------------------------------------------------------------------
# Configuration text


def _q(text: str) -> str:
    """A TOML basic string."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{out}"'


def _secret() -> str:
    return random_secret(18)


SQL_POOL_TIMEOUT = 86400
"""Lease timeout of the SQL pools init creates: a released address stays its identity's for a
day, then anyone may have it (attr-sql's ``--timeout``; ``nea-pool --replace`` changes it)."""


def _pool_lines(pool: str, isolate_pool: str, sql_pool_url: str | None) -> list[str]:
    if sql_pool_url is None:
        return [
            "[pools.rw]",
            f"addrs = {_q(pool)}",
            "",
            "[pools.quarantine]",
            f"addrs = {_q(isolate_pool)}",
            "quarantine = true",
        ]
    shared = not sql_pool_url.startswith("sqlite:")
    lines = [
        "# SQL pools (strongSwan attr-sql semantics) in the pool database; init created them with",
        f"# {pool} and {isolate_pool}.  Manage them with nea-pool:",
        f"#   nea-pool --db {_redacted(sql_pool_url)} --status",
    ]
    for name in ("rw", "quarantine"):
        lines += ["", f"[pools.{name}]", f"database = {_q(sql_pool_url)}"]
        if shared:
            lines += [
                "# several gateways share this database: one gateway's start must not free",
                "# the leases of the others",
                "crash_recovery = false",
            ]
    return lines


def _redacted(url: str) -> str:
    from gateway.db.engine import redacted

    return redacted(url)


def render_config(
    *,
    name: str,
    listen: str,
    eap: str,
    evidence_url: str | None,
    pool: str,
    isolate_pool: str,
    networks: str,
    remediation: str,
    users: Sequence[tuple[str, str]],
    radius_clients: Sequence[tuple[str, str]],
    ca_key_made: bool,
    posture: bool = True,
    sql_pool_url: str | None = None,
    pac_key: bytes | None = None,
) -> str:
    """The ``gateway.toml`` text (paths relative to the file, as the loader reads them)."""
    radius_posture = posture
    tunnel = eap in ("ttls", "peap", "fast")
    posture = posture and tunnel
    inner = '["mschapv2", "gtc"]' if eap == "fast" else '["mschapv2", "md5"]'
    lines = [
        "# nea-gateway configuration written by `nea-gateway init`.",
        "# Every key is described in docs/config.md; paths are relative to this file.",
        "#",
        "#   nea-gateway check -c gateway.toml      # check it (reads certificates and keys)",
        "#   nea-gateway run -c gateway.toml        # run the daemon",
        "#   nea-gateway list-sas -c gateway.toml   # ask it (control socket below)",
        "#",
        "# This file holds secrets (EAP passwords, RADIUS shared secrets): keep it mode 0600.",
        "",
        "# Where CHILD_SAs go: xfrm (kernel IPsec), userspace (TUN + ESP in this process),",
        "# none (log only), auto (xfrm or userspace when root and available, else none).",
        'dataplane = "auto"',
        "",
        "[ike]",
        f"listen = {_q(listen)}",
        "port = 500",
        "port_nat_t = 4500",
        "",
        "[control]",
        f"socket = {_q(SOCKET.as_posix())}",
        "",
        "# Levels per strongSwan subsystem: -1 silent, 0 audit, 1 control, 2 controlmore,",
        "# 3 raw, 4 private (secrets!).  `nea-gateway run -v` raises every level by one.",
        "[log]",
        "default = 1",
        "ike = 1",
        "tnc = 1",
        "",
        "# ---------------------------------------------------------------- pools",
        *_pool_lines(pool, isolate_pool, sql_pool_url),
        "",
        "# ---------------------------------------------------------------- connections",
    ]
    method = f"eap-{eap}"
    inner_text = "MS-CHAPv2 or GTC" if eap == "fast" else "MS-CHAPv2 or MD5"
    if posture:
        lines += [
            f"# Road warriors: {method.upper()} (inner {inner_text} against [secrets.eap-*]",
            "# passwords), then the PT-EAP posture assessment (RFC 7171) inside the tunnel.",
            "# The verdict picks the child: allow -> the networks, isolate -> remediation only,",
            "# no access -> the IKE_SA fails (AUTHENTICATION_FAILED).",
        ]
    elif tunnel:
        lines += [
            f"# Road warriors: {method.upper()} (inner {inner_text} against [secrets.eap-*]",
            "# passwords), no posture assessment (init --no-posture): every client is allowed.",
        ]
    else:
        lines += [
            "# Road warriors with a client certificate from certs/ca.crt: EAP-TLS (no posture:",
            "# posture runs inside a tunnel method: eap-ttls, eap-peap, eap-fast).",
        ]
    lines += [
        "# A second connection needs its own local.id (clients choose it with their remote id),",
        "# and the gateway certificate must carry that id as a subjectAltName.",
        "[connections.rw]",
        'pools = ["rw"]',
        "",
        "[connections.rw.local]",
        'auth = "pubkey"',
        f"certs = [{_q(GW_CERT.as_posix())}]",
        f"id = {_q(name)}",
        "",
        "[connections.rw.remote]",
        f"auth = {_q(method)}",
        'id = "%any"',
    ]
    if tunnel:
        lines.append(f"eap_inner = {inner}")
    if eap == "fast":
        lines += [
            "# PAC provisioning: 2 = inside a tunnel authenticated by the gateway certificate",
            "# (1 = anonymous Diffie-Hellman, no server authentication; 3 = either).",
            "fast_provisioning = 2",
        ]
    if posture:
        lines += [
            "",
            "[connections.rw.posture]",
            "assess = true",
            'method = "pt-eap"',
            "",
            "[connections.rw.children.allow]",
            f"local_ts = {_q(networks)}",
            'verdict = "allow"',
            "",
            "[connections.rw.children.isolate]",
            f"local_ts = {_q(remediation)}",
            'verdict = "isolate"',
            'pools = ["quarantine"]',
        ]
    else:
        lines += ["", "[connections.rw.children.net]", f"local_ts = {_q(networks)}"]
    lines += [
        "",
        "# ---------------------------------------------------------------- credentials",
        "[secrets.private-gw]",
        f"file = {_q(GW_KEY.as_posix())}",
        "",
    ]
    if users:
        lines.append("# EAP users (passwords generated by init; change them as you like).")
    else:
        lines += [
            "# EAP users for the password methods (MD5, MS-CHAPv2, GTC, TTLS/PEAP inner):",
            "# [secrets.eap-alice]",
            '# id = "alice"',
            '# secret = "a long random password"',
        ]
    for ident, password in users:
        section = "".join(c if c.isalnum() or c in "-_" else "_" for c in ident)
        lines += [f"[secrets.eap-{section}]", f"id = {_q(ident)}", f"secret = {_q(password)}", ""]
    if pac_key is not None:
        lines += [
            "# EAP-FAST PAC-Opaque key (AES-256-GCM): PACs stay valid over restarts.  To rotate,",
            "# put a new key in `secret` and the old one in `previous` (it then opens PACs for",
            "# one more PAC lifetime).",
            "[secrets.pac-fast]",
            f"secret = {_q('0x' + pac_key.hex())}",
            "",
        ]
    lines += [
        "",
        "# Trust anchor for client certificates (EAP-TLS, IKE pubkey).",
        "[authorities.ca]",
        f"cacert = {_q(CA_CERT.as_posix())}",
        '# crl = "certs/ca.crl"',
        "",
        "# ---------------------------------------------------------------- posture",
        "[nea]",
        'validators = ["test", "ports", "os", "swima"]',
        f"policy = {_q(POLICY.as_posix())}",
    ]
    if evidence_url is None:
        lines.append("database = false")
    else:
        lines.append(f"database = {_q(evidence_url)}")
    lines.append('recommendation_policy = "default"')
    if radius_clients:
        lines += [
            "",
            "# ---------------------------------------------------------------- 802.1X",
            "# Switches and access points (RADIUS, RFC 2865/3579); with posture, PT-EAP runs",
            "# inside PEAP/TTLS (the supplicant needs a NEA client); the verdict becomes a VLAN.",
            "[radius]",
            f"listen = {_q(listen)}",
            "auth_port = 1812",
            "acct_port = 1813",
            'methods = ["peap", "ttls", "tls"]',
            'inner_methods = ["mschapv2"]',
            f"certs = [{_q(GW_CERT.as_posix())}]",
            f"cacerts = [{_q(CA_CERT.as_posix())}]",
            f"posture = {'true' if radius_posture else 'false'}",
            "",
            "# [radius.vlans]",
            '# allow = "10"',
            '# isolate = "99"',
        ]
        for i, (address, secret) in enumerate(radius_clients):
            lines += [
                "",
                "[[radius.clients]]",
                f"address = {_q(address)}",
                f"secret = {_q(secret)}",
                f"name = {_q(f'nas{i + 1}')}",
            ]
    if ca_key_made:
        lines += [
            "",
            "# private/ca.key signs client certificates; the daemon does not need it.",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Writing


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` with ``mode`` from the start (no window where a key is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of an interrupted run
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # umask may have taken bits away; never added any
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def default_name() -> str:
    """This host's fully qualified name (``socket.getfqdn()``), else its host name."""
    fqdn = socket.getfqdn()
    return fqdn if fqdn and fqdn != "localhost" else socket.gethostname()


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def init_directory(
    path: Path | str,
    *,
    name: str | None = None,
    use_rsa: bool = False,
    ca_cert: Path | str | None = None,
    ca_key: Path | str | None = None,
    force: bool = False,
    listen: str = "0.0.0.0",  # noqa: S104 - a gateway answers on every address by default
    eap: str = "ttls",
    posture: bool = True,
    database: str | None = "sqlite",
    pool_database: bool | str = True,
    sql_pools: bool = False,
    pool: str = "10.3.0.0/24",
    isolate_pool: str = "10.99.0.0/24",
    networks: str = "10.1.0.0/16",
    remediation: str = "10.1.99.0/24",
    users: Sequence[str] = (),
    radius_clients: Sequence[str] = (),
    days: int = CERT_DAYS,
) -> InitResult:
    """Create a gateway directory at ``path`` (see the module docstring).

    ``posture``: PT-EAP inside the TTLS/PEAP/FAST connection (ignored for ``eap="tls"``) and in
    ``[radius]``.
    ``database``: ``"sqlite"`` (``DIR/var/nea-evidence.db``), a database URL
    (``postgresql://...``), or None for no evidence database. ``users``: EAP identities to
    create with random passwords (written into ``gateway.toml``). ``radius_clients``: NAS
    addresses or prefixes; each gets a random shared secret and ``[radius]`` is written.
    ``pool_database``: True (``DIR/var/nea-pool.db``), a URL, or False for none;
    ``sql_pools``: create the pools ``rw`` and ``quarantine`` there (kept if they exist) and
    have the daemon use them instead of memory pools.
    Raises :class:`InitError` for files that exist (without ``force``) and unusable CAs."""
    directory = Path(path).expanduser()
    name = name or default_name()
    if eap not in EAP_METHODS:
        raise InitError(f"--eap {eap!r}: choose one of {', '.join(EAP_METHODS)}")
    if (ca_cert is None) != (ca_key is None):
        raise InitError("--ca-cert and --ca-key go together")
    if days < 1:
        raise InitError("--days must be at least 1")
    if sql_pools and pool_database is False:
        raise InitError("--sql-pools needs the pool database (drop --no-pool-db)")
    own_ca = ca_cert is None
    targets = [CA_CERT, GW_CERT, GW_KEY, CONFIG, POLICY] + ([CA_KEY] if own_ca else [])
    existing = [directory / t for t in targets if (directory / t).exists()]
    if existing and not force:
        listing = ", ".join(str(p) for p in existing)
        raise InitError(
            f"{directory} already holds {listing}; not overwriting them (use --force to "
            "replace them; the databases are kept either way)"
        )
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory} exists and is not a directory")

    now = _dt.datetime.now(_dt.UTC)
    if own_ca:
        ca, ca_private = _make_ca(name, use_rsa, now)
    else:
        assert ca_cert is not None and ca_key is not None
        ca, ca_private = _load_ca(Path(ca_cert).expanduser(), Path(ca_key).expanduser())
    # EAP-FAST peers (wpa_supplicant, Cisco) offer only RSA suites for authenticated
    # provisioning: the gateway key is RSA there whatever --rsa says.
    gw, gw_key = _issue_gateway(name, ca, ca_private, use_rsa or eap == "fast", days, now)

    policy_text = EXAMPLE_POLICY.read_bytes()
    if database == "sqlite":
        evidence_url: str | None = _sqlite_url(directory / EVIDENCE_DB)
    else:
        evidence_url = database
    if pool_database is True:
        pool_url: str | None = _sqlite_url(directory / POOL_DB)
    else:
        pool_url = pool_database or None
    user_secrets = [(u, _secret()) for u in users]
    radius = [(a, _secret()) for a in radius_clients]
    config_text = render_config(
        name=name,
        listen=listen,
        eap=eap,
        evidence_url=evidence_url,
        pool=pool,
        isolate_pool=isolate_pool,
        networks=networks,
        remediation=remediation,
        users=user_secrets,
        radius_clients=radius,
        ca_key_made=own_ca,
        posture=posture,
        sql_pool_url=pool_url if sql_pools else None,
        pac_key=os.urandom(32) if eap == "fast" else None,
    )
    # Check the text before anything is written: a bad --pool or --listen is a usage error.
    _check_config_text(config_text, directory)

    directory.mkdir(parents=True, exist_ok=True)
    for sub, mode in (("certs", 0o755), ("private", 0o700), ("var", 0o750)):
        d = directory / sub
        d.mkdir(exist_ok=True)
        os.chmod(d, mode)
    written: list[Path] = []

    def put(rel: Path, data: bytes, mode: int) -> None:
        _write(directory / rel, data, mode)
        written.append(directory / rel)

    put(CA_CERT, _pem_cert(ca), 0o644)
    if own_ca:
        put(CA_KEY, _pem_key(ca_private), 0o600)
    put(GW_CERT, _pem_cert(gw), 0o644)
    put(GW_KEY, _pem_key(gw_key), 0o600)
    put(POLICY, policy_text, 0o644)
    put(CONFIG, config_text.encode(), 0o600)

    _create_databases(
        evidence_url, pool_url, {"rw": pool, "quarantine": isolate_pool} if sql_pools else {}
    )
    return InitResult(
        directory=directory,
        config=directory / CONFIG,
        policy=directory / POLICY,
        ca_cert=directory / CA_CERT,
        ca_key=directory / CA_KEY if own_ca else None,
        gateway_cert=directory / GW_CERT,
        gateway_key=directory / GW_KEY,
        evidence_url=evidence_url,
        pool_url=pool_url,
        users=tuple(users),
        written=tuple(written),
    )


def _check_config_text(text: str, directory: Path) -> None:
    """Parse with the daemon's loader (not composing: the files are not written yet)."""
    import tomllib

    from gateway.daemon.config import ConfigError, parse_config

    try:
        parse_config(tomllib.loads(text), str(directory / CONFIG), directory)
    except ConfigError as exc:
        raise InitError(f"the configuration would not load: {exc.key}: {exc.reason}") from None


def _host_range(cidr: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """First and last usable address (network and broadcast excluded, as memory pools do)."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses > 2 and net.version == 4:
        return net[1], net[-2]
    if net.num_addresses > 1:
        return net[1], net[-1]
    return net[0], net[0]


def _create_databases(
    evidence_url: str | None, pool_url: str | None, sql_pools: dict[str, str]
) -> None:
    if evidence_url is not None:
        from gateway.db import EvidenceError, open_for_writing

        try:
            open_for_writing(evidence_url).dispose()
        except EvidenceError as exc:
            raise InitError(f"evidence database: {exc}") from None
    if pool_url is not None:
        from gateway.pools import PoolError, PoolExists, SqlPools

        try:
            # crash_recovery off: init must never release leases of a running gateway.
            store = SqlPools(pool_url, crash_recovery=False)
            try:
                for name, cidr in sql_pools.items():
                    first, last = _host_range(cidr)
                    try:
                        store.add_pool(name, first, last, SQL_POOL_TIMEOUT)
                    except PoolExists:
                        pass  # another gateway (or an earlier init) made it: keep its leases
            finally:
                store.close()
        except PoolError as exc:
            raise InitError(f"pool database: {exc}") from None


def verify_directory(result: InitResult) -> str:
    """Load what init wrote the way the daemon will; returns a one-line summary."""
    from gateway.daemon.compose import compose
    from gateway.daemon.config import load_config
    from nea.policy import load_policy

    config = load_config(result.config)
    policy = load_policy(result.policy)
    compose(config)
    if config.radius is not None:
        from gateway.daemon.radius import radius_config
        from gateway.radius.compose import build_eap_factory

        build_eap_factory(radius_config(config))
    return (
        f"{len(config.connections)} connection(s), {len(policy.policies)} posture policies, "
        f"{len(policy.enforcements)} enforcements"
    )


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``nea-gateway init`` (for wiring into the daemon CLI's subparsers)."""
    parser.add_argument("directory", type=Path, help="directory to create or fill")
    parser.add_argument(
        "--name",
        help="gateway name: certificate SAN/CN and IKE identity (default: this host's FQDN)",
    )
    parser.add_argument("--rsa", action="store_true", help="RSA 3072 keys instead of ECDSA P-256")
    parser.add_argument("--ca-cert", type=Path, help="issue from this CA certificate (PEM/DER)")
    parser.add_argument("--ca-key", type=Path, help="the CA's private key (unencrypted PEM/DER)")
    parser.add_argument(
        "--force", action="store_true", help="replace existing files (databases are kept)"
    )
    parser.add_argument(
        "--listen",
        default="0.0.0.0",  # noqa: S104 - a gateway answers on every address by default
        help="IKE (and RADIUS) address (default 0.0.0.0)",
    )
    parser.add_argument(
        "--eap",
        choices=EAP_METHODS,
        default="ttls",
        help="EAP method of the road-warrior connection (ttls/peap/fast: with posture; "
        "default ttls)",
    )
    parser.add_argument(
        "--no-posture",
        action="store_true",
        help="no PT-EAP posture assessment, in IKEv2 and RADIUS (for clients without a TNC "
        "client: Debian's charon, wpa_supplicant)",
    )
    parser.add_argument(
        "--database",
        default="sqlite",
        help="evidence database: 'sqlite' (DIR/var/nea-evidence.db, default), a URL "
        "(postgresql://user:password@host/db) or 'none'",
    )
    parser.add_argument(
        "--no-pool-db", action="store_true", help="do not create DIR/var/nea-pool.db"
    )
    parser.add_argument(
        "--pool-database",
        metavar="URL",
        help="SQL pool database instead of DIR/var/nea-pool.db (postgresql://... to share "
        "pools between gateways)",
    )
    parser.add_argument(
        "--sql-pools",
        action="store_true",
        help="create the pools in the pool database and let the daemon use them (strongSwan "
        "attr-sql semantics) instead of memory pools",
    )
    parser.add_argument(
        "--pool", default="10.3.0.0/24", help="virtual IP pool (default %(default)s)"
    )
    parser.add_argument(
        "--isolate-pool", default="10.99.0.0/24", help="quarantine pool (default %(default)s)"
    )
    parser.add_argument(
        "--networks", default="10.1.0.0/16", help="networks for allowed clients (%(default)s)"
    )
    parser.add_argument(
        "--remediation",
        default="10.1.99.0/24",
        help="networks isolated clients may reach (%(default)s)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="ID",
        help="create an EAP user with a random password (repeatable)",
    )
    parser.add_argument(
        "--radius-client",
        action="append",
        default=[],
        metavar="ADDR",
        help="a RADIUS client (NAS address or prefix) with a random secret; adds [radius]",
    )
    parser.add_argument(
        "--days", type=int, default=CERT_DAYS, help="gateway certificate lifetime (%(default)s)"
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``init`` for parsed arguments (see :func:`add_arguments`); returns the exit code."""
    database = None if args.database == "none" else args.database
    try:
        result = init_directory(
            args.directory,
            name=args.name,
            use_rsa=args.rsa,
            ca_cert=args.ca_cert,
            ca_key=args.ca_key,
            force=args.force,
            listen=args.listen,
            eap=args.eap,
            posture=not args.no_posture,
            database=database,
            pool_database=False if args.no_pool_db else (args.pool_database or True),
            sql_pools=args.sql_pools,
            pool=args.pool,
            isolate_pool=args.isolate_pool,
            networks=args.networks,
            remediation=args.remediation,
            users=args.user,
            radius_clients=args.radius_client,
            days=args.days,
        )
    except InitError as exc:
        print(f"nea-gateway init: {exc}", file=sys.stderr)
        return 2
    try:
        summary = verify_directory(result)
    except Exception as exc:  # a bug in init or the loaders: say which file, keep going
        print(f"nea-gateway init: the written files do not load: {exc}", file=sys.stderr)
        return 1
    d = result.directory
    print(f"nea-gateway init: {d} ready ({summary})")
    for p in result.written:
        print(f"  wrote {p}")
    if result.evidence_url:
        from gateway.db.engine import redacted

        print(f"  evidence database {redacted(result.evidence_url)}")
    if result.pool_url:
        from gateway.db.engine import redacted as _red

        print(f"  pool database {_red(result.pool_url)} (nea-pool --db)")
    if result.users:
        print(f"  EAP users {', '.join(result.users)}: passwords in {result.config}")
    if result.ca_key is not None:
        print(f"  the CA key {result.ca_key} signs client certificates; keep it offline")
    print(f"next: nea-gateway check -c {result.config} && nea-gateway run -c {result.config}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``nea-gateway init DIR [options]`` (``argv`` without the ``init`` word)."""
    parser = argparse.ArgumentParser(
        prog="nea-gateway init",
        description="Create a gateway directory: CA, gateway certificate, gateway.toml, "
        "policy.toml and the databases.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
