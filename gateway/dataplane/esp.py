"""Userspace ESP, sans-I/O: tunnel mode (RFC 4303), UDP-encapsulated (RFC 3948).

:class:`EspEngine` holds the security policy and association databases of one gateway.  It
takes bytes and time in and gives bytes and events out, the aioquic way:

* ``outbound(ip_packet, now)`` -> :class:`EspDatagram` (the ESP packet and the peer to send
  it to, UDP port included) or ``None`` when the packet was dropped (and counted);
* ``inbound(esp_packet, remote, now)`` -> the inner IP packet, or ``None`` (dropped, counted);
* ``next_event()`` -> :class:`SaSoftExpired` / :class:`SaHardExpired` for the IKE engine,
  ``get_timer()`` / ``handle_timer(now)`` for time-based lifetimes.

Transforms: AES-GCM with a 16-octet ICV (RFC 4106), AES-CBC with HMAC-SHA-1-96 or
HMAC-SHA2-256/384/512 truncated to half (RFC 3602, RFC 2404, RFC 4868) and
ChaCha20-Poly1305 (RFC 7634).  Anti-replay per RFC 4303 3.4.3 with a window of any size
(default 128), extended sequence numbers per RFC 4303 Appendix A.

A packet leaves only when its addresses and ports fall inside the traffic selectors of a
CHILD_SA (RFC 4301 5.1); a decrypted packet is delivered only when it falls inside the
selectors of the SA that carried it (RFC 4301 5.2).  That is also how quarantine is enforced:
an isolated endpoint's SAs carry only the isolate selectors (:meth:`EspEngine.update_selectors`
moves them to the allow selectors later without touching the keys).

No I/O here: no sockets, no TUN, no Twisted, no pyroute2.
"""

from __future__ import annotations

import enum
import hmac
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ike.constants import EncrId, IntegId
from ike.payloads import TrafficSelector

__all__ = [
    "DEFAULT_REPLAY_WINDOW",
    "DropReason",
    "EspDatagram",
    "EspEngine",
    "EspError",
    "EspTransform",
    "InvalidSaSpec",
    "Lifetimes",
    "PacketInfo",
    "ReplayWindow",
    "SaCounters",
    "SaHardExpired",
    "SaSoftExpired",
    "SaSpec",
    "SaStats",
    "SpiAllocator",
    "parse_ip_packet",
    "selector_matches",
]

Address = tuple[str, int]
"""(IP address as text, UDP port)."""

DEFAULT_REPLAY_WINDOW = 128
"""RFC 4303 3.4.3: 32 is the minimum, 64 recommended; the project asks for at least 128."""

NEXT_HEADER_IPV4 = 4
NEXT_HEADER_IPV6 = 41
NEXT_HEADER_NONE = 59
"""RFC 4303 2.6: a dummy packet (traffic flow confidentiality) carries next header 59."""

_SEQ32 = 1 << 32
_ESP_HEADER = struct.Struct("!II")
_ESP_HEADER_IV64 = struct.Struct("!IIQ")
"""SPI, low 32 bits of the sequence number and the 8-octet AEAD IV (RFC 4106 3.1: the full
sequence number)."""
_ESN_AAD = struct.Struct("!IQ")
_AEAD_NONCE = struct.Struct("!4sQ")
"""Salt and IV (RFC 4106 4, RFC 7634 2)."""


# --------------------------------------------------------------------------------------------
# Errors and drop reasons


class EspError(Exception):
    """Root of the dataplane's errors.  ``reason`` is the drop counter it feeds."""

    reason: DropReason | None = None


class InvalidSaSpec(EspError):
    """The caller asked for an SA we cannot build (unknown transform, wrong key length, ...)."""


class DropReason(enum.StrEnum):
    """Why a packet was dropped; each has a counter in :attr:`EspEngine.drops`."""

    MALFORMED = "malformed"
    """Too short, not a whole number of blocks, bad padding length, inner header broken."""
    UNKNOWN_SPI = "unknown_spi"
    AUTH_FAILED = "auth_failed"
    """ICV mismatch (RFC 4303 3.4.4)."""
    REPLAYED = "replayed"
    """Duplicate or left of the anti-replay window (RFC 4303 3.4.3)."""
    NO_POLICY = "no_policy"
    """Outbound packet outside every CHILD_SA's traffic selectors."""
    POLICY_MISMATCH = "policy_mismatch"
    """Decrypted inner packet outside the selectors of the SA that carried it."""
    EXPIRED = "expired"
    """Hard lifetime reached (or 32-bit sequence number space used up)."""
    DUMMY = "dummy"
    """Next header 59: a TFC dummy packet, discarded as RFC 4303 2.6 says."""


# --------------------------------------------------------------------------------------------
# Inner packet parsing (selectors)


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """What the policy lookup needs from an inner IP packet."""

    version: int
    src: int
    dst: int
    proto: int
    sport: int | None
    dport: int | None
    """Ports for TCP/UDP/SCTP/UDP-Lite; for ICMP the type and code (RFC 4301 4.4.1.1);
    None for a non-first fragment or a protocol without ports."""


