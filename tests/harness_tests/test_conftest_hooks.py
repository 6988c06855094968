"""The netns marker skips without root (or fails when CI demands the peers)."""

from __future__ import annotations

import os

import pytest

from tests import conftest
from tests.harness import tools


class _Item:
    def __init__(self, *markers: str) -> None:
        self._markers = set(markers)

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name in self._markers else None


def test_netns_marker_without_root_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv(tools.REQUIRE_PEERS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root for network namespaces"):
        conftest.pytest_runtest_setup(_Item("netns"))  # type: ignore[arg-type]
    conftest.pytest_runtest_setup(_Item("slow"))  # type: ignore[arg-type]  # unmarked: runs


def test_netns_marker_without_root_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv(tools.REQUIRE_PEERS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="needs root"):
        conftest.pytest_runtest_setup(_Item("netns"))  # type: ignore[arg-type]


def test_netns_marker_as_root_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    conftest.pytest_runtest_setup(_Item("netns"))  # type: ignore[arg-type]
