"""Protected Access Credentials (RFC 5422): the server's PAC-Opaque sealing and the peer's store.

PAC-Opaque (opaque to the peer, RFC 5422 4.2.2) is ours to define::

    format (1) = 1 | key id (4) | nonce (12) | AES-256-GCM(PAC-Key (32) | expiry (8) | identity)

with the A-ID as associated data, so a PAC issued by another authority (or for another A-ID)
does not open.  :class:`PacKeyring` holds the sealing keys: ``rotate()`` makes a new key the
current one while older keys keep opening the PACs they sealed until those have expired
(``retire_at``), after which they are dropped.  A PAC that does not open, is malformed or
has expired gives ``None``: the caller falls back to a full handshake and provisions a new one.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ike.eap_fast.tlv import (
    PacAttr,
    PacAttrType,
    PacType,
    TlvError,
    encode_pac_attrs,
    parse_pac_attrs,
)

__all__ = ["OpenedPac", "Pac", "PacKeyring", "PacStore"]

_FORMAT = 1
_PAC_TLV = 11
"""The EAP-FAST PAC TLV type (RFC 5422 4.2), used as the record type of a dumped store."""
_HEADER = struct.Struct("!BI12s")


@dataclass(frozen=True, slots=True)
class OpenedPac:
    """What a PAC-Opaque holds once opened."""

    pac_key: bytes = field(repr=False)
    expires: int
    """Unix seconds."""
    identity: bytes
    key_id: int

    def remaining(self, now: float) -> float:
        return self.expires - now


class PacKeyring:
    """PAC-Opaque sealing keys (AES-256-GCM) with rotation.

    :param key: the current 32-byte key (random when None: PACs then die with the process).
    :param pac_lifetime: seconds a PAC is valid; a rotated-out key is kept this long.
    :param previous: older keys (configuration after a rotation); they open PACs until
        ``now + pac_lifetime``.
    """

    def __init__(
        self,
        key: bytes | None = None,
        *,
        pac_lifetime: int = 90 * 86400,
        previous: Sequence[bytes] = (),
        now: float | None = None,
    ) -> None:
        if pac_lifetime <= 0:
            raise ValueError("pac_lifetime must be positive")
        if previous and now is None:
            raise ValueError("previous keys need the current time (they retire a lifetime later)")
        self.pac_lifetime = pac_lifetime
        self._keys: dict[int, tuple[bytes, float | None]] = {}
        self._current = 0
        for old in previous:
            assert now is not None
            self._install(old)
            self._keys[self._current] = (old, now + pac_lifetime)
        self._install(key if key is not None else os.urandom(32))

    def __repr__(self) -> str:
        return f"PacKeyring(current={self._current}, keys={len(self._keys)}, <secret>)"

    def _install(self, key: bytes) -> int:
        if len(key) != 32:
            raise ValueError("PAC-Opaque keys are 32 bytes (AES-256-GCM)")
        # The key id is derived from the key, so PACs survive a restart with the same keys.
        key_id = int.from_bytes(hashlib.sha256(b"EAP-FAST PAC-Opaque key id" + key).digest()[:4])
        if key_id in self._keys and self._keys[key_id][0] != key:  # pragma: no cover - 2**-32
            raise ValueError("PAC-Opaque key id collision; use another key")
        self._keys[key_id] = (key, None)
        self._current = key_id
        return key_id

    @property
    def current_key_id(self) -> int:
        return self._current

    @property
    def key_ids(self) -> tuple[int, ...]:
        return tuple(self._keys)

    def rotate(self, now: float, key: bytes | None = None) -> int:
        """Make a new key current; the old one opens PACs until ``now + pac_lifetime``."""
        old_key, _ = self._keys[self._current]
        self._keys[self._current] = (old_key, now + self.pac_lifetime)
        self.prune(now)
        return self._install(key if key is not None else os.urandom(32))

    def prune(self, now: float) -> None:
        for key_id, (_, retire_at) in list(self._keys.items()):
            if retire_at is not None and now >= retire_at:
                del self._keys[key_id]

    def seal(self, pac_key: bytes, identity: bytes, expires: int, a_id: bytes) -> bytes:
        if len(pac_key) != 32:
            raise ValueError("PAC-Key is 32 bytes")
        key, _ = self._keys[self._current]
        nonce = os.urandom(12)
        plaintext = pac_key + struct.pack("!Q", expires) + identity
        header = _HEADER.pack(_FORMAT, self._current, nonce)
        return header + AESGCM(key).encrypt(nonce, plaintext, a_id + header[:5])

    def open(self, opaque: bytes, a_id: bytes, now: float) -> OpenedPac | None:
        """The PAC inside ``opaque``; None if it is not ours, tampered with or expired."""
        if len(opaque) < _HEADER.size + 16 + 40:
            return None
        fmt, key_id, nonce = _HEADER.unpack_from(opaque)
        entry = self._keys.get(key_id)
        if fmt != _FORMAT or entry is None:
            return None
        key, retire_at = entry
        if retire_at is not None and now >= retire_at:
            return None
        try:
            plain = AESGCM(key).decrypt(nonce, opaque[_HEADER.size :], a_id + opaque[:5])
        except InvalidTag:
            return None
        expires = int(struct.unpack_from("!Q", plain, 32)[0])
        if now >= expires:
            return None
        return OpenedPac(plain[:32], expires, plain[40:], key_id)


@dataclass(frozen=True)
class Pac:
    """A PAC as the peer keeps it (RFC 5422 4.2): PAC-Key, PAC-Opaque and PAC-Info."""

    pac_key: bytes = field(repr=False)
    pac_opaque: bytes
    a_id: bytes
    a_id_info: bytes = b""
    i_id: bytes = b""
    lifetime: int | None = None
    pac_type: int = PacType.TUNNEL

    @classmethod
    def from_attrs(cls, attrs: list[PacAttr]) -> Pac:
        """Build from the attributes of a PAC TLV; raises TlvError if one is missing."""
        by_type = {a.attr_type: a.value for a in attrs}
        key = by_type.get(PacAttrType.PAC_KEY)
        opaque = by_type.get(PacAttrType.PAC_OPAQUE)
        info_raw = by_type.get(PacAttrType.PAC_INFO)
        if key is None or len(key) != 32 or opaque is None or info_raw is None:
            raise TlvError("PAC TLV lacks PAC-Key (32 bytes), PAC-Opaque or PAC-Info")
        info = {a.attr_type: a.value for a in parse_pac_attrs(info_raw)}
        a_id = info.get(PacAttrType.A_ID)
        if a_id is None:
            raise TlvError("PAC-Info lacks the A-ID")
        lifetime_raw = info.get(PacAttrType.PAC_LIFETIME)
        lifetime = None
        if lifetime_raw is not None:
            if len(lifetime_raw) != 4:
                raise TlvError("PAC-Lifetime is not 4 bytes")
            lifetime = int(struct.unpack("!I", lifetime_raw)[0])
        pac_type: int = PacType.TUNNEL
        type_raw = info.get(PacAttrType.PAC_TYPE)
        if type_raw is not None:
            if len(type_raw) != 2:
                raise TlvError("PAC-Type is not 2 bytes")
            pac_type = int(struct.unpack("!H", type_raw)[0])
        return cls(
            key,
            opaque,
            a_id,
            info.get(PacAttrType.A_ID_INFO, b""),
            info.get(PacAttrType.I_ID, b""),
            lifetime,
            pac_type,
        )

    def to_attrs(self) -> list[PacAttr]:
        """PAC-Key, PAC-Opaque and PAC-Info, as a server's PAC TLV carries them."""
        info = [PacAttr(PacAttrType.A_ID, self.a_id)]
        if self.lifetime is not None:
            info.append(PacAttr(PacAttrType.PAC_LIFETIME, struct.pack("!I", self.lifetime)))
        if self.i_id:
            info.append(PacAttr(PacAttrType.I_ID, self.i_id))
        if self.a_id_info:
            info.append(PacAttr(PacAttrType.A_ID_INFO, self.a_id_info))
        info.append(PacAttr(PacAttrType.PAC_TYPE, struct.pack("!H", self.pac_type)))
        return [
            PacAttr(PacAttrType.PAC_KEY, self.pac_key),
            PacAttr(PacAttrType.PAC_OPAQUE, self.pac_opaque),
            PacAttr(PacAttrType.PAC_INFO, encode_pac_attrs(info)),
        ]

    def ticket(self) -> bytes:
        """The PAC-Opaque TLV as it goes into the ClientHello SessionTicket extension."""
        return PacAttr(PacAttrType.PAC_OPAQUE, self.pac_opaque).to_bytes()