_PORT_PROTOS = frozenset({6, 17, 132, 136})
_ICMP_PROTOS = frozenset({1, 58})
_V6_EXT_HEADERS = frozenset({0, 43, 60, 51})


_IPV4_HEADER = struct.Struct("!BxH8xII")
"""Version/IHL, total length, source and destination of an IPv4 header."""


def _ipv4_addresses(packet: bytes) -> tuple[int, int] | None:
    """(source, destination) of an IPv4 packet that :func:`parse_ip_packet` would accept,
    without building a :class:`PacketInfo` (the per-packet fast path for address-only
    selectors); None for anything else (IPv6, or a header that does not hold together: the
    caller then goes through :func:`parse_ip_packet`, which says why)."""
    if len(packet) < 20:
        return None
    vihl, total, src, dst = _IPV4_HEADER.unpack_from(packet)
    if vihl >> 4 != 4 or total != len(packet) or not 20 <= (vihl & 0x0F) * 4 <= total:
        return None
    return src, dst


def parse_ip_packet(packet: bytes) -> PacketInfo:
    """Addresses, protocol and ports of an IPv4 or IPv6 packet; raises :class:`EspError`
    (reason MALFORMED) when the header does not hold together."""
    if not packet:
        raise _malformed("empty inner packet")
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            raise _malformed("IPv4 header truncated")
        ihl = (packet[0] & 0x0F) * 4
        total = int.from_bytes(packet[2:4], "big")
        if ihl < 20 or total < ihl or total != len(packet):
            raise _malformed("IPv4 header or total length wrong")
        proto = packet[9]
        src = int.from_bytes(packet[12:16], "big")
        dst = int.from_bytes(packet[16:20], "big")
        frag_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
        offset = ihl if frag_offset == 0 else None
    elif version == 6:
        if len(packet) < 40:
            raise _malformed("IPv6 header truncated")
        if int.from_bytes(packet[4:6], "big") + 40 != len(packet):
            raise _malformed("IPv6 payload length wrong")
        src = int.from_bytes(packet[8:24], "big")
        dst = int.from_bytes(packet[24:40], "big")
        proto = packet[6]
        pos: int | None = 40
        while proto in _V6_EXT_HEADERS or proto == 44:
            assert pos is not None
            if len(packet) < pos + 8:
                raise _malformed("IPv6 extension header truncated")
            if proto == 44:  # fragment header: later fragments carry no ports
                if int.from_bytes(packet[pos + 2 : pos + 4], "big") & 0xFFF8:
                    proto, pos = packet[pos], None
                    break
                proto, pos = packet[pos], pos + 8
            elif proto == 51:
                proto, pos = packet[pos], pos + (packet[pos + 1] + 2) * 4
            else:
                proto, pos = packet[pos], pos + (packet[pos + 1] + 1) * 8
        offset = pos
    else:
        raise _malformed(f"IP version {version}")
    sport = dport = None
    if offset is not None:
        if proto in _PORT_PROTOS and len(packet) >= offset + 4:
            sport = int.from_bytes(packet[offset : offset + 2], "big")
            dport = int.from_bytes(packet[offset + 2 : offset + 4], "big")
        elif proto in _ICMP_PROTOS and len(packet) >= offset + 2:
            # RFC 4301 4.4.1.1: ICMP type and code sit where the ports are matched.
            sport = dport = (packet[offset] << 8) | packet[offset + 1]
    return PacketInfo(version, src, dst, proto, sport, dport)


@dataclass(frozen=True, slots=True)
class _Sel:
    """A traffic selector with integer addresses, for fast matching."""

    version: int
    start: int
    end: int
    proto: int
    start_port: int
    end_port: int

    @classmethod
    def of(cls, ts: TrafficSelector) -> _Sel:
        return cls(
            ts.start_addr.version,
            int(ts.start_addr),
            int(ts.end_addr),
            ts.ip_proto,
            ts.start_port,
            ts.end_port,
        )

    def match(self, addr: int, proto: int, port: int | None) -> bool:
        if not self.start <= addr <= self.end:
            return False
        if self.proto and self.proto != proto:
            return False
        if self.start_port == 0 and self.end_port == 65535:
            return True
        return port is not None and self.start_port <= port <= self.end_port


def selector_matches(
    local_ts: Iterable[TrafficSelector],
    remote_ts: Iterable[TrafficSelector],
    info: PacketInfo,
    *,
    outbound: bool,
) -> bool:
    """RFC 4301 4.4.1: the packet's local side in one of ``local_ts`` and its remote side in
    one of ``remote_ts`` (IKEv2 pairs every TSi with every TSr, RFC 7296 2.9)."""
    lo = [_Sel.of(t) for t in local_ts]
    re = [_Sel.of(t) for t in remote_ts]
    return _match(lo, re, info, outbound)


def _match(lo: list[_Sel], re: list[_Sel], info: PacketInfo, outbound: bool) -> bool:
    if outbound:
        laddr, lport, raddr, rport = info.src, info.sport, info.dst, info.dport
    else:
        laddr, lport, raddr, rport = info.dst, info.dport, info.src, info.sport
    return any(s.version == info.version and s.match(laddr, info.proto, lport) for s in lo) and any(
        s.version == info.version and s.match(raddr, info.proto, rport) for s in re
    )


