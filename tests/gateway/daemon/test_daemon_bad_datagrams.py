"""Bad datagrams never stop the daemon: random bytes and mutated IKE messages on both ports
are counted (invalid / errors), nothing escapes the UDP adapter, and a real client still
gets its IKE_SA afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ike.config import EngineConfig
from ike.constants import NON_ESP_MARKER
from ike.sa import IkeEngine, IkeSaEstablished
from tests.gateway.daemon.daemon_rig import CL_ADDR, GW_IP, PSK_CONFIG, make_rig, psk_client


def _first_message() -> bytes:
    client = IkeEngine(EngineConfig(peers=(psk_client(),)))
    client.initiate("home", 0.0, local=CL_ADDR, remote=(GW_IP, 500))
    (d,) = client.datagrams_to_send(0.0)
    return d.data


FIRST = _first_message()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    junk=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.tuples(st.integers(0, len(FIRST) - 1), st.binary(min_size=1, max_size=8)).map(
                lambda m: FIRST[: m[0]] + m[1] + FIRST[m[0] + len(m[1]) :]
            ),
            st.integers(0, len(FIRST)).map(lambda n: FIRST[:n]),
        ),
        max_size=6,
    ),
    natt=st.booleans(),
)
def test_junk_is_counted_and_the_daemon_keeps_serving(
    tmp_path_factory: pytest.TempPathFactory, junk: list[bytes], natt: bool
) -> None:
    path = tmp_path_factory.mktemp("gw") / "gw.toml"
    path.write_text(PSK_CONFIG)
    rig = make_rig(path)
    for data in junk:
        if natt:
            rig.send_raw(NON_ESP_MARKER + data, port=4500)
        else:
            rig.send_raw(data)
    rig.clock.advance(60)  # timers of whatever half-open SAs the junk created
    stats = rig.gateway.stats_json()["packets"]
    assert stats["ike_received"] == len(junk)
    rig.connect(psk_client())
    assert rig.events(IkeSaEstablished)


def test_garbage_counts_as_invalid(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(PSK_CONFIG)
    rig = make_rig(path)
    rig.send_raw(b"\x00" * 10)
    rig.send_raw(FIRST[:-1])
    rig.send_raw(FIRST + b"\x00")
    assert rig.gateway.stats_json()["packets"]["invalid"] == 3
