"""strongSwan's charon (Debian ``strongswan-charon``) in a network namespace, driven by swanctl.

Follows the recipe in ``/work/shared/interop/README.md``: each charon gets its own
``strongswan.conf`` (plugins listed explicitly, kernel-libipsec for the userspace ESP
dataplane, a per-instance VICI socket) and a private ``/run`` (``unshare -m`` + tmpfs), because
charon's pid file is fixed at ``/run/charon.pid``; several charons can then run at once.

::

    gw = Charon(ns_gw, tmp_path / "gw")
    gw.add_ca(ca)
    gw.add_cert(gw_cert)                     # certificate -> x509/, key -> private/
    gw.write_swanctl_conf(SWANCTL_CONF)
    gw.start()
    gw.load_all()
    ...
    cl.initiate("home")
    (sa,) = cl.list_sas()
    assert sa.state == "ESTABLISHED" and sa.local_vips == ("10.3.0.1",)

The charon log (``filelog`` to stderr) is written to :attr:`Charon.log_path`; errors raised
by this module end with its tail, and the ``charon_factory`` fixture prints it at teardown
(pytest shows that only for failing tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cryptography.hazmat.primitives import serialization

from tests.harness.certs import Issued
from tests.harness.netns import Netns
from tests.harness.tools import find, stop_process_group
from tests.harness.vici import Message, ViciClient, ViciError

__all__ = [
    "DEFAULT_PLUGINS",
    "Charon",
    "CharonError",
    "ChildSa",
    "IkeSa",
    "parse_list_sas",
    "render_conf",
]

DEFAULT_PLUGINS: tuple[str, ...] = tuple(
    "random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey curve25519 "
    "aes sha1 sha2 hmac gcm kdf vici kernel-libipsec kernel-netlink socket-default "
    "eap-identity eap-tls eap-ttls eap-md5 eap-mschapv2 eap-gtc attr updown".split()
)
"""Plugins Debian's 5.9.8 build has that the interop tests use (README recipe + extras).