# --------------------------------------------------------------------------------------------
# Transforms


@dataclass(frozen=True, slots=True)
class EspTransform:
    """The negotiated ESP transform: IKEv2 transform IDs (RFC 7296 3.3.2) and key sizes."""

    encr_id: int
    encr_key_bits: int
    integ_id: int = 0

    @property
    def aead(self) -> bool:
        return self.encr_id in (EncrId.ENCR_AES_GCM_16, EncrId.ENCR_CHACHA20_POLY1305)

    @property
    def encr_key_len(self) -> int:
        """Octets of keying material for encryption (key plus 4-octet salt for AEADs,
        RFC 4106 8.1 and RFC 7634 2)."""
        return self.encr_key_bits // 8 + (4 if self.aead else 0)

    @property
    def integ(self) -> tuple[str, int, int] | None:
        """(hash name, key length, ICV length) of the HMAC, None for AEADs."""
        return _HMACS.get(self.integ_id)

    @property
    def integ_key_len(self) -> int:
        integ = self.integ
        return integ[1] if integ else 0

    @property
    def iv_len(self) -> int:
        return 8 if self.aead else 16

    @property
    def icv_len(self) -> int:
        if self.aead:
            return 16
        integ = self.integ
        return integ[2] if integ else 0

    @property
    def block(self) -> int:
        return 4 if self.aead else 16

    def validate(self) -> None:
        if self.encr_id == EncrId.ENCR_AES_GCM_16:
            ok = self.encr_key_bits in (128, 192, 256) and self.integ_id == 0
        elif self.encr_id == EncrId.ENCR_CHACHA20_POLY1305:
            ok = self.encr_key_bits == 256 and self.integ_id == 0
        elif self.encr_id == EncrId.ENCR_AES_CBC:
            ok = self.encr_key_bits in (128, 192, 256) and self.integ_id in _HMACS
        else:
            ok = False
        if not ok:
            raise InvalidSaSpec(
                f"unsupported ESP transform encr={self.encr_id}/{self.encr_key_bits} "
                f"integ={self.integ_id}"
            )

    @property
    def name(self) -> str:
        """strongSwan's proposal keyword (``aes128gcm16``, ``aes256-sha256``, ...)."""
        if self.encr_id == EncrId.ENCR_CHACHA20_POLY1305:
            return "chacha20poly1305"
        if self.encr_id == EncrId.ENCR_AES_GCM_16:
            return f"aes{self.encr_key_bits}gcm16"
        integ = {2: "sha1", 12: "sha256", 13: "sha384", 14: "sha512"}.get(self.integ_id, "?")
        return f"aes{self.encr_key_bits}-{integ}"


_HMACS: dict[int, tuple[str, int, int]] = {
    # RFC 2404 (HMAC-SHA-1-96) and RFC 4868 2.3 (SHA-2 truncated to half the output).
    IntegId.AUTH_HMAC_SHA1_96: ("sha1", 20, 12),
    IntegId.AUTH_HMAC_SHA2_256_128: ("sha256", 32, 16),
    IntegId.AUTH_HMAC_SHA2_384_192: ("sha384", 48, 24),
    IntegId.AUTH_HMAC_SHA2_512_256: ("sha512", 64, 32),
}


# --------------------------------------------------------------------------------------------
# SA specification (what the IKE engine negotiated)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Soft limits raise :class:`SaSoftExpired` (time to rekey); hard limits remove the SA and
    raise :class:`SaHardExpired`.  ``None`` means no limit.  Seconds count from installation.
    """

    soft_bytes: int | None = None
    hard_bytes: int | None = None
    soft_packets: int | None = None
    hard_packets: int | None = None
    soft_seconds: float | None = None
    hard_seconds: float | None = None


@dataclass(frozen=True, slots=True, repr=False)
class SaSpec:
    """Both directions of one CHILD_SA as the dataplane installs them.

    ``spi_in`` names the CHILD_SA everywhere (as in the IKE engine).  ``local_ts`` /
    ``remote_ts`` are the negotiated traffic selectors; ``remote`` is the peer's outer
    address and UDP port (4500 after NAT-T).
    """

    ike_sa: bytes
    name: str
    spi_in: int
    spi_out: int
    transform: EspTransform
    encr_key_in: bytes
    integ_key_in: bytes
    encr_key_out: bytes
    integ_key_out: bytes
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    local: Address
    remote: Address
    udp_encap: bool = True
    esn: bool = False
    replay_window: int = DEFAULT_REPLAY_WINDOW
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    replaces: int | None = None
    mark: tuple[int, int] | None = None
    """(value, mask) for the XFRM backend's ``XFRMA_MARK``; the userspace backend ignores it."""
    reqid: int = 0
    """XFRM request ID tying policies to the SA pair (0: the backend picks one)."""

    def __repr__(self) -> str:
        return (
            f"SaSpec({self.name}, in={self.spi_in:08x}, out={self.spi_out:08x}, "
            f"{self.transform.name}, {[str(t) for t in self.local_ts]} === "
            f"{[str(t) for t in self.remote_ts]}, remote={self.remote})"
        )

    def validate(self) -> None:
        t = self.transform
        t.validate()
        for what, key, want in (
            ("inbound encryption", self.encr_key_in, t.encr_key_len),
            ("outbound encryption", self.encr_key_out, t.encr_key_len),
            ("inbound integrity", self.integ_key_in, t.integ_key_len),
            ("outbound integrity", self.integ_key_out, t.integ_key_len),
        ):
            if len(key) != want:
                raise InvalidSaSpec(f"{what} key is {len(key)} octets, want {want}")
        if not (256 <= self.spi_in < _SEQ32 and 256 <= self.spi_out < _SEQ32):
            raise InvalidSaSpec("SPIs 0-255 are reserved (RFC 4303 2.1)")
        if not self.local_ts or not self.remote_ts:
            raise InvalidSaSpec("an SA needs local and remote traffic selectors")
        if self.replay_window < 0:
            raise InvalidSaSpec("negative replay window")


