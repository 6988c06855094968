"""The own TLS 1.2 abbreviated handshake of EAP-FAST PAC resumption (ike.eap_fast.tls12)."""

from __future__ import annotations

import struct

import pytest

from ike.eap_fast.tls12 import (
    EXT_SESSION_TICKET,
    ResumedClient,
    ResumedServer,
    parse_client_hello,
)
from ike.eap_tls.errors import AlertDescription, TlsFailure

KEY = bytes(range(32))
TICKET = b"\x00\x02\x00\x05hello"


def _pair(server_key: bytes = KEY) -> tuple[ResumedClient, ResumedServer]:
    client = ResumedClient(TICKET, KEY)
    hello = parse_client_hello(client.data_to_send())
    assert hello is not None
    return client, ResumedServer(hello, server_key)


def test_handshake_and_application_data_both_ways() -> None:
    client, server = _pair()
    client.receive(server.data_to_send())
    assert client.handshake_complete and not server.handshake_complete
    server.receive(client.data_to_send())
    assert server.handshake_complete
    assert client.master_key() == server.master_key()
    assert client.cipher_name() == server.cipher_name() == "AES128-SHA"
    server.write_application_data(b"x" * 40000)  # several records
    client.receive(server.data_to_send())
    assert client.read_application_data() == b"x" * 40000
    client.write_application_data(b"ping")
    server.receive(client.data_to_send())
    assert server.read_application_data() == b"ping"


def test_client_hello_fields() -> None:
    client = ResumedClient(TICKET, KEY)
    hello = parse_client_hello(client.data_to_send())
    assert hello is not None
    assert hello.extension(EXT_SESSION_TICKET) == TICKET
    assert len(hello.session_id) == 32 and hello.secure_renegotiation and hello.offers_tls12()


def test_client_hello_parser_is_exact() -> None:
    data = ResumedClient(TICKET, KEY).data_to_send()
    assert parse_client_hello(data + b"\x00") is None  # trailing garbage
    for cut in (1, 5, 10, len(data) - 1):
        assert parse_client_hello(data[:cut]) is None  # truncated
    # Split over two records: still one ClientHello.
    body = data[5:]
    split = (
        b"\x16\x03\x03"
        + struct.pack("!H", 20)
        + body[:20]
        + b"\x16\x03\x03"
        + struct.pack("!H", len(body) - 20)
        + body[20:]
    )
    assert parse_client_hello(split) is not None


def test_wrong_pac_key_fails_with_an_alert() -> None:
    client, server = _pair(server_key=b"\xff" * 32)
    with pytest.raises(TlsFailure) as info:
        client.receive(server.data_to_send())
    assert info.value.alert is AlertDescription.decrypt_error or info.value.alert is (
        AlertDescription.bad_record_mac
    )
    assert client.data_to_send()  # the alert goes out


def test_tampered_client_finished_is_refused() -> None:
    client, server = _pair()
    client.receive(server.data_to_send())
    flight = bytearray(client.data_to_send())
    flight[-1] ^= 1
    with pytest.raises(TlsFailure) as info:
        server.receive(bytes(flight))
    assert info.value.alert is AlertDescription.bad_record_mac


def test_server_without_cbc_suite_is_refused() -> None:
    client = ResumedClient(TICKET, KEY)
    data = bytearray(client.data_to_send())
    hello = parse_client_hello(bytes(data))
    assert hello is not None
    # Rewrite the suites to TLS_AES_128_GCM_SHA256 only (same length: three suites).
    at = data.index(struct.pack("!HHHH", 6, 0x002F, 0x0035, 0x00FF))
    data[at : at + 8] = struct.pack("!HHHH", 6, 0x1301, 0x1302, 0x1303)
    other = parse_client_hello(bytes(data))
    assert other is not None
    with pytest.raises(TlsFailure):
        ResumedServer(other, KEY)


def test_altered_server_hello_fails_the_finished_check() -> None:
    """A ServerHello with another session ID followed by ChangeCipherSpec is a resumption
    (OpenSSL-based servers do not echo the ID); the altered bytes are in the transcript, so
    the server's Finished does not verify.  (Certificate after a fresh session ID, the full
    handshake, is covered in test_fast_peer_vs_freeradius.py.)"""
    client, server = _pair()
    flight = bytearray(server.data_to_send())
    flight[5 + 4 + 2 + 32 + 1] ^= 1  # the first byte of the echoed session ID
    with pytest.raises(TlsFailure, match="server Finished does not verify"):
        client.receive(bytes(flight))
