"""A throw-away FreeRADIUS 3 (``freeradius -X``) with its own copy of the configuration.

Debian's ``/etc/freeradius/3.0`` is copied into a work directory and changed there only:
our users, one client entry per network with a random secret, our server certificate and CA
in the EAP module's ``tls-common``, no privilege drop (the copy lives in a private tmp dir),
and every ``listen`` section replaced by one auth listener on ``ADDR:port`` and one accounting
listener on ``ADDR:port+1`` in the default site (the inner-tunnel's fixed 18120 is gone).
``-i``/``-p`` are not used: with them FreeRADIUS listens outside any virtual server and
rejects everything ("No Auth-Type found"). A FreeRADIUS service that Debian may have
started on 1812 is never touched and never in the way.

::

    with FreeRadius(tmp_path / "radius", users={"bob": "hello"}) as radius:
        result = run_eapol_test(block, port=radius.port, secret=radius.secret, workdir=tmp_path)

The debug log (``freeradius -X`` output) is in :attr:`FreeRadius.log_path`; :meth:`log` reads it.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from tests.harness.certs import CertFactory, Issued
from tests.harness.tools import stop_process_group

if TYPE_CHECKING:
    from tests.harness.netns import Netns

__all__ = ["FreeRadius", "FreeRadiusError", "free_udp_port_pair"]

SYSTEM_RADDB = Path("/etc/freeradius/3.0")
_READY = "Ready to process requests"


class FreeRadiusError(RuntimeError):
    """FreeRADIUS did not start (the message ends with the tail of its debug log)."""


def free_udp_port_pair(host: str = "127.0.0.1") -> int:
    """A UDP port ``p`` with ``p`` and ``p + 1`` both free on ``host`` right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP port pair found")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FreeRadius:
    """FreeRADIUS in the foreground with a private configuration directory.

    ``users`` maps user name to cleartext password (usable by PAP, CHAP, MS-CHAPv2, EAP-MD5,
    inner PEAP/TTLS methods). ``authorize_extra`` is appended verbatim to the users file.
    ``server_cert``/``ca`` default to a fresh ECDSA CA and a ``radius.test`` server
    certificate made in ``workdir/certs``; ``ca`` is also the trust anchor for EAP-TLS client
    certificates. ``clients`` are the networks allowed to talk to it, all with ``secret``.
    With ``netns`` it runs in that namespace (port 1812 by default there, as nothing else
    lives in a fresh namespace); otherwise on a free loopback port.

    ``eap_fast`` (default None: EAP-FAST stays off, as shipped) enables the EAP module's
    ``fast { }`` section (rlm_eap_fast) with these ``key = value`` settings over the
    defaults in :attr:`EAP_FAST_DEFAULTS` (``tls = tls-common``, inner ``mschapv2``
    provisioning through the ``inner-tunnel`` site, ...).  ``pac_opaque_key`` has no default
    and must be given: FreeRADIUS wants exactly 32 characters.  Values are written quoted.
    Set :attr:`eap_fast` and ``stop()``/``start()`` to restart with other settings (a new
    ``pac_opaque_key``, say): ``start()`` writes the configuration afresh.
    EAP-FAST peers offer RSA suites, so such a server usually wants an RSA ``server_cert``.
    """

    EAP_FAST_DEFAULTS: Mapping[str, str] = {
        "tls": "tls-common",
        "pac_lifetime": "604800",
        "authority_identity": "nea-gateway-test",
        "default_eap_type": "mschapv2",  # of PAC provisioning (the key 3.2 reads)
        "virtual_server": "inner-tunnel",
    }

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        secret: str | None = None,
        address: str = "127.0.0.1",
        port: int | None = None,
        netns: Netns | None = None,
        clients: Sequence[str] = ("127.0.0.0/8",),
        server_cert: Issued | None = None,
        ca: Issued | None = None,
        default_eap_type: str = "md5",
        tls_max_version: str = "1.2",
        authorize_extra: str = "",
        eap_fast: Mapping[str, str] | None = None,
        start_timeout: float = 20,
    ) -> None:
        self.workdir = Path(workdir)
        self.users = dict(users or {"bob": "hello"})
        self.secret = secret or secrets.token_hex(8)
        self.address = address
        self.netns = netns
        self._fixed_port = port
        self.port = port if port is not None else (1812 if netns is not None else 0)
        self.clients = tuple(clients)
        self.default_eap_type = default_eap_type
        self.tls_max_version = tls_max_version
        self.authorize_extra = authorize_extra
        self.eap_fast = dict(eap_fast) if eap_fast is not None else None
        self.start_timeout = start_timeout
        if (server_cert is None) != (ca is None):
            raise ValueError("give both server_cert and ca, or neither")
        if server_cert is None or ca is None:
            factory = CertFactory(self.workdir / "certs")
            ca = factory.ca("radius-ca")
            server_cert = factory.issue(
                ca, "radius.test", san_dns=("radius.test",), eku=("serverAuth",)
            )
        self.ca: Issued = ca
        self.server_cert: Issued = server_cert
        self.raddb = self.workdir / "raddb"
        self.log_path = self.workdir / "freeradius.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> FreeRadius:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("already started")
        self._write_config()
        attempts = 1 if (self._fixed_port is not None or self.netns is not None) else 3
        for attempt in range(attempts):
            if self._fixed_port is None and self.netns is None:
                self.port = free_udp_port_pair(self.address)
            try:
                self._spawn()
                return
            except FreeRadiusError:
                # Another process may have taken the port between probe and bind: retry.
                bind_failed = "Failed binding" in self.log() or "Address already" in self.log()
                if attempt + 1 < attempts and bind_failed:
                    continue
                raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The whole ``freeradius -X`` output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> None:
        self._write_listeners()
        cmd = ["freeradius", "-X", "-d", str(self.raddb)]
        if self.netns is not None:
            cmd = self.netns.cmd(*cmd)
        self._log_file = self.log_path.open("wb")
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log_file,
            "stderr": subprocess.STDOUT,
            "start_new_session": True,
        }
        self._proc = subprocess.Popen(cmd, **kwargs)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if _READY in self.log():
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        rc = self._proc.poll()
        self.stop()
        why = f"exited with {rc}" if rc is not None else f"not ready in {self.start_timeout}s"
        raise FreeRadiusError(f"freeradius {why}:\n{self.log_tail()}")

    def _write_config(self) -> None:
        if self.raddb.exists():
            shutil.rmtree(self.raddb)
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(SYSTEM_RADDB, self.raddb, symlinks=True)
        for sub in ("log", "run"):
            (self.workdir / sub).mkdir(exist_ok=True)

        conf = self.raddb / "radiusd.conf"
        text = conf.read_text()
        text = _set(text, "raddbdir", str(self.raddb))
        text = _set(text, "logdir", str(self.workdir / "log"))
        text = _set(text, "run_dir", str(self.workdir / "run"))
        # Stay root: the copy sits in a private tmp directory freerad cannot read.
        text = re.sub(r"^(\s*)(user|group)\s*=", r"\1#\2 =", text, flags=re.MULTILINE)
        conf.write_text(text)

        clients = "".join(
            f"client test{i} {{\n"
            f"    ipaddr = {net}\n"
            f"    proto = *\n"
            f"    secret = {_quote(self.secret)}\n"
            f"    require_message_authenticator = no\n"
            f"}}\n"
            for i, net in enumerate(self.clients)
        )
        (self.raddb / "clients.conf").write_text(clients)

        authorize = self.raddb / "mods-config" / "files" / "authorize"
        users = "".join(
            f"{name} Cleartext-Password := {_quote(password)}\n"
            for name, password in self.users.items()
        )
        authorize.unlink()
        authorize.write_text(users + self.authorize_extra)

        eap = (self.raddb / "mods-enabled" / "eap").resolve()
        if not eap.is_relative_to(self.raddb):
            raise FreeRadiusError(f"{eap} is outside the copied config")
        text = eap.read_text()
        text = re.sub(r"^\s*private_key_password\s*=.*\n", "", text, flags=re.MULTILINE)
        text = re.sub(r"^\s*ca_path\s*=.*\n", "", text, flags=re.MULTILINE)
        text = _set(text, "private_key_file", str(self.server_cert.key_path))
        text = _set(text, "certificate_file", str(self.server_cert.chain_path))
        text = _set(text, "ca_file", str(self.ca.cert_path))
        text = _set(text, "tls_max_version", _quote(self.tls_max_version))
        text = _set(text, "default_eap_type", self.default_eap_type, count=1)
        if self.eap_fast is not None:
            text = _add_fast_section(text, {**self.EAP_FAST_DEFAULTS, **self.eap_fast})
        eap.write_text(text)

    def _write_listeners(self) -> None:
        listeners = (
            f"listen {{\n    type = auth\n    ipaddr = {self.address}\n    port = {self.port}\n}}\n"
            f"listen {{\n    type = acct\n    ipaddr = {self.address}\n"
            f"    port = {self.port + 1}\n}}\n"
        )
        for site in ("default", "inner-tunnel"):
            path = (self.raddb / "sites-enabled" / site).resolve()
            if not path.is_relative_to(self.raddb):
                raise FreeRadiusError(f"{path} is outside the copied config")
            original = self.raddb / "sites-available" / f"{site}.orig"
            if not original.exists():
                shutil.copyfile(path, original)
            text = _drop_blocks(original.read_text(), "listen")
            if site == "default":
                text, n = re.subn(
                    r"^server default \{\n", lambda m: m.group(0) + listeners, text, flags=re.M
                )
                if n != 1:
                    raise FreeRadiusError("no 'server default {' in sites-available/default")
            path.write_text(text)