# --------------------------------------------------------------------------------------------
# Anti-replay (RFC 4303 3.4.3 and Appendix A)


class ReplayWindow:
    """Sliding window over received sequence numbers; bit ``i`` of the bitmap stands for
    ``top - i``.  ``size`` 0 disables replay protection (the sequence number is still
    tracked for ESN)."""

    __slots__ = ("bitmap", "esn", "size", "top")

    def __init__(self, size: int = DEFAULT_REPLAY_WINDOW, *, esn: bool = False) -> None:
        self.size = size
        self.esn = esn
        self.top = 0
        self.bitmap = 0

    def infer(self, seq_low: int) -> int:
        """The full sequence number of a received low-order 32 bits (RFC 4303 A.2.1 with
        ESN; the low bits themselves without)."""
        if not self.esn:
            return seq_low
        w = max(self.size, 1)
        th, tl = self.top >> 32, self.top & 0xFFFFFFFF
        if tl >= w - 1:
            seqh = th if seq_low >= tl - w + 1 else th + 1
        else:
            seqh = th - 1 if seq_low >= (tl - w + 1) % _SEQ32 else th
        if seqh < 0:
            seqh = 0
        return (seqh << 32) | seq_low

    def check(self, seq: int) -> bool:
        """True when ``seq`` may be accepted (before the ICV check, RFC 4303 3.4.3)."""
        if seq == 0:
            return False  # never sent (the first packet carries 1)
        if seq > self.top or self.size == 0:
            return True
        diff = self.top - seq
        if diff >= self.size:
            return False
        return not (self.bitmap >> diff) & 1

    def update(self, seq: int) -> None:
        """Record ``seq`` after its ICV verified."""
        if seq > self.top:
            shift = seq - self.top
            if shift >= self.size:  # the whole window moves on (and no huge shift: ESN jumps)
                self.bitmap = 1
            else:
                self.bitmap = ((self.bitmap << shift) | 1) & ((1 << self.size) - 1)
            self.top = seq
        elif self.size:
            self.bitmap |= 1 << (self.top - seq)


# --------------------------------------------------------------------------------------------
# Per-SA state


@dataclass(slots=True)
class SaCounters:
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class SaStats:
    """Counters of one CHILD_SA (both directions), for ``stats``."""

    ike_sa: str
    name: str
    spi_in: int
    spi_out: int
    transform: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    remote: Address
    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    replayed: int
    auth_failed: int
    installed_at: float
    soft_expired: bool


