"""PA message types ``(vendor id, subtype)`` used by the validators and collectors."""

from __future__ import annotations

import enum

__all__ = ["ITA_TEST", "OS", "PORTS", "SWIMA", "ItaSubtype", "PaSubtype"]


class PaSubtype(enum.IntEnum):
    """IETF PA subtypes: RFC 5792, 7.1 (0-8); RFC 8412, 10.4 (SWIMA)."""

    TESTING = 0
    OPERATING_SYSTEM = 1
    ANTI_VIRUS = 2
    ANTI_SPYWARE = 3
    ANTI_MALWARE = 4
    FIREWALL = 5
    IDPS = 6
    VPN = 7
    NEA_CLIENT = 8
    SWIMA = 9


class ItaSubtype(enum.IntEnum):
    """ITA-HSR (PEN 0x00902A) PA subtypes as strongSwan uses them (the Test IMC/IMV pair
    exchanges ITA Command in subtype 1, seen in the strongSwan transcripts)."""

    TEST = 1
    ECHO = 2


_IETF = 0
_ITA = 0x00902A

OS = (_IETF, int(PaSubtype.OPERATING_SYSTEM))
"""The OS collector/validator pair (strongSwan's OS IMC/IMV)."""
PORTS = (_IETF, int(PaSubtype.FIREWALL))
"""Port Filter (strongSwan's Scanner IMC/IMV)."""
SWIMA = (_IETF, int(PaSubtype.SWIMA))
ITA_TEST = (_ITA, int(ItaSubtype.TEST))
