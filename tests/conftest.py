"""Shared pytest fixtures: certificates, namespaces and the real Debian peers.

Fixtures (see ``tests/harness/`` for the APIs they return):

* ``cert_factory`` -> :class:`tests.harness.certs.CertFactory` writing under ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.certs import CertFactory


@pytest.fixture
def cert_factory(tmp_path: Path) -> CertFactory:
    """A certificate factory writing its files to ``tmp_path / "certs"``."""
    return CertFactory(tmp_path / "certs")