class PacStore:
    """The peer's PACs, one per A-ID (in memory; persist ``pacs`` as the application likes)."""

    def __init__(self) -> None:
        self.pacs: dict[bytes, Pac] = {}

    def get(self, a_id: bytes) -> Pac | None:
        return self.pacs.get(a_id)

    def put(self, pac: Pac) -> None:
        self.pacs[pac.a_id] = pac

    def discard(self, a_id: bytes) -> None:
        self.pacs.pop(a_id, None)

    def __len__(self) -> int:
        return len(self.pacs)

    def dump(self) -> bytes:
        """All PACs as a sequence of PAC TLVs (RFC 5422 4.2).  The PAC-Keys are secrets:
        store the result where only the peer can read it."""
        return b"".join(
            PacAttr(_PAC_TLV, encode_pac_attrs(pac.to_attrs())).to_bytes()
            for pac in self.pacs.values()
        )

    @classmethod
    def load(cls, data: bytes) -> PacStore:
        """The store :meth:`dump` wrote; raises :class:`TlvError` on malformed data."""
        store = cls()
        for entry in parse_pac_attrs(data):
            if entry.attr_type != _PAC_TLV:
                raise TlvError(f"PAC store entry of type {entry.attr_type}, expected a PAC TLV")
            store.put(Pac.from_attrs(parse_pac_attrs(entry.value)))
        return store