def _add_fast_section(text: str, settings: Mapping[str, str]) -> str:
    """Open a ``fast { }`` section first thing in the ``eap { }`` module (the shipped one is
    all comments and stays so)."""
    if "pac_opaque_key" not in settings:
        raise ValueError("eap_fast needs a pac_opaque_key (32 characters)")
    body = "".join(f"        {key} = {_quote(value)}\n" for key, value in settings.items())
    section = f"    fast {{\n{body}    }}\n"
    new, n = re.subn(r"^eap \{\n", lambda m: m.group(0) + section, text, count=1, flags=re.M)
    if n != 1:
        raise FreeRadiusError("no 'eap {' in mods-available/eap")
    return new


def _drop_blocks(text: str, name: str) -> str:
    """Remove every active ``name { ... }`` section (braces in comments are ignored)."""
    out: list[str] = []
    depth = 0
    for line in text.splitlines(keepends=True):
        code = line.split("#", 1)[0]
        if depth == 0 and re.match(rf"^\s*{name}\s*\{{", code):
            depth = code.count("{") - code.count("}")
            continue
        if depth > 0:
            depth += code.count("{") - code.count("}")
            continue
        out.append(line)
    return "".join(out)


def _set(text: str, key: str, value: str, *, count: int = 0) -> str:
    """Replace the value of every (or the first ``count``) active ``key = ...`` line."""
    pattern = re.compile(rf"^(\s*){re.escape(key)}\s*=.*$", re.MULTILINE)
    new, n = pattern.subn(lambda m: f"{m.group(1)}{key} = {value}", text, count=count)
    if n == 0:
        raise FreeRadiusError(f"no '{key} =' line to change in the FreeRADIUS config")
    return new
