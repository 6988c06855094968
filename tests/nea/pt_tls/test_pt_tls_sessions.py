"""PT-TLS server and client engines back to back (no sockets): version negotiation, client
authentication (none, TLS certificate, SASL PLAIN success / failure / retry), data transport
carrying a full TNCC <-> TNCS assessment, retries over the full-duplex transport, and every
error path."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from nea.pb_tnc import (
    AccessRecommendation,
    BatchType,
    PbTncConfig,
    PbTncState,
    Tncc,
    Tncs,
    decode_batch,
)
from nea.pt_tls import (
    AuthenticationComplete,
    AuthenticationFailed,
    ClientAuth,
    ClientAuthenticated,
    ErrorReceived,
    ErrorSent,
    FrameParser,
    PbTncBatchMessage,
    PlainClient,
    PlainServer,
    PtTlsClient,
    PtTlsClientConfig,
    PtTlsErrorCode,
    PtTlsErrorMessage,
    PtTlsServer,
    PtTlsServerConfig,
    PtTlsUsageError,
    SaslAttemptFailed,
    SaslResult,
    SaslResultCode,
    SessionClosed,
    SessionState,
    VersionRequest,
    decode_value,
    encode_message,
    plain_verifier,
)
from tests.nea.pb_tnc.pbtnc_fakes import CommandValidator, command_collector

VERIFY = plain_verifier({"alice": "wonder-land", "bob": "builder"})
PLAIN = {"PLAIN": lambda: PlainServer(VERIFY)}


def server_cfg(mode: ClientAuth = ClientAuth.SASL, **kw: object) -> PtTlsServerConfig:
    return PtTlsServerConfig(mode, PLAIN if mode is not ClientAuth.NONE else {}, **kw)  # type: ignore[arg-type]


def make(
    command: str = "allow",
    scfg: PtTlsServerConfig | None = None,
    ccfg: PtTlsClientConfig | None = None,
    *,
    tls_identity: str | None = None,
    pb: PbTncConfig | None = None,
) -> tuple[PtTlsServer, PtTlsClient]:
    pbc = pb or PbTncConfig(full_duplex=True)
    server = PtTlsServer(
        Tncs([CommandValidator()], config=pbc),
        scfg or server_cfg(),
        tls_peer_identity=tls_identity,
    )
    client = PtTlsClient(
        Tncc([command_collector(command)], config=pbc),
        ccfg or PtTlsClientConfig((lambda: PlainClient("alice", "wonder-land"),)),
    )
    return server, client


class Wire:
    """Carries bytes both ways and records every message (direction, type name, message)."""

    def __init__(self, server: PtTlsServer, client: PtTlsClient) -> None:
        self.server, self.client = server, client
        self.log: list[tuple[str, str, object]] = []
        self._parsers = {"c2s": FrameParser(), "s2c": FrameParser()}

    def _record(self, direction: str, data: bytes) -> None:
        for frame in self._parsers[direction].feed(data):
            self.log.append((direction, frame.type_name(), decode_value(frame)))

    def pump(self, limit: int = 200) -> None:
        for _ in range(limit):
            a, b = self.client.data_to_send(), self.server.data_to_send()
            if not a and not b:
                return
            if a:
                self._record("c2s", a)
                self.server.receive_data(a)
            if b:
                self._record("s2c", b)
                self.client.receive_data(b)
        raise AssertionError("no quiet moment")

    def run(self) -> None:
        self.client.start()
        self.pump()

    def names(self) -> list[str]:
        return [f"{d}:{n}" for d, n, _ in self.log]


def events_of(session: PtTlsServer | PtTlsClient, cls: type) -> list[object]:
    return [e for e in session.events() if isinstance(e, cls)]


HANDSHAKE_SASL = [
    "c2s:VERSION_REQUEST",
    "s2c:VERSION_RESPONSE",
    "s2c:SASL_MECHANISMS",
    "c2s:SASL_MECHANISM_SELECTION",
    "s2c:SASL_RESULT",
    "s2c:SASL_MECHANISMS",
]


@pytest.mark.parametrize(
    ("command", "rec"),
    [
        ("allow", AccessRecommendation.ALLOWED),
        ("isolate", AccessRecommendation.QUARANTINED),
        ("block", AccessRecommendation.DENIED),
        ("retry", AccessRecommendation.ALLOWED),
    ],
)
def test_sasl_plain_then_assessment(command: str, rec: AccessRecommendation) -> None:
    server, client = make(command)
    wire = Wire(server, client)
    wire.run()
    assert wire.names()[:6] == HANDSHAKE_SASL
    assert wire.log[2][2] == wire.log[2][2].__class__(("PLAIN",))  # type: ignore[call-arg]
    assert wire.log[5][2].mechanisms == ()  # type: ignore[attr-defined]
    batches = [m for d, n, m in wire.log if n == "PB_TNC_BATCH"]
    types = [decode_batch(m.batch).batch_type for m in batches]  # type: ignore[attr-defined]
    assert types[0] is BatchType.CDATA and types[-2:] == [BatchType.RESULT, BatchType.CLOSE]
    assert server.recommendation is rec and client.recommendation is rec
    assert server.client_identity == "alice" and server.auth_method == "sasl:PLAIN"
    assert server.closed and client.closed
    assert server.tncs.state is PbTncState.END and client.tncc.state is PbTncState.END
    closed = events_of(server, SessionClosed)
    assert closed == [SessionClosed("PB-TNC exchange ended", True)]
    # identifiers count up from 0 on each side
    s2c = [d for d, _, _ in wire.log if d == "s2c"]
    assert len(s2c) >= 4


def test_message_identifiers_increment() -> None:
    server, client = make(scfg=server_cfg(initial_identifier=100))
    client.start()
    data = client.data_to_send()
    server.receive_data(data)
    frames = FrameParser().feed(server.data_to_send())
    assert [f.identifier for f in frames] == [100, 101]


def test_no_authentication_sends_empty_mechanisms_at_once() -> None:
    server, client = make(scfg=server_cfg(ClientAuth.NONE))
    wire = Wire(server, client)
    wire.run()
    assert wire.names()[:3] == [
        "c2s:VERSION_REQUEST",
        "s2c:VERSION_RESPONSE",
        "s2c:SASL_MECHANISMS",
    ]
    assert wire.names()[3] == "c2s:PB_TNC_BATCH"
    assert server.auth_method == "none" and server.client_identity is None
    assert server.recommendation is AccessRecommendation.ALLOWED
    assert any(isinstance(e, AuthenticationComplete) for e in client.events())


@pytest.mark.parametrize(
    ("mode", "tls_id", "method", "sasl"),
    [
        (ClientAuth.TLS, "CN=alice", "tls", False),
        (ClientAuth.TLS_OR_SASL, "CN=alice", "tls", False),
        (ClientAuth.TLS_OR_SASL, None, "sasl:PLAIN", True),
        (ClientAuth.TLS_AND_SASL, "CN=alice", "sasl:PLAIN", True),
        (ClientAuth.SASL, "CN=alice", "sasl:PLAIN", True),
    ],
)
def test_auth_modes(mode: ClientAuth, tls_id: str | None, method: str, sasl: bool) -> None:
    server, client = make(scfg=server_cfg(mode), tls_identity=tls_id)
    wire = Wire(server, client)
    wire.run()
    assert server.auth_method == method
    assert ("c2s:SASL_MECHANISM_SELECTION" in wire.names()) is sasl
    assert server.recommendation is AccessRecommendation.ALLOWED
    (auth,) = events_of(server, ClientAuthenticated)
    assert auth.method == method  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", [ClientAuth.TLS, ClientAuth.TLS_AND_SASL])
def test_certificate_required(mode: ClientAuth) -> None:
    server, client = make(scfg=server_cfg(mode), tls_identity=None)
    wire = Wire(server, client)
    wire.run()
    assert server.closed
    assert "certificate" in (server.close_reason or "")
    assert events_of(server, AuthenticationFailed)
    assert "c2s:PB_TNC_BATCH" not in wire.names()


def test_plain_wrong_password_aborts() -> None:
    server, client = make(
        ccfg=PtTlsClientConfig((lambda: PlainClient("alice", "wrong"),))
    )
    wire = Wire(server, client)
    wire.run()
    results = [m for _, n, m in wire.log if n == "SASL_RESULT"]
    assert results == [SaslResult(SaslResultCode.ABORT)]
    assert server.closed and client.closed
    failed = events_of(server, SaslAttemptFailed)
    assert failed and not failed[0].retry  # type: ignore[attr-defined]
    assert "wrong" not in repr(failed) and "wrong" not in (server.close_reason or "")
    assert events_of(client, AuthenticationFailed)
    assert server.client_identity is None
    assert "c2s:PB_TNC_BATCH" not in wire.names()


def test_plain_retry_after_failure() -> None:
    attempts = iter([PlainClient("alice", "nope"), PlainClient("alice", "wonder-land")])
    server, client = make(
        scfg=server_cfg(max_sasl_attempts=2),
        ccfg=PtTlsClientConfig((lambda: next(attempts),)),
    )
    wire = Wire(server, client)
    wire.run()
    codes = [m.code for _, n, m in wire.log if n == "SASL_RESULT"]  # type: ignore[attr-defined]
    assert codes == [SaslResultCode.FAILURE, SaslResultCode.SUCCESS]
    assert server.client_identity == "alice"
    assert server.recommendation is AccessRecommendation.ALLOWED


def test_plain_authzid_must_match() -> None:
    server, client = make(
        ccfg=PtTlsClientConfig((lambda: PlainClient("alice", "wonder-land", authzid="bob"),))
    )
    Wire(server, client).run()
    assert server.client_identity is None and server.closed


class EmptyInitialPlain(PlainClient):
    """A PLAIN client that waits for the server's (empty) challenge."""

    def initial(self) -> bytes:
        return b""


