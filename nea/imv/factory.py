"""Build the gateway's validators from a policy."""

from __future__ import annotations

from collections.abc import Sequence

from nea.imv.base import PolicyValidator
from nea.imv.engine import PolicyEngine
from nea.imv.ita_test_imv import TestValidator
from nea.imv.os_imv import OsValidator
from nea.imv.ports_imv import PortsValidator
from nea.imv.swima_imv import SwimaStore, SwimaValidator

__all__ = ["VALIDATOR_NAMES", "build_validators"]

VALIDATOR_NAMES = ("test", "ports", "os", "swima")
"""Built-in validators, in the order (and with the ids 1-4) strongSwan's Test, Scanner and
OS validators use, SWIMA last."""


def build_validators(
    engine: PolicyEngine,
    names: Sequence[str] = VALIDATOR_NAMES,
    *,
    swima_store: SwimaStore | None = None,
) -> list[PolicyValidator]:
    """One validator per name, sharing ``engine``; hand the list to every ``Tncs``."""
    out: list[PolicyValidator] = []
    for name in names:
        if name == "test":
            out.append(TestValidator(engine))
        elif name == "ports":
            out.append(PortsValidator(engine))
        elif name == "os":
            out.append(OsValidator(engine))
        elif name == "swima":
            out.append(SwimaValidator(engine, swima_store))
        else:
            raise ValueError(f"unknown validator {name!r} (one of {', '.join(VALIDATOR_NAMES)})")
    return out
