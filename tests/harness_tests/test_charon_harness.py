"""The charon fixture refuses to run half-configured and reports charon's own words."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness.charon import DEFAULT_PLUGINS, Charon, CharonError
from tests.harness.netns import NetnsFactory

pytestmark = pytest.mark.netns


def test_missing_plugin_is_an_error(
    netns: NetnsFactory, charon_factory: Callable[..., Charon]
) -> None:
    ns = netns.namespace("ch")
    with pytest.raises(CharonError, match="no-such-plugin"):
        charon_factory(ns, "bad", plugins=(*DEFAULT_PLUGINS, "no-such-plugin"))


def test_start_load_and_stats(netns: NetnsFactory, charon_factory: Callable[..., Charon]) -> None:
    ns = netns.namespace("ch")
    charon = charon_factory(ns, "one")
    assert charon.running
    assert set(DEFAULT_PLUGINS) <= set(charon.loaded_plugins())
    charon.write_swanctl_conf(
        "connections {\n  c {\n    remote_addrs = 192.0.2.9\n    local {\n      auth = psk\n"
        "    }\n    remote {\n      auth = psk\n    }\n    children {\n      c {\n"
        "      }\n    }\n  }\n}\n"
    )
    out = charon.load_all()
    assert "loaded connection 'c'" in out.stdout
    assert "c" in charon.vici("get-conns")["conns"]
    assert charon.list_sas() == []
    # swanctl itself exits 0 on a syntax error; the harness must not.
    charon.write_swanctl_conf("connections {\n  c {\n")
    with pytest.raises(CharonError, match="syntax error"):
        charon.load_all()
    charon.write_swanctl_conf("connections {\n  c {\n    nonsense_key = 1\n  }\n}\n")
    with pytest.raises(CharonError, match="nonsense_key"):
        charon.load_all()
    charon.stop()
    assert not charon.running
    assert ns.pids() == []
