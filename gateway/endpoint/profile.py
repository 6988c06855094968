"""Simulated endpoints: a TOML profile loaded into a :class:`nea.imc.HostFacts`.

Used by tests, the demo and load generation. Format (every section optional)::

    [os]
    id = "debian"              # os-release ID (picks the Product Information vendor id)
    name = "Debian"            # product name
    version = "12"             # VERSION_ID
    arch = "x86_64"

    [device]
    id = "3d1219c7c4c5404aaa1f6d2a48adfda4"   # machine-id, sent as ITA Device ID
    forwarding = false         # true / false / "unknown"
    default_password = false   # true / false; leave out for "not reported"

    [ports]
    tcp = [22, 443]            # listening (open) ports
    udp = [500, 4500]
    blocked_tcp = [23]         # ports reported as blocked (B flag)
    blocked_udp = []

    [packages]                 # installed packages: name = "version"
    openssl = "3.0.15-1~deb12u1"

    [test]
    command = "allow"          # ITA Command of the test collector
    retry_command = "allow"    # sent on a retried handshake

    [swima]
    epoch = 1
    [[swima.events]]           # software events (RFC 8412), for event requests
    eid = 1
    timestamp = "2026-11-01T10:00:00Z"
    action = "creation"        # creation / deletion / alteration
    name = "nmap"
    version = "7.93+dfsg1-1"

Errors raise :class:`ProfileError` naming the file, the key and the reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nea.imc.host import TCP, UDP, HostFacts, SoftwareEvent

__all__ = ["ProfileError", "load_profile", "parse_profile"]

_ACTIONS = {"creation": 1, "deletion": 2, "alteration": 3}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_SECTIONS = {"os", "device", "ports", "packages", "test", "swima", "description"}


class ProfileError(Exception):
    """An endpoint profile is invalid; the message names the file, the key and the reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source, self.key, self.reason = source, key, reason
        super().__init__(f"{source}: {key}: {reason}" if key else f"{source}: {reason}")


class _P:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> ProfileError:
        return ProfileError(self.source, key, reason)

    def table(self, doc: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {type(value).__name__}")
        extra = sorted(set(value) - allowed) if allowed else []
        if extra:
            raise self.fail(f"{key}.{extra[0]}",
                            f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def string(self, t: Mapping[str, Any], key: str, full: str, default: str | None) -> str | None:
        value = t.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(full, f"must be a string, not {type(value).__name__}")
        return value

    def ports(self, t: Mapping[str, Any], key: str, full: str) -> list[int]:
        value = t.get(key, [])
        if not isinstance(value, list):
            raise self.fail(full, "must be a list of port numbers")
        for port in value:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise self.fail(full, f"{port!r} is not a port number (0-65535)")
        return value


def parse_profile(text: str, source: str = "<profile>") -> HostFacts:
    p = _P(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, "", f"not valid TOML: {exc}") from None
    extra = sorted(set(doc) - _SECTIONS)
    if extra:
        raise p.fail(extra[0], f"unknown section (allowed: {', '.join(sorted(_SECTIONS))})")
    os_t = p.table(doc, "os", {"id", "name", "version", "arch"})
    dev = p.table(doc, "device", {"id", "forwarding", "default_password"})
    ports = p.table(doc, "ports", {"tcp", "udp", "blocked_tcp", "blocked_udp"})
    pkgs = p.table(doc, "packages", set())
    test = p.table(doc, "test", {"command", "retry_command"})
    swima = p.table(doc, "swima", {"epoch", "events"})

    packages = []
    for name, version in pkgs.items():
        if not isinstance(version, str):
            raise p.fail(f"packages.{name}", "must be a version string")
        if len(name.encode()) > 255 or len(version.encode()) > 255:
            raise p.fail(f"packages.{name}", "name and version must fit 255 octets")
        packages.append((name, version))

    fwd_raw = dev.get("forwarding", "unknown")
    if fwd_raw is True or fwd_raw is False:
        forwarding = int(fwd_raw)
    elif fwd_raw == "unknown":
        forwarding = 2
    else:
        raise p.fail("device.forwarding", 'must be true, false or "unknown"')
    pwd = dev.get("default_password")
    if pwd is not None and not isinstance(pwd, bool):
        raise p.fail("device.default_password", "must be true or false")

    epoch = swima.get("epoch", 1)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**32:
        raise p.fail("swima.epoch", "must be an integer 0..2^32-1")
    events_raw = swima.get("events", [])
    if not isinstance(events_raw, list):
        raise p.fail("swima.events", "must be an array of tables ([[swima.events]])")
    events = []
    for i, ev in enumerate(events_raw):
        key = f"swima.events[{i}]"
        if not isinstance(ev, dict):
            raise p.fail(key, "must be a table")
        missing = [k for k in ("eid", "timestamp", "action", "name", "version") if k not in ev]
        if missing:
            raise p.fail(f"{key}.{missing[0]}", "missing")
        if isinstance(ev["eid"], bool) or not isinstance(ev["eid"], int) or ev["eid"] < 1:
            raise p.fail(f"{key}.eid", "must be a positive integer")
        if not isinstance(ev["timestamp"], str) or not _RFC3339.match(ev["timestamp"]):
            raise p.fail(f"{key}.timestamp", 'must look like "2026-11-01T10:00:00Z"')
        if ev["action"] not in _ACTIONS:
            raise p.fail(f"{key}.action", "must be creation, deletion or alteration")
        events.append(SoftwareEvent(ev["eid"], ev["timestamp"], _ACTIONS[ev["action"]],
                                    str(ev["name"]), str(ev["version"])))

    return HostFacts(
        os_id=p.string(os_t, "id", "os.id", "linux") or "linux",
        os_name=p.string(os_t, "name", "os.name", "Linux") or "Linux",
        os_version=p.string(os_t, "version", "os.version", "") or "",
        arch=p.string(os_t, "arch", "os.arch", "x86_64") or "",
        packages=tuple(packages),
        forwarding=forwarding,
        default_password=pwd,
        listening=tuple([(TCP, port) for port in p.ports(ports, "tcp", "ports.tcp")]
                        + [(UDP, port) for port in p.ports(ports, "udp", "ports.udp")]),
        blocked=tuple([(TCP, port) for port in p.ports(ports, "blocked_tcp",
                                                       "ports.blocked_tcp")]
                      + [(UDP, port) for port in p.ports(ports, "blocked_udp",
                                                         "ports.blocked_udp")]),
        device_id=p.string(dev, "id", "device.id", None),
        test_command=p.string(test, "command", "test.command", None),
        retry_command=p.string(test, "retry_command", "test.retry_command", None),
        swima_epoch=epoch,
        software_events=tuple(events),
    )


def load_profile(path: str | Path) -> HostFacts:
    """Read and parse a profile file (errors name the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(str(path), "", f"cannot read: {exc}") from None
    return parse_profile(text, str(path))
