"""Shared pytest fixtures: certificates, namespaces and the real Debian peers.

Fixtures (see ``tests/harness/`` for the APIs they return):

* ``cert_factory`` -> :class:`tests.harness.certs.CertFactory` writing under ``tmp_path``.
* ``netns`` -> :class:`tests.harness.netns.NetnsFactory`; skips unless root. Everything it
  made is torn down after the test, pass or fail.
* ``charon_factory`` -> ``make(ns, name="charon", *, start=True, **kwargs) -> Charon`` in
  ``tmp_path / name``; every charon is stopped at teardown and its log tail printed (pytest
  shows it for failing tests). Needs ``netns`` (root).
* ``freeradius_factory`` -> ``make(**kwargs) -> FreeRadius`` (started; stopped at teardown,
  log tail printed for failing tests); kwargs as :class:`tests.harness.freeradius.FreeRadius`,
  the work dir is under ``tmp_path``.

Peers are looked up with :func:`tests.harness.tools.require`, which skips with the name of the
Debian package to install when a tool is missing. Tests marked ``netns`` are skipped ("needs
root for network namespaces") when not run as root. With ``NEA_GATEWAY_REQUIRE_PEERS=1`` (meant
for CI, which installs every peer) those skips become failures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.harness.certs import CertFactory
from tests.harness.charon import Charon
from tests.harness.freeradius import FreeRadius
from tests.harness.netns import Netns, NetnsFactory
from tests.harness.tools import require, skip_or_fail

ROOT_REASON = "needs root for network namespaces"

# Property tests: no per-example deadline (a loaded CI machine makes timing flaky, and the
# engines' speed is measured in bench/, not here).  In CI (NEA_GATEWAY_REQUIRE_PEERS=1 or
# CI set) the examples are derandomized so that a run is reproducible; locally they vary
# from run to run and keep looking for new counterexamples.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(
    "ci" if os.environ.get("NEA_GATEWAY_REQUIRE_PEERS") == "1" or os.environ.get("CI") else "local"
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None and os.geteuid() != 0:
        skip_or_fail(ROOT_REASON)


@pytest.fixture
def cert_factory(tmp_path: Path) -> CertFactory:
    """A certificate factory writing its files to ``tmp_path / "certs"``."""
    return CertFactory(tmp_path / "certs")


@pytest.fixture
def netns() -> Iterator[NetnsFactory]:
    """Namespace/veth factory; everything it created is removed after the test."""
    if os.geteuid() != 0:
        skip_or_fail(ROOT_REASON)
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
        for server in started:
            print(
                f"--- freeradius {server.workdir.name} (port {server.port}): {server.log_path} ---"
            )
            print(server.log_tail(200))


@pytest.fixture
def charon_factory(netns: NetnsFactory, tmp_path: Path) -> Iterator[Callable[..., Charon]]:
    """Makes (and by default starts) strongSwan charons in namespaces; stops all after."""
    require("charon")
    require("swanctl")
    require("unshare")
    made: list[Charon] = []

    def make(ns: Netns, name: str = "charon", *, start: bool = True, **kwargs: object) -> Charon:
        workdir = tmp_path / name
        if workdir.exists():
            raise ValueError(f"charon {name!r} already made in this test")
        charon = Charon(ns, workdir, **kwargs)  # type: ignore[arg-type]
        made.append(charon)
        if start:
            charon.start()
        return charon

    try:
        yield make
    finally:
        for charon in made:
            charon.stop()
        for charon in made:
            print(f"--- charon {charon.workdir.name} in {charon.netns.name}: {charon.log_path} ---")
            print(charon.log_tail(200))
