"""Every PB-Error path of the engines, and Hypothesis over (state, batch type)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nea.pb_tnc import (
    AccessRecommendation,
    AssessmentResult,
    Batch,
    BatchType,
    ConnectionClosed,
    FatalErrorSent,
    OutboundPa,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbError,
    PbErrorCode,
    PbErrorReceived,
    PbExperimental,
    PbLanguagePreference,
    PbMessage,
    PbNoskipTest,
    PbPa,
    PbReasonString,
    PbTncConfig,
    PbTncState,
    Tncc,
    Tncs,
    UnknownMessage,
    decode_batch,
)
from nea.pb_tnc.messages import encode_message
from nea.pb_tnc.state import TRANSITIONS, Role, next_state
from tests.nea.pb_tnc.pbtnc_fakes import FakeCollector, FakeValidator, pa_message

S = PbTncState
B = BatchType


def _pa(body: bytes = b"") -> PbPa:
    return PbPa(0, 1, 1, 0xFFFF, body or pa_message())


def _cdata(*messages: PbMessage, batch_type: BatchType = B.CDATA) -> bytes:
    return Batch(batch_type, False, tuple(messages)).encode()


def _sbatch(batch_type: BatchType, *messages: PbMessage) -> bytes:
    return Batch(batch_type, True, tuple(messages)).encode()


def _result(*extra: PbMessage) -> bytes:
    return _sbatch(
        B.RESULT,
        PbAssessmentResult(AssessmentResult.COMPLIANT),
        PbAccessRecommendation(AccessRecommendation.ALLOWED),
        *extra,
    )


# --------------------------------------------------------------- engines in every state


def server_in(state: PbTncState) -> Tncs:
    if state is S.INIT:
        return Tncs([FakeValidator(1, rounds=5)])
    if state is S.CLIENT_WORKING:
        tncs = Tncs([FakeValidator(1, rounds=5)])
        tncs.receive_batch(_cdata(_pa()))
    elif state in (S.DECIDED, S.SERVER_WORKING):
        tncs = Tncs([FakeValidator(1, rounds=0)])
        tncs.receive_batch(_cdata(_pa()))
        if state is S.SERVER_WORKING:
            tncs.request_retry()  # SRETRY: waiting for the client's CRETRY
    else:
        tncs = Tncs([FakeValidator(1)])
        tncs.close()
    assert tncs.state is state
    tncs.events()
    return tncs


def client_in(state: PbTncState) -> Tncc:
    tncc = Tncc(
        [FakeCollector(1, initial=[OutboundPa(0, 1, pa_message())])],
        config=PbTncConfig(close_after_result=False),
    )
    if state in (S.SERVER_WORKING, S.DECIDED):
        tncc.start()
        if state is S.DECIDED:
            tncc.receive_batch(_result())
    elif state is S.END:
        tncc.close()
    assert tncc.state is state
    tncc.events()
    return tncc


SERVER_STATES = [S.INIT, S.SERVER_WORKING, S.CLIENT_WORKING, S.DECIDED, S.END]
CLIENT_STATES = [S.INIT, S.SERVER_WORKING, S.DECIDED, S.END]


def _only_error(out: list[bytes], *, from_server: bool) -> PbError:
    """The single CLOSE batch a fatal error produces, and its PB-Error."""
    assert len(out) == 1
    batch = decode_batch(out[0])
    assert batch.batch_type is B.CLOSE and batch.from_server is from_server
    (error,) = batch.messages
    assert isinstance(error, PbError) and error.fatal
    return error


# --------------------------------------------------------------- unexpected batch types


@pytest.mark.parametrize(
    ("state", "batch_type"),
    [
        (S.INIT, B.CRETRY),
        (S.DECIDED, B.CDATA),
        (S.SERVER_WORKING, B.CDATA),  # after SRETRY only CRETRY (or CLOSE) may come
    ],
)
def test_server_unexpected_batch_type(state: PbTncState, batch_type: BatchType) -> None:
    tncs = server_in(state)
    error = _only_error(tncs.receive_batch(_cdata(batch_type=batch_type)), from_server=True)
    assert (error.ietf_code, error.offset) == (PbErrorCode.UNEXPECTED_BATCH_TYPE, 0)
    assert tncs.state is S.END
    events = tncs.events()
    assert any(isinstance(e, FatalErrorSent) for e in events)
    assert any(isinstance(e, ConnectionClosed) and not e.by_peer for e in events)


@pytest.mark.parametrize("state", [S.INIT, S.CLIENT_WORKING, S.DECIDED, S.SERVER_WORKING])
@pytest.mark.parametrize("batch_type", [B.SDATA, B.RESULT, B.SRETRY])
def test_server_refuses_server_batch_types(state: PbTncState, batch_type: BatchType) -> None:
    # D bit clear (claims to come from the client) but a type only a server may send
    tncs = server_in(state)
    error = _only_error(tncs.receive_batch(_cdata(batch_type=batch_type)), from_server=True)
    assert error.ietf_code is PbErrorCode.UNEXPECTED_BATCH_TYPE


@pytest.mark.parametrize(
    ("state", "batch"),
    [
        (S.INIT, lambda: _result()),
        (S.INIT, lambda: _sbatch(B.SRETRY)),
        (S.DECIDED, lambda: _sbatch(B.SDATA)),
        (S.DECIDED, lambda: _result()),
        (S.SERVER_WORKING, lambda: _sbatch(B.CDATA)),  # client type with the D bit set
    ],
)
def test_client_unexpected_batch_type(state: PbTncState, batch: Callable[[], bytes]) -> None:
    tncc = client_in(state)
    error = _only_error(tncc.receive_batch(batch()), from_server=False)
    assert (error.ietf_code, error.offset) == (PbErrorCode.UNEXPECTED_BATCH_TYPE, 0)
    assert tncc.state is S.END


def test_wrong_directionality_bit() -> None:
    tncs = server_in(S.INIT)
    error = _only_error(tncs.receive_batch(_sbatch(B.CDATA)), from_server=True)
    assert (error.ietf_code, error.offset) == (PbErrorCode.INVALID_PARAMETER, 1)
    tncc = client_in(S.SERVER_WORKING)
    error = _only_error(tncc.receive_batch(Batch(B.SDATA, False).encode()), from_server=False)
    assert (error.ietf_code, error.offset) == (PbErrorCode.INVALID_PARAMETER, 1)


# --------------------------------------------------------------- version, NOSKIP, values


def test_client_announcing_version_3_gets_version_not_supported() -> None:
    # strongSwan's own failure test (tnccs-20 tests.pb_tnc_version = 3)
    data = bytearray(_cdata(PbLanguagePreference("en"), _pa()))
    data[0] = 3
    tncs = server_in(S.INIT)
    error = _only_error(tncs.receive_batch(bytes(data)), from_server=True)
    assert error.ietf_code is PbErrorCode.VERSION_NOT_SUPPORTED
    assert error.version_info == (3, 2, 2)
    assert error.offset is None
    assert tncs.state is S.END


def test_server_version_1_refused_by_client() -> None:
    data = bytearray(_sbatch(B.SDATA))
    data[0] = 1
    tncc = client_in(S.SERVER_WORKING)
    error = _only_error(tncc.receive_batch(bytes(data)), from_server=False)
    assert error.version_info == (1, 2, 2)


def test_unknown_noskip_message_gets_unsupported_mandatory_message() -> None:
    lang = PbLanguagePreference("en")
    unknown = UnknownMessage(0x123456, 42, b"secret sauce", msg_flags=0x80)
    tncs = server_in(S.INIT)
    error = _only_error(tncs.receive_batch(_cdata(lang, unknown)), from_server=True)
    assert error.ietf_code is PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE
    assert error.offset == 8 + len(encode_message(lang))  # the unknown message's header


@pytest.mark.parametrize(
    "message",
    [PbNoskipTest(), PbExperimental(b"x", msg_flags=0x80), UnknownMessage(0, 99, b"", 0x80)],
    ids=["ita-noskip-test", "experimental-noskip", "ietf-type-99"],
)
def test_noskip_messages_we_do_not_implement(message: PbMessage) -> None:
    tncc = client_in(S.SERVER_WORKING)
    error = _only_error(tncc.receive_batch(_sbatch(B.SDATA, _pa(), message)), from_server=False)
    assert error.ietf_code is PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE
    assert error.offset == 8 + len(encode_message(_pa()))


def test_unknown_message_without_noskip_is_skipped() -> None:
    tncs = server_in(S.INIT)
    (out,) = tncs.receive_batch(_cdata(UnknownMessage(0x123456, 42, b"ignore me"), _pa()))
    assert decode_batch(out).batch_type is B.SDATA
    assert tncs.state is S.CLIENT_WORKING


@pytest.mark.parametrize(
    "message",
    [
        PbAssessmentResult(AssessmentResult.COMPLIANT),
        PbAccessRecommendation(AccessRecommendation.ALLOWED),
        PbReasonString("because", "en"),
    ],
)
def test_result_messages_from_a_client_are_invalid(message: PbMessage) -> None:
    tncs = server_in(S.INIT)
    lang = PbLanguagePreference("en")
    error = _only_error(tncs.receive_batch(_cdata(lang, message)), from_server=True)
    assert error.ietf_code is PbErrorCode.INVALID_PARAMETER
    assert error.offset == 8 + len(encode_message(lang))


def test_result_without_assessment_result() -> None:
    tncc = client_in(S.SERVER_WORKING)
    batch = _sbatch(B.RESULT, PbAccessRecommendation(AccessRecommendation.ALLOWED))
    error = _only_error(tncc.receive_batch(batch), from_server=False)
    assert error.ietf_code is PbErrorCode.INVALID_PARAMETER


def test_result_with_two_access_recommendations() -> None:
    tncc = client_in(S.SERVER_WORKING)
    second = PbAccessRecommendation(AccessRecommendation.DENIED)
    data = _result(second)
    error = _only_error(tncc.receive_batch(data), from_server=False)
    assert error.ietf_code is PbErrorCode.INVALID_PARAMETER
    assert error.offset == len(data) - len(encode_message(second))


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"\x02\x00\x00", 0),  # shorter than a header
        (b"\x02\x00\x00\x07\x00\x00\x00\x08", 3),  # batch type 7
        (b"\x02\x00\x00\x01\x00\x00\x00\x09", 4),  # length says 9, 8 received
        (b"\x02\x00\x00\x01\x00\x00\x00\x0a\x00\x00", 8),  # 2 bytes: no message header
    ],
)
def test_malformed_batches_get_invalid_parameter(data: bytes, offset: int) -> None:
    tncs = server_in(S.INIT)
    error = _only_error(tncs.receive_batch(data), from_server=True)
    assert (error.ietf_code, error.offset) == (PbErrorCode.INVALID_PARAMETER, offset)


def test_message_value_error_offset_points_into_the_batch() -> None:
    lang = PbLanguagePreference("en")
    bad = struct.pack(">III", 0, 3, 16) + b"\x00\x00\x00\x07"  # Access-Rec value 7
    data = bytearray(_cdata(lang))
    data += bad
    data[4:8] = len(data).to_bytes(4, "big")
    tncc = client_in(S.SERVER_WORKING)
    data[1] = 0x80  # from the server
    data[3] = B.RESULT
    error = _only_error(tncc.receive_batch(bytes(data)), from_server=False)
    msg_at = 8 + len(encode_message(lang))
    assert (error.ietf_code, error.offset) == (PbErrorCode.INVALID_PARAMETER, msg_at + 12 + 2)


# --------------------------------------------------------------- PB-Error from the peer


def test_fatal_pb_error_from_client_closes() -> None:
    tncs = server_in(S.CLIENT_WORKING)
    err = PbError.with_offset(PbErrorCode.LOCAL_ERROR, 0)
    (out,) = tncs.receive_batch(_cdata(err))
    batch = decode_batch(out)
    assert (batch.batch_type, batch.messages) == (B.CLOSE, ())
    assert tncs.state is S.END
    assert [e.error for e in tncs.events() if isinstance(e, PbErrorReceived)] == [err]


def test_non_fatal_pb_error_is_reported_and_the_exchange_goes_on() -> None:
    tncs = server_in(S.CLIENT_WORKING)
    err = PbError.with_offset(PbErrorCode.LOCAL_ERROR, 0, fatal=False)
    (out,) = tncs.receive_batch(_cdata(err))
    assert decode_batch(out).batch_type is B.SDATA
    assert [e.error for e in tncs.events() if isinstance(e, PbErrorReceived)] == [err]


def test_close_with_pb_error_from_the_server() -> None:
    tncc = client_in(S.SERVER_WORKING)
    err = PbError.with_offset(PbErrorCode.UNEXPECTED_BATCH_TYPE, 0)
    assert tncc.receive_batch(_sbatch(B.CLOSE, err)) == []
    assert tncc.state is S.END
    closed = [e for e in tncc.events() if isinstance(e, ConnectionClosed)]
    assert closed == [ConnectionClosed(by_peer=True, errors=(err,))]


def test_nothing_after_end() -> None:
    tncs = server_in(S.END)
    assert tncs.receive_batch(_cdata(_pa())) == []
    assert tncs.receive_batch(b"garbage") == []
    assert tncs.state is S.END


def test_errors_end_both_sides_back_to_back() -> None:
    # TNCC sends version 3; our TNCS answers with a CLOSE carrying Version Not Supported,
    # which the TNCC takes as the end.
    tncs = server_in(S.INIT)
    tncc = client_in(S.INIT)
    (cdata,) = tncc.start()
    bad = bytes([3]) + cdata[1:]
    (close,) = tncs.receive_batch(bad)
    assert tncc.receive_batch(close) == []
    assert tncc.state is S.END and tncs.state is S.END
    (closed,) = [e for e in tncc.events() if isinstance(e, ConnectionClosed)]
    assert closed.by_peer and closed.errors[0].ietf_code is PbErrorCode.VERSION_NOT_SUPPORTED


# --------------------------------------------------------------- Hypothesis


SAMPLE_MESSAGES: list[PbMessage] = [
    _pa(),
    PbLanguagePreference("en"),
    PbAssessmentResult(AssessmentResult.COMPLIANT),
    PbAccessRecommendation(AccessRecommendation.QUARANTINED),
    PbReasonString("r", "en"),
    PbError.with_offset(PbErrorCode.INVALID_PARAMETER, 3, fatal=False),
    PbExperimental(b"e"),
    UnknownMessage(0x00ABCD, 1, b"u"),
    UnknownMessage(0x00ABCD, 2, b"n", msg_flags=0x80),
    PbNoskipTest(),
]


def _check_outcome(
    engine: Tncs | Tncc, before: PbTncState, out: list[bytes], batch_type: int, d_bit: bool
) -> None:
    is_server = isinstance(engine, Tncs)
    peer = Role.CLIENT if is_server else Role.SERVER
    for data in out:
        assert decode_batch(data).from_server is is_server
    if before is S.END:
        assert out == [] and engine.state is S.END
        return
    fatal = [
        m for data in out for m in decode_batch(data).messages if isinstance(m, PbError) and m.fatal
    ]
    if fatal:
        assert engine.state is S.END
        assert decode_batch(out[-1]).batch_type is B.CLOSE
    try:
        btype = BatchType(batch_type)
    except ValueError:
        assert fatal and fatal[0].ietf_code is PbErrorCode.INVALID_PARAMETER
        return
    if d_bit != (peer is Role.SERVER):
        assert fatal and (fatal[0].ietf_code, fatal[0].offset) == (
            PbErrorCode.INVALID_PARAMETER,
            1,
        )
    elif next_state(before, btype, peer) is None:
        assert fatal and fatal[0].ietf_code is PbErrorCode.UNEXPECTED_BATCH_TYPE
    elif not fatal:
        # accepted: the engine went where the table says, then maybe answered
        assert engine.state is not S.INIT


@settings(max_examples=200, deadline=None)
@given(
    role=st.sampled_from(["server", "client"]),
    state_index=st.integers(0, 4),
    batch_type=st.integers(0, 15),
    d_bit=st.booleans(),
    messages=st.lists(st.sampled_from(SAMPLE_MESSAGES), max_size=4),
)
def test_any_batch_in_any_state_ends_cleanly(
    role: str, state_index: int, batch_type: int, d_bit: bool, messages: list[PbMessage]
) -> None:
    if role == "server":
        state = SERVER_STATES[state_index]
        engine: Tncs | Tncc = server_in(state)
    else:
        state = CLIENT_STATES[state_index % len(CLIENT_STATES)]
        engine = client_in(state)
    body = b"".join(encode_message(m) for m in messages)
    header = struct.pack(">BBBBI", 2, 0x80 if d_bit else 0, 0, batch_type, 8 + len(body))
    out = engine.receive_batch(header + body)  # must never raise
    _check_outcome(engine, state, out, batch_type, d_bit)


@settings(max_examples=200, deadline=None)
@given(role=st.sampled_from(["server", "client"]), data=st.binary(max_size=80))
def test_random_bytes_never_crash_an_engine(role: str, data: bytes) -> None:
    engine: Tncs | Tncc = server_in(S.INIT) if role == "server" else client_in(S.SERVER_WORKING)
    out = engine.receive_batch(data)
    assert len(out) <= 1
    for batch in out:
        decode_batch(batch)


def test_transition_table_covers_every_state() -> None:
    states_with_exit = {s for s, _ in TRANSITIONS}
    assert states_with_exit == {S.INIT, S.SERVER_WORKING, S.CLIENT_WORKING, S.DECIDED}
    for state in states_with_exit:
        assert TRANSITIONS[(state, B.CLOSE)] is S.END