class _Cipher:
    """Encrypt/decrypt one direction of an SA (keys set up once)."""

    __slots__ = (
        "_aead",
        "_cbc_key",
        "_hash",
        "_icv",
        "_integ_key",
        "_iv_len",
        "_salt",
        "aead",
        "block",
        "overhead",
        "transform",
    )

    def __init__(self, transform: EspTransform, encr_key: bytes, integ_key: bytes) -> None:
        self.transform = transform
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        self._cbc_key = b""
        self._salt = b""
        self._hash = ""
        self._integ_key = integ_key
        # The transform's derived sizes, once per SA rather than through properties per packet.
        self.aead = transform.aead
        self.block = transform.block
        self._iv_len = transform.iv_len
        self._icv = transform.icv_len
        self.overhead = 8 + self._iv_len + self._icv
        """ESP header, IV and ICV around the ciphertext."""
        if transform.encr_id == EncrId.ENCR_AES_GCM_16:
            self._aead, self._salt = AESGCM(encr_key[:-4]), encr_key[-4:]
        elif transform.encr_id == EncrId.ENCR_CHACHA20_POLY1305:
            self._aead, self._salt = ChaCha20Poly1305(encr_key[:-4]), encr_key[-4:]
        else:
            self._cbc_key = encr_key
            integ = transform.integ
            assert integ is not None
            self._hash = integ[0]

    def seal(self, spi: int, seq: int, esn: bool, plaintext: bytes, iv: bytes) -> bytes:
        """The ESP packet (header, IV, ciphertext, ICV) for a padded plaintext."""
        if self._aead is not None:
            return self._seal_aead(spi, seq, esn, plaintext, int.from_bytes(iv))
        header = _ESP_HEADER.pack(spi, seq & 0xFFFFFFFF)
        enc = Cipher(algorithms.AES(self._cbc_key), modes.CBC(iv)).encryptor()
        body = header + iv + enc.update(plaintext) + enc.finalize()
        return body + self._mac(body, seq, esn)

    def seal_aead(self, spi: int, seq: int, esn: bool, plaintext: bytes) -> bytes:
        """:meth:`seal` for an AEAD with the sequence number as the IV (RFC 4106 3.1, RFC 7634
        2: unique per key)."""
        return self._seal_aead(spi, seq, esn, plaintext, seq)

    def _seal_aead(self, spi: int, seq: int, esn: bool, plaintext: bytes, iv: int) -> bytes:
        """Header and 8-octet IV packed in one go; the AAD is RFC 4106 5's."""
        assert self._aead is not None
        low = seq & 0xFFFFFFFF
        aad = _ESN_AAD.pack(spi, seq) if esn else _ESP_HEADER.pack(spi, low)
        return _ESP_HEADER_IV64.pack(spi, low, iv) + self._aead.encrypt(
            _AEAD_NONCE.pack(self._salt, iv), plaintext, aad
        )

    def open(self, packet: bytes, spi: int, seq: int, esn: bool) -> bytes | None:
        """The padded plaintext, or None when the ICV does not verify."""
        iv_len, icv = self._iv_len, self._icv
        if self._aead is not None:
            # Without ESN the AAD is the received SPI and sequence number as they stand.
            aad = _ESN_AAD.pack(spi, seq) if esn else packet[:8]
            try:
                return self._aead.decrypt(self._salt + packet[8:16], packet[16:], aad)
            except InvalidTag:
                return None
        iv = packet[8 : 8 + iv_len]
        body, tag = packet[:-icv], packet[-icv:]
        if not hmac.compare_digest(self._mac(body, seq, esn), tag):
            return None
        dec = Cipher(algorithms.AES(self._cbc_key), modes.CBC(iv)).decryptor()
        return dec.update(body[8 + iv_len :]) + dec.finalize()

    def _mac(self, body: bytes, seq: int, esn: bool) -> bytes:
        # RFC 4303 3.3.2.2.1 / 2.2.1: with ESN the high-order 32 bits are appended (not sent).
        data = body + (seq >> 32).to_bytes(4, "big") if esn else body
        return hmac.digest(self._integ_key, data, self._hash)[: self._icv]


class _Sa:
    """One installed CHILD_SA: both directions, selectors, counters and lifetimes."""

    def __init__(self, spec: SaSpec, now: float) -> None:
        self.spec = spec
        self.out_cipher = _Cipher(spec.transform, spec.encr_key_out, spec.integ_key_out)
        self.in_cipher = _Cipher(spec.transform, spec.encr_key_in, spec.integ_key_in)
        self.replay = ReplayWindow(spec.replay_window, esn=spec.esn)
        self.seq_out = 0
        self.inb = SaCounters()
        self.outb = SaCounters()
        self.replayed = 0
        self.auth_failed = 0
        self.installed_at = now
        self.soft_expired = False
        self.hard_expired = False
        self.set_selectors(spec.local_ts, spec.remote_ts)
        self.iv_base = os.urandom(8)
        lt = spec.lifetimes
        self.volume_limited = not (
            lt.soft_bytes is None
            and lt.hard_bytes is None
            and lt.soft_packets is None
            and lt.hard_packets is None
        )
        """Whether a byte or packet lifetime needs checking after each packet."""

    def set_selectors(
        self, local_ts: tuple[TrafficSelector, ...], remote_ts: tuple[TrafficSelector, ...]
    ) -> None:
        self.local_ts, self.remote_ts = local_ts, remote_ts
        self.lo = [_Sel.of(t) for t in local_ts]
        self.re = [_Sel.of(t) for t in remote_ts]
        # Fast path: selectors on addresses only (any protocol, all ports), the usual case.
        self.addr_only = all(
            x.proto == 0 and (x.start_port, x.end_port) == (0, 65535) for x in self.lo + self.re
        )
        self.lo_r = [(x.version, x.start, x.end) for x in self.lo]
        self.re_r = [(x.version, x.start, x.end) for x in self.re]
        self.lo4 = [(x.start, x.end) for x in self.lo if x.version == 4]
        self.re4 = [(x.start, x.end) for x in self.re if x.version == 4]

    def matches(self, info: PacketInfo, outbound: bool) -> bool:
        if not self.addr_only:
            return _match(self.lo, self.re, info, outbound)
        laddr, raddr = (info.src, info.dst) if outbound else (info.dst, info.src)
        v = info.version
        return any(ver == v and lo <= laddr <= hi for ver, lo, hi in self.lo_r) and any(
            ver == v and lo <= raddr <= hi for ver, lo, hi in self.re_r
        )

    def matches_v4(self, laddr: int, raddr: int) -> bool:
        """:meth:`matches` for an IPv4 packet and address-only selectors (``addr_only``)."""
        for lo, hi in self.lo4:
            if lo <= laddr <= hi:
                break
        else:
            return False
        for lo, hi in self.re4:
            if lo <= raddr <= hi:
                return True
        return False

    def stats(self) -> SaStats:
        s = self.spec
        return SaStats(
            s.ike_sa.hex(),
            s.name,
            s.spi_in,
            s.spi_out,
            s.transform.name,
            tuple(str(t) for t in self.local_ts),
            tuple(str(t) for t in self.remote_ts),
            s.remote,
            self.inb.packets,
            self.inb.bytes,
            self.outb.packets,
            self.outb.bytes,
            self.replayed,
            self.auth_failed,
            self.installed_at,
            self.soft_expired,
        )