def test_plain_without_initial_response_gets_empty_challenge() -> None:
    server, client = make(ccfg=PtTlsClientConfig((lambda: EmptyInitialPlain("bob", "builder"),)))
    wire = Wire(server, client)
    wire.run()
    assert wire.names()[3:6] == [
        "c2s:SASL_MECHANISM_SELECTION",
        "s2c:SASL_AUTHENTICATION_DATA",
        "c2s:SASL_AUTHENTICATION_DATA",
    ]
    assert server.client_identity == "bob"


def test_no_common_mechanism() -> None:
    class Other(PlainClient):
        name = "SCRAM-SHA-256"

    server, client = make(ccfg=PtTlsClientConfig((lambda: Other("a", "b"),)))
    wire = Wire(server, client)
    wire.run()
    (err,) = [m for _, n, m in wire.log if n == "PT_TLS_ERROR"]
    assert err.error_code == PtTlsErrorCode.SASL_MECHANISM_ERROR  # type: ignore[attr-defined]
    assert client.closed and server.closed
    received = events_of(server, ErrorReceived)
    assert received and received[0].code is PtTlsErrorCode.SASL_MECHANISM_ERROR  # type: ignore[attr-defined]


def test_version_mismatch() -> None:
    server, client = make(ccfg=PtTlsClientConfig(versions=(2, 3)))
    wire = Wire(server, client)
    wire.run()
    assert wire.names() == ["c2s:VERSION_REQUEST", "s2c:PT_TLS_ERROR"]
    err = wire.log[1][2]
    assert err.error_code == PtTlsErrorCode.VERSION_NOT_SUPPORTED  # type: ignore[attr-defined]
    # the error copies the offending message
    assert err.original == encode_message(VersionRequest(2, 3, 3), 0)  # type: ignore[attr-defined]
    assert server.closed and client.closed


