"""``[log]``: strongSwan subsystem levels mapped onto the Python loggers they cover."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.daemon.cli import SUBSYSTEM_LOGGERS, configure_logging
from gateway.daemon.config import LogSpec


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = [n for prefixes in SUBSYSTEM_LOGGERS.values() for n in prefixes] + ["twisted"]
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)


def test_levels_per_subsystem_and_file(tmp_path: Path) -> None:
    log_file = tmp_path / "gw.log"
    configure_logging(LogSpec({"default": 1, "ike": 2, "enc": -1, "tnc": 0}, log_file))
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("ike.sa").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("ike.message").getEffectiveLevel() > logging.CRITICAL
    assert logging.getLogger("nea.pt_eap").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("gateway.pools").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("twisted").getEffectiveLevel() == logging.WARNING
    logging.getLogger("ike.sa").debug("sa detail")
    logging.getLogger("ike.message").error("encoding detail")
    logging.getLogger("nea.pt_eap").info("posture chatter")
    logging.getLogger("gateway.daemon.chd").info("child installed")
    for h in logging.getLogger().handlers:
        h.flush()
    text = log_file.read_text()
    assert "IKE sa detail" in text
    assert "CHD child installed" in text
    assert "encoding detail" not in text and "posture chatter" not in text


def test_verbose_raises_every_level() -> None:
    configure_logging(LogSpec({"default": 0, "cfg": 0}), verbose=2)
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("gateway.daemon.cfg").getEffectiveLevel() == logging.DEBUG