Debian's build has no eap-dynamic, eap-peap or tnccs-20. :meth:`Charon.start` fails when a
requested plugin did not load, so a test never runs quietly without one."""

_SWANCTL_DIRS = ("x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey",
                 "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12")  # fmt: skip


class CharonError(RuntimeError):
    """charon did not start, or a swanctl command failed (message ends with the log tail)."""


@dataclass(frozen=True)
class ChildSa:
    name: str
    uniqueid: str
    state: str
    """``INSTALLED``, ``REKEYING``, ..."""
    mode: str
    protocol: str
    encap: bool
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    raw: Message


@dataclass(frozen=True)
class IkeSa:
    name: str
    uniqueid: str
    state: str
    """``ESTABLISHED``, ``CONNECTING``, ..."""
    version: str
    initiator: bool
    local_host: str
    remote_host: str
    local_id: str
    remote_id: str
    remote_eap_id: str | None
    local_vips: tuple[str, ...]
    remote_vips: tuple[str, ...]
    children: tuple[ChildSa, ...]
    raw: Message

    def child(self, name: str) -> ChildSa:
        """The (first) CHILD_SA called ``name``; KeyError if there is none."""
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"no CHILD_SA {name!r} in IKE_SA {self.name!r}: {self.children}")


def _parse_child(key: str, raw: Message) -> ChildSa:
    return ChildSa(
        name=str(raw.get("name", key)),
        uniqueid=str(raw.get("uniqueid", "")),
        state=str(raw.get("state", "")),
        mode=str(raw.get("mode", "")),
        protocol=str(raw.get("protocol", "")),
        encap=raw.get("encap") == "yes",
        local_ts=tuple(raw.get("local-ts", ())),
        remote_ts=tuple(raw.get("remote-ts", ())),
        raw=raw,
    )


def parse_list_sas(events: Sequence[Message]) -> list[IkeSa]:
    """Turn VICI ``list-sa`` event messages into :class:`IkeSa` objects."""
    result = []
    for event in events:
        for name, raw in event.items():
            if not isinstance(raw, dict):
                continue
            children = raw.get("child-sas", {})
            result.append(
                IkeSa(
                    name=name,
                    uniqueid=str(raw.get("uniqueid", "")),
                    state=str(raw.get("state", "")),
                    version=str(raw.get("version", "")),
                    initiator=raw.get("initiator") == "yes",
                    local_host=str(raw.get("local-host", "")),
                    remote_host=str(raw.get("remote-host", "")),
                    local_id=str(raw.get("local-id", "")),
                    remote_id=str(raw.get("remote-id", "")),
                    remote_eap_id=raw.get("remote-eap-id"),
                    local_vips=tuple(raw.get("local-vips", ())),
                    remote_vips=tuple(raw.get("remote-vips", ())),
                    children=tuple(
                        _parse_child(k, v) for k, v in children.items() if isinstance(v, dict)
                    ),
                    raw=raw,
                )
            )
    return result


def render_conf(sections: Mapping[str, Any], indent: int = 0) -> str:
    """strongswan.conf / swanctl.conf text from nested mappings, one key per line.

    Values: a mapping is a section; a list/tuple is joined with ``,`` (swanctl lists);
    ``bool`` becomes ``yes``/``no``; anything else ``str()``. Values cannot span lines, and
    strongSwan reads a value to the end of its line, so a newline in a value is an error.
    """
    pad = "  " * indent
    out = []
    for key, value in sections.items():
        if isinstance(value, Mapping):
            out.append(f"{pad}{key} {{\n{render_conf(value, indent + 1)}{pad}}}\n")
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        if "\n" in text:
            raise ValueError(f"newline in value of {key!r}")
        out.append(f"{pad}{key} = {text}\n")
    return "".join(out)


class Charon:
    """One charon in ``netns`` with its configuration under ``workdir``."""

    def __init__(
        self,
        netns: Netns,
        workdir: Path,
        *,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
        charon_options: str = "",
        log_levels: Mapping[str, int] | None = None,
    ) -> None:
        """``charon_options`` is raw strongswan.conf text put inside ``charon { }`` (a
        ``plugins { ... }`` section there is merged with the harness's own)."""
        self.netns = netns
        self.workdir = Path(workdir)
        self.plugins = tuple(plugins)
        self.charon_options = charon_options
        self.log_levels = dict(log_levels or {"default": 1, "ike": 2, "cfg": 2, "net": 1})
        self.swanctl_dir = self.workdir / "swanctl"
        self.swanctl_conf = self.swanctl_dir / "swanctl.conf"
        self.strongswan_conf = self.workdir / "strongswan.conf"
        self.log_path = self.workdir / "charon.log"
        # sun_path holds 108 bytes; pytest's tmp_path can be longer, so the socket lives in a
        # short private directory of its own.
        self._sock_dir = Path(tempfile.mkdtemp(prefix="vici-", dir="/tmp"))
        self.vici_socket = self._sock_dir / "charon.vici"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.swanctl_dir.mkdir(parents=True, exist_ok=True)
        for sub in _SWANCTL_DIRS:
            (self.swanctl_dir / sub).mkdir(exist_ok=True)
        self._write_strongswan_conf()

    # -- files ---------------------------------------------------------------------------

    def _write_strongswan_conf(self) -> None:
        levels = "  ".join(f"{k} = {v}" for k, v in self.log_levels.items())
        uri = f"unix://{self.vici_socket}"
        self.strongswan_conf.write_text(
            "charon {\n"
            "  load_modular = no\n"
            f"  load = {' '.join(self.plugins)}\n"
            "  filelog {\n"
            "    stderr {\n"
            "      time_format = %H:%M:%S\n"
            f"      {levels}\n"
            "    }\n"
            "  }\n"
            f"  plugins {{\n    vici {{\n      socket = {uri}\n    }}\n  }}\n"
            f"{self.charon_options}\n"
            "}\n"
            f"swanctl {{\n  socket = {uri}\n}}\n"
        )

    def add_ca(self, ca: Issued | bytes, name: str | None = None) -> Path:
        """A trust anchor / intermediate into ``x509ca/``."""
        pem = ca.cert_pem if isinstance(ca, Issued) else ca
        stem = name or (
            ca.name
            if isinstance(ca, Issued)
            else f"ca{len(os.listdir(self.swanctl_dir / 'x509ca'))}"
        )
        path = self.swanctl_dir / "x509ca" / f"{stem}.pem"
        path.write_bytes(pem)
        return path

    def add_cert(self, issued: Issued, *, with_key: bool = True) -> Path:
        """Certificate into ``x509/`` (its intermediates into ``x509ca/``), key into ``private/``.

        ``private/`` takes PKCS#8 of any key type (RSA, ECDSA, Ed25519). Returns the
        certificate file name relative to ``x509/`` (what ``certs =`` in swanctl.conf wants).
        """
        path = self.swanctl_dir / "x509" / f"{issued.name}.pem"
        path.write_bytes(issued.cert_pem)
        for i, inter in enumerate(issued.chain[1:]):
            (self.swanctl_dir / "x509ca" / f"{issued.name}-chain{i}.pem").write_bytes(
                inter.public_bytes(serialization.Encoding.PEM)
            )
        if with_key:
            key = self.swanctl_dir / "private" / f"{issued.name}.pem"
            key.write_bytes(issued.key_pem)
            key.chmod(0o600)
        return path

    def write_swanctl_conf(self, conf: str | Mapping[str, Any]) -> None:
        """swanctl.conf as text, or as nested mappings for :func:`render_conf`."""
        self.swanctl_conf.write_text(conf if isinstance(conf, str) else render_conf(conf))

    # -- process -------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["STRONGSWAN_CONF"] = str(self.strongswan_conf)
        env["SWANCTL_DIR"] = str(self.swanctl_dir)
        return env

    def start(self, timeout: float = 15) -> None:
        if self._proc is not None:
            raise CharonError("charon already started")
        binary = find("charon")
        if binary is None:
            raise CharonError("charon not installed (Debian package strongswan-charon)")
        self._log_file = self.log_path.open("ab")
        script = f"mount -t tmpfs tmpfs /run && exec {binary}"
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": self._log_file,
            "stderr": subprocess.STDOUT,
            "env": self.env,
        }
        self._proc = self.netns.popen("unshare", "-m", "sh", "-c", script, **kwargs)
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self.vici_socket.exists():
                try:
                    with ViciClient(self.vici_socket, timeout=5) as vici:
                        vici.request("version")
                    self._check_plugins()
                    return
                except (OSError, ViciError) as exc:
                    last_error = exc
            time.sleep(0.05)
        rc = self._proc.poll()
        self.stop()
        why = f"exited with {rc}" if rc is not None else f"no VICI socket after {timeout}s"
        raise CharonError(f"charon in {self.netns.name} {why} ({last_error!r})\n{self.log_tail()}")

    def loaded_plugins(self) -> tuple[str, ...]:
        """Plugin names from charon's "loaded plugins:" log line (empty if not logged yet)."""
        for line in reversed(self.log().splitlines()):
            if "loaded plugins:" in line:
                return tuple(line.split("loaded plugins:", 1)[1].split())
        return ()

    def _check_plugins(self) -> None:
        deadline = time.monotonic() + 2
        while not self.loaded_plugins() and time.monotonic() < deadline:
            time.sleep(0.05)
        loaded = self.loaded_plugins()
        missing = [p for p in self.plugins if p not in loaded]
        if missing:
            self.stop()
            raise CharonError(
                f"charon plugins failed to load: {missing} (are libcharon-extra-plugins and "
                f"libstrongswan-extra-plugins installed? kernel-libipsec also needs "
                f"/dev/net/tun)\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM (charon deletes its SAs and exits), SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc, grace=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Charon:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # -- swanctl / vici ------------------------------------------------------------------

    def swanctl(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``swanctl args...`` against this charon (in its namespace)."""
        cmd = self.netns.cmd("swanctl", *args)
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=self.env, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise CharonError(f"swanctl {' '.join(args)} timed out\n{self.log_tail()}") from exc
        if check and proc.returncode != 0:
            raise CharonError(
                f"swanctl {' '.join(args)} failed with {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
                f"--- charon log ({self.log_path}) ---\n{self.log_tail()}"
            )
        return proc

    def load_all(self) -> subprocess.CompletedProcess[str]:
        """``swanctl --load-all`` from this instance's swanctl.conf and credential dirs.

        Stricter than swanctl: 5.9.8 exits 0 on a syntax error in swanctl.conf ("invalid
        config file", nothing loaded), so any such message or a "failed" count is an error.
        """
        proc = self.swanctl("--load-all", "--file", str(self.swanctl_conf))
        text = proc.stdout + proc.stderr
        bad = ("invalid config file", "syntax error", "failed to load", "parsing", "failed:")
        if any(marker in text for marker in bad):
            raise CharonError(
                f"swanctl --load-all reported errors:\n{text}\n"
                f"--- charon log ({self.log_path}) ---\n{self.log_tail()}"
            )
        return proc

    def initiate(
        self, child: str, *, ike: str | None = None, timeout: float = 20, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``swanctl --initiate --child CHILD`` (blocks until established or failed)."""
        args = ["--initiate", "--child", child, "--timeout", str(max(1, int(timeout)))]
        if ike:
            args += ["--ike", ike]
        return self.swanctl(*args, check=check, timeout=timeout + 10)

    def terminate(
        self,
        *,
        ike: str | None = None,
        child: str | None = None,
        ike_id: int | None = None,
        force: bool = False,
        timeout: float = 10,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["--terminate", "--timeout", str(max(1, int(timeout)))]
        if ike:
            args += ["--ike", ike]
        if child:
            args += ["--child", child]
        if ike_id is not None:
            args += ["--ike-id", str(ike_id)]
        if force:
            args.append("--force")
        return self.swanctl(*args, check=check, timeout=timeout + 10)

    def list_sas_raw(self, ike: str | None = None) -> list[Message]:
        """The VICI ``list-sa`` events as decoded dicts."""
        with ViciClient(self.vici_socket) as vici:
            return vici.list_sas(ike)

    def list_sas(self, ike: str | None = None) -> list[IkeSa]:
        return parse_list_sas(self.list_sas_raw(ike))

    def list_sas_text(self) -> str:
        """``swanctl --list-sas`` as a person would read it (for failure messages)."""
        return self.swanctl("--list-sas", check=False).stdout

    def vici(self, command: str, message: Message | None = None) -> Message:
        """Any other VICI command (``stats``, ``get-pools``, ``list-conns``...)."""
        with ViciClient(self.vici_socket) as vici:
            return vici.request(command, message)

    def wait_for_log(self, text: str, timeout: float = 10) -> str:
        """Wait until ``text`` appears in the charon log; returns the first line with it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if text in line:
                    return line
            if time.monotonic() >= deadline:
                raise CharonError(f"{text!r} not in charon log after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_for(self, predicate: Any, timeout: float = 10, interval: float = 0.1) -> list[IkeSa]:
        """Poll :meth:`list_sas` until ``predicate(sas)`` is true; returns those SAs."""
        deadline = time.monotonic() + timeout
        while True:
            sas = self.list_sas()
            if predicate(sas):
                return sas
            if time.monotonic() >= deadline:
                raise CharonError(f"condition not met in {timeout}s; SAs: {sas}\n{self.log_tail()}")
            time.sleep(interval)