def test_server_picks_preferred_common_version() -> None:
    server = PtTlsServer(Tncs([]), server_cfg(ClientAuth.NONE, versions=(1, 2, 3)))
    server.receive_data(encode_message(VersionRequest(1, 4, 2), 0))
    frames = FrameParser().feed(server.data_to_send())
    assert decode_value(frames[0]).version == 2  # type: ignore[union-attr]
    server = PtTlsServer(Tncs([]), server_cfg(ClientAuth.NONE, versions=(1, 2, 3)))
    server.receive_data(encode_message(VersionRequest(1, 4, 4), 0))
    frames = FrameParser().feed(server.data_to_send())
    assert decode_value(frames[0]).version == 3  # type: ignore[union-attr]


def _server_after_version(mode: ClientAuth = ClientAuth.SASL) -> PtTlsServer:
    server = PtTlsServer(Tncs([CommandValidator()]), server_cfg(mode))
    server.receive_data(encode_message(VersionRequest(), 0))
    server.data_to_send()
    server.events()
    return server


def _errors(session: PtTlsServer | PtTlsClient) -> list[PtTlsErrorMessage]:
    return [
        m
        for m in (decode_value(f) for f in FrameParser().feed(session.data_to_send()))
        if isinstance(m, PtTlsErrorMessage)
    ]


