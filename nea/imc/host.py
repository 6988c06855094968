"""``HostFacts``: everything the collectors report about an endpoint, as one value.

Filled from the real Linux host by ``gateway.endpoint.host.read_host()`` or from a profile
file by ``gateway.endpoint.profile.load_profile()``; the collectors only read it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from nea.pa import ForwardingStatus

__all__ = [
    "PRODUCT_VENDOR_IDS",
    "TCP",
    "UDP",
    "HostFacts",
    "SoftwareEvent",
    "product_vendor_id",
]

TCP = 6
UDP = 17

PRODUCT_VENDOR_IDS: dict[str, int] = {
    "debian": 9586,
    "ubuntu": 28978,
    "fedora": 30401,
    "rhel": 2312,
    "android": 11129,
}
"""os-release ID -> SMI PEN put in Product Information (Debian 9586, Canonical 28978, Fedora
30401, Red Hat 2312, Google 11129 -- the values strongSwan's OS collector uses; 0 = IETF for
anything else)."""


def product_vendor_id(os_id: str) -> int:
    return PRODUCT_VENDOR_IDS.get(os_id.lower(), 0)


@dataclass(frozen=True)
class SoftwareEvent:
    """A change of the software inventory (SWIMA events): ``action`` is RFC 8412's
    1 creation, 2 deletion, 3 alteration."""

    eid: int
    timestamp: str
    action: int
    name: str
    version: str


@dataclass(frozen=True)
class HostFacts:
    os_id: str = "linux"
    """os-release ID ("debian")."""
    os_name: str = "Linux"
    """Product name ("Debian"): os-release NAME without " GNU/Linux"."""
    os_version: str = ""
    """os-release VERSION_ID ("12", "22.04")."""
    arch: str = "x86_64"
    packages: tuple[tuple[str, str], ...] = ()
    forwarding: int = ForwardingStatus.UNKNOWN
    """0 disabled, 1 enabled, 2 unknown (RFC 5792 4.2.11)."""
    default_password: bool | None = None
    """Factory default password enabled; None when unknown (then not reported)."""
    listening: tuple[tuple[int, int], ...] = ()
    """Open ports as (IP protocol 6/17, port)."""
    blocked: tuple[tuple[int, int], ...] = ()
    """Ports reported as blocked by a firewall (B flag)."""
    device_id: str | None = None
    """/etc/machine-id (reported as ITA Device ID)."""
    last_boot: _dt.datetime | None = None
    """Reported as the Operational Status "last use"."""
    test_command: str | None = None
    """The ITA Command the test collector sends (allow, isolate, block, retry ...)."""
    retry_command: str | None = None
    """The command the test collector sends on a retried handshake (default: the same)."""
    swima_epoch: int = 1
    software_events: tuple[SoftwareEvent, ...] = ()

    @property
    def string_version(self) -> str:
        """"12 x86_64": String Version product version (as strongSwan's OS collector)."""
        return f"{self.os_version} {self.arch}".strip()

    @property
    def numeric_version(self) -> tuple[int, int]:
        """(major, minor) from the VERSION_ID ("22.04" -> (22, 4))."""
        parts = []
        for part in self.os_version.split(".")[:2]:
            digits = "".join(ch for ch in part if "0" <= ch <= "9")
            if not digits or digits != part:
                break
            parts.append(int(digits))
        while len(parts) < 2:
            parts.append(0)
        return parts[0], parts[1]

    @property
    def last_eid(self) -> int:
        return max((e.eid for e in self.software_events), default=0)
