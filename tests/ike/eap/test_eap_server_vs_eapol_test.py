"""Our EAP server and simple methods against wpa_supplicant's peer (``eapol_test``).

Our RADIUS engine on loopback (``tests.ike.eap_tls.radius_loop.LoopbackRadius``, one thread)
hands each conversation to an :class:`EapServer`.  On success it sends MS-MPPE-Recv-Key =
MSK[0:32] and MS-MPPE-Send-Key = MSK[32:64] (RFC 2548, the usual EAP mapping), which
eapol_test compares with the key material its own peer derived: for EAP-MS-CHAPv2 that is
MasterReceiveKey || MasterSendKey, our MSK's first 32 bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ike.eap.methods import (
    StaticPasswords,
    gtc_server_factory,
    md5_server_factory,
    mschapv2_server_factory,
    password_check,
)
from ike.eap.packet import EapType
from tests.harness.eapol_test import run_eapol_test
from tests.harness.tools import require
from tests.ike.eap_tls.radius_loop import SECRET, LoopbackRadius

# Real Debian peers (the marker groups every test that needs them; see pyproject).
pytestmark = pytest.mark.netns

USERS = StaticPasswords({"alice": "s3cret-Pass"})


@pytest.fixture
def eapol(tmp_path: Path) -> Iterator[Any]:
    require("eapol_test")

    def run(
        methods: list[tuple[int, Any]], block: str, *, keys: bool = False
    ) -> tuple[Any, LoopbackRadius]:
        # -n: the method derives no keys, so eapol_test must not expect MPPE keys.
        extra = () if keys else ("-n",)
        with LoopbackRadius(methods) as responder:
            result = run_eapol_test(
                block,
                port=responder.port,
                secret=SECRET,
                workdir=tmp_path,
                timeout=10,
                extra_args=extra,
            )
        assert not responder.errors, responder.errors
        return result, responder

    yield run


MD5 = (EapType.MD5_CHALLENGE, md5_server_factory(USERS))
MSCHAPV2 = (EapType.MSCHAPV2, mschapv2_server_factory(USERS))
GTC = (EapType.GTC, gtc_server_factory(password_check(USERS)))


def test_md5_server_with_wpa_supplicant(eapol: Any) -> None:
    result, responder = eapol([MD5], 'eap=MD5\nidentity="alice"\npassword="s3cret-Pass"')
    assert result.success, result.output[-3000:]
    assert responder.finished[-1].succeeded


def test_md5_server_wrong_password_with_wpa_supplicant(eapol: Any) -> None:
    result, responder = eapol([MD5], 'eap=MD5\nidentity="alice"\npassword="nope"')
    assert not result.success
    server = responder.finished[-1]
    assert server.failed
    assert server.failure_reason == "EAP-MD5 response does not match the password of b'alice'"


def test_mschapv2_server_with_wpa_supplicant_keys_match(eapol: Any) -> None:
    # The server offers MD5 first; wpa_supplicant (eap=MSCHAPV2 only) Naks it.
    result, responder = eapol(
        [MD5, MSCHAPV2], 'eap=MSCHAPV2\nidentity="alice"\npassword="s3cret-Pass"', keys=True
    )
    assert result.success, result.output[-3000:]
    assert result.mppe_ok, result.output[-3000:]
    server = responder.finished[-1]
    assert server.completed_methods == (EapType.MSCHAPV2,)


@pytest.mark.parametrize("send_error", [False, True])
def test_mschapv2_server_wrong_password_with_wpa_supplicant(eapol: Any, send_error: bool) -> None:
    method = (EapType.MSCHAPV2, mschapv2_server_factory(USERS, send_error=send_error))
    result, responder = eapol([method], 'eap=MSCHAPV2\nidentity="alice"\npassword="nope"')
    assert not result.success
    # With send_error wpa_supplicant parses our Failure Request (and logs its E= code).
    assert ("E=691" in result.output) is send_error
    server = responder.finished[-1]
    assert server.failed and server.failure_reason == "MS-CHAPv2 NT-Response wrong for b'alice'"


def test_gtc_server_with_wpa_supplicant(eapol: Any) -> None:
    result, responder = eapol([GTC], 'eap=GTC\nidentity="alice"\npassword="s3cret-Pass"')
    assert result.success, result.output[-3000:]
    assert responder.finished[-1].succeeded