# --------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True, slots=True)
class EspDatagram:
    """An ESP packet to send to ``remote`` (UDP-encapsulated, RFC 3948: the adapter writes it
    as the payload of a UDP datagram from port 4500, no non-ESP marker)."""

    data: bytes
    remote: Address
    spi: int


@dataclass(frozen=True, slots=True)
class SaSoftExpired:
    """A soft lifetime ran out: the IKE engine should rekey the CHILD_SA (RFC 7296 2.8)."""

    ike_sa: bytes
    spi_in: int
    limit: str
    """"bytes", "packets" or "time"."""


@dataclass(frozen=True, slots=True)
class SaHardExpired:
    """A hard lifetime ran out: the SA is gone from the dataplane; the IKE engine should delete
    the CHILD_SA."""

    ike_sa: bytes
    spi_in: int
    limit: str
    """"bytes", "packets", "time" or "sequence" (32-bit sequence numbers used up)."""


ExpireEvent = SaSoftExpired | SaHardExpired


# --------------------------------------------------------------------------------------------
# SPI allocation


class SpiAllocator:
    """Random inbound SPIs, unique among those in use or reserved, never 0-255
    (RFC 4303 2.1)."""

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._used: set[int] = set()

    def allocate(self) -> int:
        for _ in range(1000):
            spi = int.from_bytes(self._random(4), "big")
            if spi >= 256 and spi not in self._used:
                self._used.add(spi)
                return spi
        raise EspError("no free SPI")

    def reserve(self, spi: int) -> None:
        self._used.add(spi)

    def release(self, spi: int) -> None:
        self._used.discard(spi)

    def __contains__(self, spi: int) -> bool:
        return spi in self._used


# --------------------------------------------------------------------------------------------
# The engine


