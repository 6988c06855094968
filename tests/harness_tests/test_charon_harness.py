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


def _psk_conf(local: str, remote: str, secret: str, *, initiator: bool) -> dict[str, object]:
    # Not host-to-host: kernel-libipsec refuses a CHILD_SA covering the peer's own outer
    # address ("can't install route ... conflicts with IKE traffic", TS_UNACCEPTABLE), and it
    # needs an address of its own inside local_ts as the route's source.
    nets = ("10.5.1.0/24", "10.5.2.0/24") if initiator else ("10.5.2.0/24", "10.5.1.0/24")
    conn: dict[str, object] = {
        "local_addrs": local,
        "proposals": "aes128-sha256-x25519",
        "local": {"auth": "psk", "id": local},
        "remote": {"auth": "psk", "id": remote},
        "children": {"c": {"local_ts": nets[0], "remote_ts": nets[1]}},
    }
    if initiator:
        conn["remote_addrs"] = remote
    return {
        "connections": {"c": conn},
        "secrets": {"ike-1": {"id-1": local, "id-2": remote, "secret": secret}},
    }


def test_failed_initiate_raises_with_charon_log(
    netns: NetnsFactory, charon_factory: Callable[..., Charon]
) -> None:
    a, b = netns.namespace("ca"), netns.namespace("cb")
    netns.veth(a, b, "198.51.100.1/24", "198.51.100.2/24")
    # charon routes the remote net via an address of its own inside local_ts.
    a.run("ip", "addr", "add", "10.5.1.1/32", "dev", "lo")
    b.run("ip", "addr", "add", "10.5.2.1/32", "dev", "lo")
    left, right = charon_factory(a, "left"), charon_factory(b, "right")
    assert "loaded plugins" in left.wait_for_log("loaded plugins")
    left.write_swanctl_conf(_psk_conf("198.51.100.1", "198.51.100.2", "one", initiator=True))
    right.write_swanctl_conf(_psk_conf("198.51.100.2", "198.51.100.1", "two", initiator=False))
    left.load_all()
    right.load_all()
    with pytest.raises(CharonError, match="initiate") as info:
        left.initiate("c", timeout=5)
    assert "AUTHENTICATION_FAILED" in str(info.value)
    right.wait_for_log("tried 1 shared key")
    assert left.list_sas() == [] and right.list_sas() == []

    # Same secret: it works, so the failure above was the secret and nothing else.
    right.write_swanctl_conf(_psk_conf("198.51.100.2", "198.51.100.1", "one", initiator=False))
    right.load_all()
    left.initiate("c", timeout=5)
    (sa,) = left.list_sas()
    assert sa.state == "ESTABLISHED" and sa.child("c").state == "INSTALLED"
