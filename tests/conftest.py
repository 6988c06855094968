"""Shared pytest fixtures: certificates, namespaces and the real Debian peers.

Fixtures (see ``tests/harness/`` for the APIs they return):

* ``cert_factory`` -> :class:`tests.harness.certs.CertFactory` writing under ``tmp_path``.
* ``netns`` -> :class:`tests.harness.netns.NetnsFactory`; skips unless root. Everything it
  made is torn down after the test, pass or fail.
* ``freeradius_factory`` -> ``make(**kwargs) -> FreeRadius`` (started; stopped at teardown);
  kwargs as :class:`tests.harness.freeradius.FreeRadius`, the work dir is under ``tmp_path``.

Peers are looked up with :func:`tests.harness.tools.require`, which skips with the name of the
Debian package to install when a tool is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.certs import CertFactory
from tests.harness.freeradius import FreeRadius
from tests.harness.netns import NetnsFactory
from tests.harness.tools import require


@pytest.fixture
def cert_factory(tmp_path: Path) -> CertFactory:
    """A certificate factory writing its files to ``tmp_path / "certs"``."""
    return CertFactory(tmp_path / "certs")


@pytest.fixture
def netns() -> Iterator[NetnsFactory]:
    """Namespace/veth factory; everything it created is removed after the test."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    require("ip")
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def freeradius_factory(tmp_path: Path) -> Iterator[Callable[..., FreeRadius]]:
    """Starts FreeRADIUS instances (``freeradius -X``, private config); all stopped after."""
    require("freeradius")
    started: list[FreeRadius] = []

    def make(**kwargs: object) -> FreeRadius:
        workdir = tmp_path / f"freeradius{len(started)}"
        server = FreeRadius(workdir, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
