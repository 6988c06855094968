"""Read the real Linux host into a :class:`nea.imc.HostFacts` (the only I/O of the collectors).

Sources: ``/etc/os-release`` (ID, NAME, VERSION_ID), the dpkg database
(``/var/lib/dpkg/status``) or ``rpm -qa`` when there is no dpkg database,
``/proc/sys/net/ipv4/ip_forward`` (and IPv6 ``all/forwarding``), listening sockets from
``/proc/net/{tcp,udp}{,6}``, ``/etc/machine-id`` and the boot time from ``/proc/stat``.
Everything is read relative to ``root`` so tests can point the reader at a fake tree.
"""

from __future__ import annotations

import datetime as _dt
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from nea.imc.host import TCP, UDP, HostFacts

__all__ = [
    "listening_ports",
    "parse_dpkg_status",
    "parse_os_release",
    "parse_proc_net",
    "read_host",
]

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values optionally quoted with shell escapes."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\([\\"$`])', r"\1", value[1:-1])
        out[key.strip()] = value
    return out


def parse_dpkg_status(text: str) -> list[tuple[str, str]]:
    """(name, version) of every package whose Status is "install ok installed"; a
    multi-arch package installed for several architectures is listed once per arch."""
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key] = value.strip()
        if fields.get("Status", "").split()[-1:] == ["installed"] and "Package" in fields:
            out.append((fields["Package"], fields.get("Version", "")))
    return sorted(set(out))


def parse_proc_net(text: str, *, udp: bool) -> set[int]:
    """Local ports of listening TCP sockets (state 0A) or unconnected UDP sockets (07)."""
    ports = set()
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or ":" not in cols[1]:
            continue
        state = cols[3].upper()
        if state != (_UDP_UNCONNECTED if udp else _TCP_LISTEN):
            continue
        try:
            ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return ports


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def listening_ports(root: Path = Path("/")) -> tuple[tuple[int, int], ...]:
    out: set[tuple[int, int]] = set()
    for name, proto, udp in (("tcp", TCP, False), ("tcp6", TCP, False),
                             ("udp", UDP, True), ("udp6", UDP, True)):
        text = _read(root / "proc/net" / name)
        if text is not None:
            out |= {(proto, port) for port in parse_proc_net(text, udp=udp)}
    return tuple(sorted(out))


def _forwarding(root: Path) -> int:
    values = []
    for rel in ("proc/sys/net/ipv4/ip_forward", "proc/sys/net/ipv6/conf/all/forwarding"):
        text = _read(root / rel)
        if text is not None and text.strip() in ("0", "1"):
            values.append(int(text.strip()))
    if not values:
        return 2  # unknown
    return 1 if any(values) else 0


def _rpm_packages() -> list[tuple[str, str]]:
    rpm = shutil.which("rpm")
    if rpm is None:
        return []
    try:
        proc = subprocess.run(
            [rpm, "-qa", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    for line in proc.stdout.splitlines():
        if "\t" in line:
            name, version = line.split("\t", 1)
            out.append((name, version.removeprefix("0:")))
    return sorted(set(out))


def _boot_time(root: Path) -> _dt.datetime | None:
    text = _read(root / "proc/stat")
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            try:
                return _dt.datetime.fromtimestamp(int(line.split()[1]), _dt.UTC)
            except (ValueError, OverflowError):
                return None
    return None


def _product_name(fields: dict[str, str]) -> str:
    name = fields.get("NAME", "Linux")
    for suffix in (" GNU/Linux", " Linux"):
        if name.endswith(suffix) and name != suffix.strip():
            name = name[: -len(suffix)]
    return name


def read_host(
    root: Path = Path("/"),
    *,
    default_password: Callable[[], bool | None] | None = None,
    test_command: str | None = None,
) -> HostFacts:
    """The facts of the host mounted at ``root``.

    ``default_password`` is the hook that decides the Factory Default Password Enabled
    value (Linux has no standard place for it; without a hook it is not reported).
    ``rpm -qa`` is only used when reading the live system (``root`` is ``/``) and no dpkg
    database exists.
    """
    osr = parse_os_release(_read(root / "etc/os-release")
                           or _read(root / "usr/lib/os-release") or "")
    dpkg = _read(root / "var/lib/dpkg/status")
    if dpkg is not None:
        packages = parse_dpkg_status(dpkg)
    elif root == Path("/"):
        packages = _rpm_packages()
    else:
        packages = []
    machine_id = (_read(root / "etc/machine-id") or "").strip() or None
    return HostFacts(
        os_id=osr.get("ID", "linux"),
        os_name=_product_name(osr),
        os_version=osr.get("VERSION_ID", ""),
        arch=platform.machine() or "unknown",
        packages=tuple(packages),
        forwarding=_forwarding(root),
        default_password=default_password() if default_password is not None else None,
        listening=listening_ports(root),
        device_id=machine_id,
        last_boot=_boot_time(root),
        test_command=test_command,
    )