class EspEngine:
    """SPD and SAD of one userspace dataplane.  See the module docstring."""

    def __init__(self, *, random: Callable[[int], bytes] = os.urandom) -> None:
        self.spis = SpiAllocator(random)
        self._sas: dict[int, _Sa] = {}
        self._by_host: dict[int, list[_Sa]] = {}
        """Outbound lookup: remote /32 or /128 host selector -> SAs, newest first."""
        self._ranged: list[_Sa] = []
        """SAs whose remote selectors are ranges, newest first."""
        self._events: list[ExpireEvent] = []
        self.drops: dict[DropReason, int] = dict.fromkeys(DropReason, 0)
        self.packets_in = self.packets_out = self.bytes_in = self.bytes_out = 0

    # -- SA management ----------------------------------------------------------------------

    def install(self, spec: SaSpec, now: float) -> None:
        """Install both directions of a CHILD_SA.  A newer SA wins outbound traffic over older
        ones with overlapping selectors, so a rekeyed CHILD_SA takes over at once while the
        old one still accepts packets until it is deleted (RFC 7296 2.8)."""
        spec.validate()
        if spec.spi_in in self._sas:
            # Two CHILD_SAs cannot share an inbound SPI (RFC 4301 4.1); the kernel answers
            # EEXIST here too.
            raise InvalidSaSpec(f"inbound SPI {spec.spi_in:08x} is already in use")
        sa = _Sa(spec, now)
        self.spis.reserve(spec.spi_in)
        self._sas[spec.spi_in] = sa
        self._index(sa)

    def remove(self, spi_in: int) -> bool:
        """Remove a CHILD_SA; False when there was none."""
        sa = self._sas.pop(spi_in, None)
        if sa is None:
            return False
        self._unindex(sa)
        self.spis.release(spi_in)
        return True

    def update_selectors(
        self,
        spi_in: int,
        local_ts: tuple[TrafficSelector, ...],
        remote_ts: tuple[TrafficSelector, ...],
    ) -> None:
        """Replace the traffic selectors of an installed CHILD_SA (quarantine -> allow) in
        both directions; keys, counters and sequence numbers stay."""
        sa = self._sas.get(spi_in)
        if sa is None:
            raise EspError(f"no CHILD_SA with inbound SPI {spi_in:08x}")
        if not local_ts or not remote_ts:
            raise InvalidSaSpec("an SA needs local and remote traffic selectors")
        self._unindex(sa)
        sa.set_selectors(local_ts, remote_ts)
        self._index(sa, newest=False)

    def sas_of(self, ike_sa: bytes) -> list[int]:
        """Inbound SPIs of the CHILD_SAs of one IKE_SA."""
        return [spi for spi, sa in self._sas.items() if sa.spec.ike_sa == ike_sa]

    def __contains__(self, spi_in: int) -> bool:
        return spi_in in self._sas

    def __len__(self) -> int:
        return len(self._sas)

    def _index(self, sa: _Sa, newest: bool = True) -> None:
        hosts = [s.start for s in sa.re if s.start == s.end]
        if len(hosts) == len(sa.re):
            for h in hosts:
                bucket = self._by_host.setdefault(h, [])
                if newest:
                    bucket.insert(0, sa)
                else:
                    bucket.append(sa)
        elif newest:
            self._ranged.insert(0, sa)
        else:
            self._ranged.append(sa)

    def _unindex(self, sa: _Sa) -> None:
        for h in {s.start for s in sa.re}:
            bucket = self._by_host.get(h)
            if bucket and sa in bucket:
                bucket.remove(sa)
                if not bucket:
                    del self._by_host[h]
        if sa in self._ranged:
            self._ranged.remove(sa)

    # -- packets ----------------------------------------------------------------------------

    def outbound(self, packet: bytes, now: float) -> EspDatagram | None:
        """Encapsulate an IP packet read from the TUN device; None when it was dropped."""
        out = self.encapsulate(packet, now)
        if out is None:
            return None
        return EspDatagram(out[0], out[1], _ESP_HEADER.unpack_from(out[0])[0])

    def encapsulate(self, packet: bytes, now: float) -> tuple[bytes, Address] | None:
        """:meth:`outbound` as a plain (ESP packet, remote) tuple, for the adapter's
        per-packet path; None when the packet was dropped."""
        addrs = _ipv4_addresses(packet)
        if addrs is not None:
            sa = self._lookup_out_v4(packet, addrs[0], addrs[1])
            ipv4 = True
        else:
            try:
                info = parse_ip_packet(packet)
            except EspError:
                self._drop(DropReason.MALFORMED)
                return None
            sa = self._lookup_out(info)
            ipv4 = info.version == 4
        if sa is None:
            self._drop(DropReason.NO_POLICY)
            return None
        spec = sa.spec
        seq = sa.seq_out + 1
        if not spec.esn and seq >= _SEQ32:
            # RFC 4303 3.3.3: the counter must not cycle; the SA is used up.
            self._expire(sa, "sequence")
            self._drop(DropReason.EXPIRED)
            return None
        sa.seq_out = seq
        cipher = sa.out_cipher
        size = len(packet)
        plaintext = packet + _TRAILERS[ipv4][-(size + 2) % cipher.block]
        if cipher.aead:
            # RFC 4106 3.1: the IV must not repeat under one key; the sequence number never
            # does.
            data = cipher.seal_aead(spec.spi_out, seq, spec.esn, plaintext)
        else:
            iv = os.urandom(16)  # RFC 3602 2.3: unpredictable IV for CBC
            data = cipher.seal(spec.spi_out, seq, spec.esn, plaintext, iv)
        outb = sa.outb
        outb.packets += 1
        outb.bytes += size
        self.packets_out += 1
        self.bytes_out += size
        if sa.volume_limited:
            self._check_volume(sa, outb)
        return data, spec.remote

    def inbound(self, data: bytes, remote: Address | None, now: float) -> bytes | None:
        """Decapsulate a UDP-encapsulated ESP packet (non-ESP marker already told apart);
        returns the inner IP packet to write to the TUN device, None when dropped."""
        if len(data) < 8:
            self._drop(DropReason.MALFORMED)
            return None
        spi, seq_low = _ESP_HEADER.unpack_from(data)
        sa = self._sas.get(spi)
        if sa is None:
            self._drop(DropReason.UNKNOWN_SPI)
            return None
        cipher = sa.in_cipher
        ct_len = len(data) - cipher.overhead
        if ct_len < 2 or ct_len % cipher.block:
            self._drop(DropReason.MALFORMED)
            return None
        replay = sa.replay
        esn = sa.spec.esn
        seq = replay.infer(seq_low) if esn else seq_low
        if not replay.check(seq):
            sa.replayed += 1
            self._drop(DropReason.REPLAYED)
            return None
        plain = cipher.open(data, spi, seq, esn)
        if plain is None:
            sa.auth_failed += 1
            self._drop(DropReason.AUTH_FAILED)
            return None
        replay.update(seq)
        pad_len, next_header = plain[-2], plain[-1]
        if pad_len + 2 > len(plain):
            self._drop(DropReason.MALFORMED)
            return None
        inner = plain[: len(plain) - 2 - pad_len]
        if next_header == NEXT_HEADER_NONE:
            self._drop(DropReason.DUMMY)
            return None
        if next_header not in (NEXT_HEADER_IPV4, NEXT_HEADER_IPV6):
            self._drop(DropReason.MALFORMED)
            return None
        if next_header == NEXT_HEADER_IPV4 and sa.addr_only:
            addrs = _ipv4_addresses(inner)
            if addrs is not None:
                if sa.matches_v4(addrs[1], addrs[0]):
                    return self._delivered(sa, inner)
                self._drop(DropReason.POLICY_MISMATCH)
                return None
        try:
            info = parse_ip_packet(inner)
        except EspError:
            self._drop(DropReason.MALFORMED)
            return None
        if (info.version == 4) != (next_header == NEXT_HEADER_IPV4):
            self._drop(DropReason.MALFORMED)
            return None
        if not sa.matches(info, False):
            self._drop(DropReason.POLICY_MISMATCH)
            return None
        return self._delivered(sa, inner)

    def _delivered(self, sa: _Sa, inner: bytes) -> bytes:
        """Count an inner packet that passed every check."""
        inb = sa.inb
        size = len(inner)
        inb.packets += 1
        inb.bytes += size
        self.packets_in += 1
        self.bytes_in += size
        if sa.volume_limited:
            self._check_volume(sa, inb)
        return inner

    def _lookup_out_v4(self, packet: bytes, src: int, dst: int) -> _Sa | None:
        """:meth:`_lookup_out` for a well-formed IPv4 packet, in the same order; the full
        :class:`PacketInfo` is parsed only if an SA with port or protocol selectors is met."""
        info: PacketInfo | None = None
        for candidates in (self._by_host.get(dst, ()), self._ranged):
            for sa in candidates:
                if sa.addr_only:
                    if sa.matches_v4(src, dst):
                        return sa
                    continue
                if info is None:
                    info = parse_ip_packet(packet)  # cannot fail: the header was checked
                if sa.matches(info, True):
                    return sa
        return None

    def _lookup_out(self, info: PacketInfo) -> _Sa | None:
        for sa in self._by_host.get(info.dst, ()):
            if sa.matches(info, True):
                return sa
        for sa in self._ranged:
            if sa.matches(info, True):
                return sa
        return None

    def _drop(self, reason: DropReason) -> None:
        self.drops[reason] += 1

    # -- lifetimes --------------------------------------------------------------------------

    def _check_volume(self, sa: _Sa, counters: SaCounters) -> None:
        lt = sa.spec.lifetimes
        if lt.hard_bytes is not None and counters.bytes >= lt.hard_bytes:
            self._expire(sa, "bytes")
        elif lt.hard_packets is not None and counters.packets >= lt.hard_packets:
            self._expire(sa, "packets")
        elif not sa.soft_expired and (
            (lt.soft_bytes is not None and counters.bytes >= lt.soft_bytes)
            or (lt.soft_packets is not None and counters.packets >= lt.soft_packets)
        ):
            sa.soft_expired = True
            limit = (
                "bytes"
                if lt.soft_bytes is not None and counters.bytes >= lt.soft_bytes
                else "packets"
            )
            self._events.append(SaSoftExpired(sa.spec.ike_sa, sa.spec.spi_in, limit))

    def _expire(self, sa: _Sa, limit: str) -> None:
        if sa.hard_expired:
            return
        sa.hard_expired = True
        self.remove(sa.spec.spi_in)
        self._events.append(SaHardExpired(sa.spec.ike_sa, sa.spec.spi_in, limit))

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has something to do (time-based lifetimes)."""
        times: list[float] = []
        for sa in self._sas.values():
            lt = sa.spec.lifetimes
            if lt.soft_seconds is not None and not sa.soft_expired:
                times.append(sa.installed_at + lt.soft_seconds)
            if lt.hard_seconds is not None:
                times.append(sa.installed_at + lt.hard_seconds)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for sa in list(self._sas.values()):
            lt = sa.spec.lifetimes
            if lt.hard_seconds is not None and now >= sa.installed_at + lt.hard_seconds:
                self._expire(sa, "time")
            elif (
                lt.soft_seconds is not None
                and not sa.soft_expired
                and now >= sa.installed_at + lt.soft_seconds
            ):
                sa.soft_expired = True
                self._events.append(SaSoftExpired(sa.spec.ike_sa, sa.spec.spi_in, "time"))

    def next_event(self) -> ExpireEvent | None:
        return self._events.pop(0) if self._events else None

    # -- stats ------------------------------------------------------------------------------

    def sa_stats(self) -> list[SaStats]:
        return [sa.stats() for sa in self._sas.values()]

    def sa_stat(self, spi_in: int) -> SaStats | None:
        sa = self._sas.get(spi_in)
        return sa.stats() if sa else None


_PADDING = [bytes(range(1, n + 1)) for n in range(16)]
"""RFC 4303 2.4: default padding is 1, 2, 3, ..."""
_TRAILERS = [
    [_PADDING[n] + bytes((n, next_header)) for n in range(16)]
    for next_header in (NEXT_HEADER_IPV6, NEXT_HEADER_IPV4)
]
"""Padding, pad length and next header, by [IPv4?][pad length]."""


def _malformed(text: str) -> EspError:
    err = EspError(text)
    err.reason = DropReason.MALFORMED
    return err