@pytest.mark.parametrize(
    ("data", "code", "fatal"),
    [
        (encode_message(PbTncBatchMessage(b"\x02\x00\x00\x01\x00\x00\x00\x08"), 1),
         PtTlsErrorCode.INVALID_MESSAGE, True),
        (encode_message(VersionRequest(), 1), PtTlsErrorCode.INVALID_MESSAGE, True),
        (struct.pack(">IIII", 0x902A, 1, 16, 1), PtTlsErrorCode.TYPE_NOT_SUPPORTED, False),
        (struct.pack(">IIII", 0, 0, 16, 1), PtTlsErrorCode.TYPE_NOT_SUPPORTED, False),
        (struct.pack(">IIII", 0, 42, 16, 1), PtTlsErrorCode.TYPE_NOT_SUPPORTED, False),
        (struct.pack(">IIII", 0, 4, 8, 1), PtTlsErrorCode.MALFORMED_MESSAGE, True),
        (struct.pack(">IIII", 0, 4, 1 << 24, 1), PtTlsErrorCode.INVALID_PARAMETER, True),
        (struct.pack(">IIII", 0, 4, 16, 1), PtTlsErrorCode.MALFORMED_MESSAGE, True),
        (struct.pack(">IIII", 0, 4, 22, 1) + b"\x05LOGIN",
         PtTlsErrorCode.SASL_MECHANISM_ERROR, True),
        (struct.pack(">IIII", 0, 4, 22, 1) + b"\x05login",
         PtTlsErrorCode.INVALID_PARAMETER, True),
    ],
)
def test_server_error_paths(data: bytes, code: PtTlsErrorCode, fatal: bool) -> None:
    server = _server_after_version()
    server.receive_data(data)
    (err,) = _errors(server)
    assert err.error_code == code
    assert err.original == data[:1024] if len(data) < 1024 else len(err.original) == 1024
    assert server.closed is fatal
    sent = events_of(server, ErrorSent)
    assert sent and sent[0].error.code is code  # type: ignore[attr-defined]
    if not fatal:  # the session goes on: a valid selection still works
        from nea.pt_tls import SaslMechanismSelection

        selection = SaslMechanismSelection("PLAIN", b"\x00bob\x00builder")
        server.receive_data(encode_message(selection, 2))
        assert server.state is SessionState.DATA


def test_error_copy_is_limited_to_1024() -> None:
    server = _server_after_version()
    big = struct.pack(">IIII", 0x902A, 1, 16 + 3000, 1) + b"x" * 3000
    server.receive_data(big)
    (err,) = _errors(server)
    assert err.original == big[:1024]


def test_peer_error_closes_but_type_not_supported_does_not() -> None:
    server = _server_after_version()
    server.receive_data(encode_message(PtTlsErrorMessage(PtTlsErrorCode.TYPE_NOT_SUPPORTED), 1))
    assert not server.closed
    server.receive_data(encode_message(PtTlsErrorMessage(PtTlsErrorCode.INVALID_MESSAGE), 2))
    assert server.closed
    assert "INVALID_MESSAGE" in (server.close_reason or "")
    server.receive_data(encode_message(VersionRequest(), 3))
    assert server.data_to_send() == b""  # closed sessions say nothing more


def test_client_rejects_unoffered_version_and_out_of_order() -> None:
    from nea.pt_tls import VersionResponse

    client = PtTlsClient(Tncc([]))
    client.start()
    client.data_to_send()
    client.receive_data(encode_message(VersionResponse(2), 0))
    (err,) = _errors(client)
    assert err.error_code == PtTlsErrorCode.VERSION_NOT_SUPPORTED
    client = PtTlsClient(Tncc([]))
    client.start()
    client.data_to_send()
    client.receive_data(encode_message(SaslResult(0), 0))
    (err,) = _errors(client)
    assert err.error_code == PtTlsErrorCode.INVALID_MESSAGE


