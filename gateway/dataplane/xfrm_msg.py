"""XFRM netlink messages (``include/uapi/linux/xfrm.h``) as pyroute2 ``nlmsg`` / ``nla`` classes.

pyroute2 ships no XFRM family, so the structures are spelled out here, flattened (pyroute2
message fields are flat): ``sel_*`` is the embedded ``struct xfrm_selector``, ``id_*`` the
``struct xfrm_id``, ``lft_*`` the ``xfrm_lifetime_cfg``, ``cur_*`` the ``xfrm_lifetime_cur``.
Sizes match the kernel ABI on 64-bit and 32-bit (all 64-bit members are 8-aligned).

Variable-length attributes (``xfrm_algo``, ``xfrm_algo_auth``, ``xfrm_algo_aead``,
``xfrm_replay_state_esn``) are carried as raw bytes built by :func:`algo` & co.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

from pyroute2.netlink import nla, nlmsg
from pyroute2.netlink.marshal import Marshal

__all__ = [
    "XFRMNLGRP_ACQUIRE",
    "XFRMNLGRP_EXPIRE",
    "XfrmMarshal",
    "XfrmMsg",
    "aead",
    "algo",
    "algo_auth",
    "replay_esn",
    "selector_fields",
    "xfrm_user_acquire",
    "xfrm_user_expire",
    "xfrm_user_polexpire",
    "xfrm_userpolicy_id",
    "xfrm_userpolicy_info",
    "xfrm_usersa_id",
    "xfrm_usersa_info",
    "xfrm_userspi_info",
]


class XfrmMsg:
    """XFRM_MSG_* (linux/xfrm.h)."""

    NEWSA = 0x10
    DELSA = 0x11
    GETSA = 0x12
    NEWPOLICY = 0x13
    DELPOLICY = 0x14
    GETPOLICY = 0x15
    ALLOCSPI = 0x16
    ACQUIRE = 0x17
    EXPIRE = 0x18
    UPDPOLICY = 0x19
    UPDSA = 0x1A
    POLEXPIRE = 0x1B
    FLUSHSA = 0x1C
    FLUSHPOLICY = 0x1D


XFRMNLGRP_ACQUIRE = 1
XFRMNLGRP_EXPIRE = 2

XFRM_MODE_TRANSPORT = 0
XFRM_MODE_TUNNEL = 1
XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_POLICY_FWD = 0, 1, 2
XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK = 0, 1
XFRM_STATE_ESN = 128
XFRM_STATE_AF_UNSPEC = 32
UDP_ENCAP_ESPINUDP = 2
XFRM_INF = (1 << 64) - 1

_ATTRS = (
    ("XFRMA_UNSPEC", "none"),
    ("XFRMA_ALG_AUTH", "cdata"),
    ("XFRMA_ALG_CRYPT", "cdata"),
    ("XFRMA_ALG_COMP", "cdata"),
    ("XFRMA_ENCAP", "encap_tmpl"),
    ("XFRMA_TMPL", "user_tmpl"),
    ("XFRMA_SA", "cdata"),
    ("XFRMA_POLICY", "cdata"),
    ("XFRMA_SEC_CTX", "cdata"),
    ("XFRMA_LTIME_VAL", "cdata"),
    ("XFRMA_REPLAY_VAL", "cdata"),
    ("XFRMA_REPLAY_THRESH", "uint32"),
    ("XFRMA_ETIMER_THRESH", "uint32"),
    ("XFRMA_SRCADDR", "cdata"),
    ("XFRMA_COADDR", "cdata"),
    ("XFRMA_LASTUSED", "uint64"),
    ("XFRMA_POLICY_TYPE", "cdata"),
    ("XFRMA_MIGRATE", "cdata"),
    ("XFRMA_ALG_AEAD", "cdata"),
    ("XFRMA_KMADDRESS", "cdata"),
    ("XFRMA_ALG_AUTH_TRUNC", "cdata"),
    ("XFRMA_MARK", "mark"),
    ("XFRMA_TFCPAD", "uint32"),
    ("XFRMA_REPLAY_ESN_VAL", "cdata"),
    ("XFRMA_SA_EXTRA_FLAGS", "uint32"),
    ("XFRMA_PROTO", "uint8"),
    ("XFRMA_ADDRESS_FILTER", "cdata"),
    ("XFRMA_PAD", "none"),
    ("XFRMA_OFFLOAD_DEV", "cdata"),
    ("XFRMA_SET_MARK", "uint32"),
    ("XFRMA_SET_MARK_MASK", "uint32"),
    ("XFRMA_IF_ID", "uint32"),
)

_SELECTOR = (
    ("sel_daddr", "16s"),
    ("sel_saddr", "16s"),
    ("sel_dport", ">H"),
    ("sel_dport_mask", ">H"),
    ("sel_sport", ">H"),
    ("sel_sport_mask", ">H"),
    ("sel_family", "H"),
    ("sel_prefixlen_d", "B"),
    ("sel_prefixlen_s", "B"),
    ("sel_proto", "B"),
    ("sel_pad1", "B"),
    ("sel_pad2", "H"),
    ("sel_ifindex", "i"),
    ("sel_user", "I"),
)  # struct xfrm_selector: 56 octets

_LIFETIME_CFG = tuple(
    (f"lft_{n}", "Q")
    for n in (
        "soft_byte_limit",
        "hard_byte_limit",
        "soft_packet_limit",
        "hard_packet_limit",
        "soft_add_expires_seconds",
        "hard_add_expires_seconds",
        "soft_use_expires_seconds",
        "hard_use_expires_seconds",
    )
)  # 64 octets

_LIFETIME_CUR = tuple((f"cur_{n}", "Q") for n in ("bytes", "packets", "add_time", "use_time"))

_ID = (("id_daddr", "16s"), ("id_spi", ">I"), ("id_proto", "B"), ("id_pad1", "B"), ("id_pad2", "H"))

_USERSA_INFO = (
    *_SELECTOR,
    *_ID,
    ("saddr", "16s"),
    *_LIFETIME_CFG,
    *_LIFETIME_CUR,
    ("stats_replay_window", "I"),
    ("stats_replay", "I"),
    ("stats_integrity_failed", "I"),
    ("seq", "I"),
    ("reqid", "I"),
    ("family", "H"),
    ("mode", "B"),
    ("replay_window", "B"),
    ("flags", "B"),
    ("pad1", "B"),
    ("pad2", "H"),
    ("pad3", "I"),
)  # struct xfrm_usersa_info: 224 octets

_USERPOLICY_INFO = (
    *_SELECTOR,
    *_LIFETIME_CFG,
    *_LIFETIME_CUR,
    ("priority", "I"),
    ("index", "I"),
    ("dir", "B"),
    ("action", "B"),
    ("flags", "B"),
    ("share", "B"),
    ("pad", "I"),
)  # struct xfrm_userpolicy_info: 168 octets


class _XfrmBase(nlmsg):  # type: ignore[misc]
    nla_map = _ATTRS

    class encap_tmpl(nla):  # type: ignore[misc]
        """struct xfrm_encap_tmpl (24 octets)."""

        fields = (
            ("encap_type", "H"),
            ("encap_sport", ">H"),
            ("encap_dport", ">H"),
            ("pad", "H"),
            ("encap_oa", "16s"),
        )

    class user_tmpl(nla):  # type: ignore[misc]
        """struct xfrm_user_tmpl (64 octets); one XFRMA_TMPL may hold several."""

        fields = (
            *_ID,
            ("family", "H"),
            ("pad1", "H"),
            ("saddr", "16s"),
            ("reqid", "I"),
            ("mode", "B"),
            ("share", "B"),
            ("optional", "B"),
            ("pad2", "B"),
            ("aalgos", "I"),
            ("ealgos", "I"),
            ("calgos", "I"),
        )

    class mark(nla):  # type: ignore[misc]
        """struct xfrm_mark."""

        fields = (("v", "I"), ("m", "I"))


class xfrm_usersa_info(_XfrmBase):
    """NEWSA / UPDSA / the answer to GETSA and ALLOCSPI."""

    fields = _USERSA_INFO


class xfrm_usersa_id(_XfrmBase):
    """DELSA / GETSA."""

    fields = (("daddr", "16s"), ("spi", ">I"), ("family", "H"), ("proto", "B"), ("pad", "B"))


class xfrm_userspi_info(_XfrmBase):
    """ALLOCSPI."""

    fields = (*_USERSA_INFO, ("min", "I"), ("max", "I"))


class xfrm_userpolicy_info(_XfrmBase):
    """NEWPOLICY / UPDPOLICY / the answer to GETPOLICY."""

    fields = _USERPOLICY_INFO


class xfrm_userpolicy_id(_XfrmBase):
    """DELPOLICY / GETPOLICY."""

    fields = (*_SELECTOR, ("index", "I"), ("dir", "B"), ("pad1", "B"), ("pad2", "H"))


class xfrm_user_expire(_XfrmBase):
    """EXPIRE notification (multicast group XFRMNLGRP_EXPIRE)."""

    fields = (*_USERSA_INFO, ("hard", "B"), ("pad1", "B"), ("pad2", "H"), ("pad3", "I"))


class xfrm_user_polexpire(_XfrmBase):
    fields = (*_USERPOLICY_INFO, ("hard", "B"), ("pad1", "B"), ("pad2", "H"), ("pad3", "I"))


class xfrm_user_acquire(_XfrmBase):
    """ACQUIRE notification (multicast group XFRMNLGRP_ACQUIRE)."""

    fields = (
        *_ID,
        ("saddr", "16s"),
        *_SELECTOR,
        *tuple((f"pol_{n}", f) for n, f in _USERPOLICY_INFO),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
        ("seq", "I"),
    )


class XfrmMarshal(Marshal):  # type: ignore[misc]
    msg_map = {
        XfrmMsg.NEWSA: xfrm_usersa_info,
        XfrmMsg.UPDSA: xfrm_usersa_info,
        XfrmMsg.DELSA: xfrm_usersa_id,
        XfrmMsg.GETSA: xfrm_usersa_id,
        XfrmMsg.NEWPOLICY: xfrm_userpolicy_info,
        XfrmMsg.UPDPOLICY: xfrm_userpolicy_info,
        XfrmMsg.DELPOLICY: xfrm_userpolicy_id,
        XfrmMsg.GETPOLICY: xfrm_userpolicy_id,
        XfrmMsg.ALLOCSPI: xfrm_userspi_info,
        XfrmMsg.EXPIRE: xfrm_user_expire,
        XfrmMsg.ACQUIRE: xfrm_user_acquire,
        XfrmMsg.POLEXPIRE: xfrm_user_polexpire,
    }


# --------------------------------------------------------------------------------------------
# Helpers


def addr16(addr: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """xfrm_address_t: an IPv4 address in the first four octets, zero padded."""
    return ipaddress.ip_address(addr).packed.ljust(16, b"\0")


def addr_from16(data: bytes, family: int) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(data[:4]))
    return str(ipaddress.IPv6Address(data[:16]))


def family_of(addr: str) -> int:
    return socket.AF_INET if ipaddress.ip_address(addr).version == 4 else socket.AF_INET6


def selector_fields(
    src: str,
    dst: str,
    proto: int = 0,
    sport: int | None = None,
    dport: int | None = None,
) -> dict[str, Any]:
    """``sel_*`` fields for prefixes ``src`` -> ``dst`` (CIDR strings of one family)."""
    s, d = ipaddress.ip_network(src), ipaddress.ip_network(dst)
    if s.version != d.version:
        raise ValueError("selector with mixed address families")
    return {
        "sel_daddr": d.network_address.packed.ljust(16, b"\0"),
        "sel_saddr": s.network_address.packed.ljust(16, b"\0"),
        "sel_dport": dport or 0,
        "sel_dport_mask": 0xFFFF if dport is not None else 0,
        "sel_sport": sport or 0,
        "sel_sport_mask": 0xFFFF if sport is not None else 0,
        "sel_family": socket.AF_INET if d.version == 4 else socket.AF_INET6,
        "sel_prefixlen_d": d.prefixlen,
        "sel_prefixlen_s": s.prefixlen,
        "sel_proto": proto,
        "sel_pad1": 0,
        "sel_pad2": 0,
        "sel_ifindex": 0,
        "sel_user": 0,
    }


def lifetime_fields(
    soft_bytes: int | None = None,
    hard_bytes: int | None = None,
    soft_packets: int | None = None,
    hard_packets: int | None = None,
    soft_seconds: float | None = None,
    hard_seconds: float | None = None,
) -> dict[str, int]:
    def v(x: float | None) -> int:
        return XFRM_INF if x is None else int(x)

    def t(x: float | None) -> int:
        return 0 if x is None else max(1, int(x))

    return {
        "lft_soft_byte_limit": v(soft_bytes),
        "lft_hard_byte_limit": v(hard_bytes),
        "lft_soft_packet_limit": v(soft_packets),
        "lft_hard_packet_limit": v(hard_packets),
        "lft_soft_add_expires_seconds": t(soft_seconds),
        "lft_hard_add_expires_seconds": t(hard_seconds),
        "lft_soft_use_expires_seconds": 0,
        "lft_hard_use_expires_seconds": 0,
    }


def zero_fields(fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {name: (b"" if fmt.endswith("s") else 0) for name, fmt in fields}


def algo(name: str, key: bytes) -> bytes:
    """struct xfrm_algo: name[64], key length in bits, key."""
    return struct.pack("64sI", name.encode(), len(key) * 8) + key


def algo_auth(name: str, key: bytes, trunc_bits: int) -> bytes:
    """struct xfrm_algo_auth: name[64], key bits, truncation bits, key."""
    return struct.pack("64sII", name.encode(), len(key) * 8, trunc_bits) + key


def aead(name: str, key: bytes, icv_bits: int) -> bytes:
    """struct xfrm_algo_aead: name[64], key bits (salt included), ICV bits, key."""
    return struct.pack("64sII", name.encode(), len(key) * 8, icv_bits) + key


def replay_esn(window: int) -> bytes:
    """struct xfrm_replay_state_esn with an all-clear bitmap of ``window`` bits."""
    bmp_len = max(1, (window + 31) // 32)
    return struct.pack("6I", bmp_len, 0, 0, 0, 0, window) + bytes(4 * bmp_len)


USERSA_INFO_FIELDS = _USERSA_INFO
USERPOLICY_INFO_FIELDS = _USERPOLICY_INFO
SELECTOR_FIELDS = _SELECTOR
