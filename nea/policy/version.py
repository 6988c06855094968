"""Package version ordering (Debian policy 5.6.12 rules; good enough for RPM's E:V-R too).

``[epoch:]upstream[-revision]``; each part compares as alternating non-digit and digit runs;
in non-digit runs letters sort before non-letters and ``~`` before everything, even the
end of the string (so ``1.0~rc1`` < ``1.0``).
"""

from __future__ import annotations

__all__ = ["compare_versions", "parse_os_version"]


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _letter(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if _digit(ch):
        return 0
    if _letter(ch):
        return ord(ch)
    return ord(ch) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        # non-digit run
        while (i < len(a) and not _digit(a[i])) or (j < len(b) and not _digit(b[j])):
            ca = _order(a[i]) if i < len(a) and not _digit(a[i]) else 0
            cb = _order(b[j]) if j < len(b) and not _digit(b[j]) else 0
            if ca != cb:
                return -1 if ca < cb else 1
            if i < len(a) and not _digit(a[i]):
                i += 1
            if j < len(b) and not _digit(b[j]):
                j += 1
        # digit run
        si = i
        while i < len(a) and _digit(a[i]):
            i += 1
        sj = j
        while j < len(b) and _digit(b[j]):
            j += 1
        na = int(a[si:i] or "0")
        nb = int(b[sj:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def _split(version: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in version:
        head, version = version.split(":", 1)
        epoch = int(head) if head and all(_digit(c) for c in head) else 0
    if "-" in version:
        upstream, revision = version.rsplit("-", 1)
    else:
        upstream, revision = version, ""
    return epoch, upstream, revision


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as package version ``a`` is older than, equal to or newer than ``b``."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def parse_os_version(text: str) -> tuple[int, ...]:
    """``"22.04"`` -> ``(22, 4)``; leading numeric dot-separated fields of an OS version."""
    out: list[int] = []
    for part in text.strip().split(" ")[0].split("."):
        digits = ""
        for ch in part:
            if not _digit(ch):
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
        if len(digits) != len(part):
            break
    return tuple(out)