def test_client_accepts_strongswans_one_octet_sasl_result() -> None:
    server, client = make(scfg=server_cfg(short_sasl_result=True))
    wire = Wire(server, client)
    wire.run()
    (result,) = [m for _, n, m in wire.log if n == "SASL_RESULT"]
    assert result == SaslResult(SaslResultCode.SUCCESS, short=True)
    assert client.recommendation is AccessRecommendation.ALLOWED


def test_server_retry_over_full_duplex() -> None:
    pb_server = PbTncConfig(full_duplex=True)
    pb_client = PbTncConfig(full_duplex=True, close_after_result=False)
    server = PtTlsServer(Tncs([CommandValidator()], config=pb_server), server_cfg(ClientAuth.NONE))
    client = PtTlsClient(Tncc([command_collector("isolate")], config=pb_client))
    wire = Wire(server, client)
    wire.run()
    assert server.recommendation is AccessRecommendation.QUARANTINED
    assert not server.closed and server.tncs.state is PbTncState.DECIDED
    first = len(wire.log)
    server.request_retry()  # SRETRY goes out at once
    wire.pump()
    batch_types = [
        decode_batch(m.batch).batch_type  # type: ignore[attr-defined]
        for _, n, m in wire.log[first:]
        if n == "PB_TNC_BATCH"
    ]
    assert batch_types[0] is BatchType.SRETRY
    assert BatchType.RESULT in batch_types
    decided = [e for e in server.events() if type(e).__name__ == "PbTncEventOccurred"]
    assert decided
    client.close()
    wire.pump()
    assert server.closed and client.closed


def test_usage_errors() -> None:
    with pytest.raises(PtTlsUsageError):
        PtTlsServerConfig(ClientAuth.SASL)
    with pytest.raises(PtTlsUsageError):
        PtTlsClientConfig(versions=())
    client = PtTlsClient(Tncc([]))
    client.start()
    with pytest.raises(PtTlsUsageError):
        client.start()
    with pytest.raises(PtTlsUsageError):
        client.request_retry()


def test_connection_lost() -> None:
    server = _server_after_version()
    server.connection_lost()
    assert server.closed
    (ev,) = events_of(server, SessionClosed)
    assert ev == SessionClosed("connection lost", False)


Factory = Callable[[], PlainClient]


# --------------------------------------------------------------------------- Hypothesis

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_MESSAGES = st.one_of(
    st.builds(VersionRequest, st.integers(0, 3), st.integers(1, 3), st.integers(0, 3)),
    st.builds(lambda b: encode_message(PbTncBatchMessage(b), 0), st.binary(max_size=24)),
    st.builds(
        lambda t, v: struct.pack(">IIII", 0, t, 16 + len(v), 9) + v,
        st.integers(0, 10),
        st.binary(max_size=12),
    ),
    st.binary(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_MESSAGES, max_size=6), st.booleans())
def test_sessions_never_crash(items: list[object], as_client: bool) -> None:
    session: PtTlsServer | PtTlsClient
    if as_client:
        session = PtTlsClient(Tncc([command_collector("allow")]),
                              PtTlsClientConfig((lambda: PlainClient("a", "b"),)))
        session.start()
    else:
        session = PtTlsServer(Tncs([CommandValidator()]), server_cfg())
    for item in items:
        data = encode_message(item, 0) if isinstance(item, VersionRequest) else item
        assert isinstance(data, bytes)
        session.receive_data(data)
        out = session.data_to_send()
        FrameParser().feed(out)  # whatever we send is well-formed
        if session.closed:
            assert session.close_reason


def test_good_message_then_broken_header_in_one_read() -> None:
    server = PtTlsServer(Tncs([CommandValidator()]), server_cfg())
    bad = struct.pack(">IIII", 0, 4, 3, 1)  # length 3 < 16
    server.receive_data(encode_message(VersionRequest(), 0) + bad)
    frames = FrameParser().feed(server.data_to_send())
    names = [f.type_name() for f in frames]
    assert names == ["VERSION_RESPONSE", "SASL_MECHANISMS", "PT_TLS_ERROR"]
    assert decode_value(frames[-1]).error_code == PtTlsErrorCode.MALFORMED_MESSAGE  # type: ignore[union-attr]
    assert decode_value(frames[-1]).original == bad  # type: ignore[union-attr]
    assert server.closed
