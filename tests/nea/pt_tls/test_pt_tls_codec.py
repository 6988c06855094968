"""PT-TLS message codec (RFC 6876 3.5-3.9): one case table for parse and serialize, the
stream parser fed whole / byte by byte / truncated / with trailing garbage, error codes and
offsets, Hypothesis."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nea.pt_tls import (
    Frame,
    FrameParser,
    InvalidParameter,
    MalformedMessage,
    PbTncBatchMessage,
    PtTlsError,
    PtTlsErrorCode,
    PtTlsErrorMessage,
    PtTlsExperimental,
    SaslAuthenticationData,
    SaslMechanisms,
    SaslMechanismSelection,
    SaslResult,
    SaslResultCode,
    UnknownMessage,
    VersionRequest,
    VersionResponse,
    decode_value,
    encode_message,
    parse_frames,
)


def header(vendor: int, mtype: int, length: int, ident: int, reserved: int = 0) -> bytes:
    return struct.pack(">IIII", (reserved << 24) | vendor, mtype, length, ident)


EMPTY_RESULT = b"\x02\x80\x00\x03\x00\x00\x00\x08"
CASES = [
    # (message, type, value)
    (PtTlsExperimental(b"x"), 0, b"x"),
    (VersionRequest(1, 1, 1), 1, b"\x00\x01\x01\x01"),
    (VersionRequest(1, 3, 2), 1, b"\x00\x01\x03\x02"),
    (VersionResponse(1), 2, b"\x00\x00\x00\x01"),
    (SaslMechanisms(("PLAIN",)), 3, b"\x05PLAIN"),
    (SaslMechanisms(("PLAIN", "SCRAM-SHA-1")), 3, b"\x05PLAIN\x0bSCRAM-SHA-1"),
    (SaslMechanisms(), 3, b""),
    (SaslMechanisms(("X",), (5,)), 3, b"\xa1X"),
    (SaslMechanismSelection("PLAIN", b"\x00bob\x00pw"), 4, b"\x05PLAIN\x00bob\x00pw"),
    (SaslMechanismSelection("PLAIN"), 4, b"\x05PLAIN"),
    (SaslAuthenticationData(b"chal"), 5, b"chal"),
    (SaslResult(SaslResultCode.SUCCESS), 6, b"\x00\x00"),
    (SaslResult(SaslResultCode.ABORT, b"why"), 6, b"\x00\x02why"),
    (SaslResult(SaslResultCode.SUCCESS, short=True), 6, b"\x00"),  # strongSwan's form
    (PbTncBatchMessage(EMPTY_RESULT), 7, EMPTY_RESULT),
    (PtTlsErrorMessage(4, b"orig"), 8, b"\x00\x00\x00\x00\x00\x00\x00\x04orig"),
    (PtTlsErrorMessage(9, b"", vendor_id=0x902A), 8, b"\x00\x00\x90\x2a\x00\x00\x00\x09"),
]


@pytest.mark.parametrize(("message", "mtype", "value"), CASES)
def test_case_table(message: object, mtype: int, value: bytes) -> None:
    wire = encode_message(message, 7)  # type: ignore[arg-type]
    assert wire == header(0, mtype, 16 + len(value), 7) + value
    ((offset, frame),) = parse_frames(wire)
    assert offset == 0 and frame.identifier == 7
    assert decode_value(frame) == message


def test_version_messages_are_20_octets() -> None:
    # strongSwan's Version Request/Response: 16-byte header plus 4 (see the transcripts README)
    assert len(encode_message(VersionRequest(), 0)) == 20
    assert len(encode_message(VersionResponse(), 1)) == 20


def test_unknown_types_are_kept() -> None:
    for vendor, mtype in ((0x902A, 1), (0, 9), (0, 0xFFFFFFFE)):
        wire = header(vendor, mtype, 19, 3) + b"abc"
        ((_, frame),) = parse_frames(wire)
        msg = decode_value(frame)
        assert msg == UnknownMessage(vendor, mtype, b"abc")
        assert frame.encode() == wire


ERRORS = [
    # (wire, error class, offset)
    (header(0, 1, 19, 0) + b"\x00\x01\x01", MalformedMessage, 8),
    (header(0, 1, 21, 0) + b"\x00\x01\x01\x01\x00", MalformedMessage, 8),
    (header(0, 1, 20, 0) + b"\x00\x02\x01\x01", InvalidParameter, 17),
    (header(0, 2, 19, 0) + b"\x00\x00\x01", MalformedMessage, 8),
    (header(0, 3, 20, 0) + b"\x05PLA", InvalidParameter, 16),
    (header(0, 3, 22, 0) + b"\x05plain", InvalidParameter, 16),
    (header(0, 3, 17, 0) + b"\x00", InvalidParameter, 16),
    (header(0, 4, 16, 0), MalformedMessage, 8),
    (header(0, 4, 18, 0) + b"\x05P", InvalidParameter, 16),
    (header(0, 6, 16, 0), MalformedMessage, 8),
    (header(0, 6, 18, 0) + b"\x00\x09", InvalidParameter, 16),
    (header(0, 8, 20, 0) + b"\x00\x00\x00\x00", MalformedMessage, 8),
]


@pytest.mark.parametrize(("wire", "cls", "offset"), ERRORS)
def test_value_errors(wire: bytes, cls: type[PtTlsError], offset: int) -> None:
    ((_, frame),) = parse_frames(wire)
    with pytest.raises(cls) as info:
        decode_value(frame)
    assert info.value.offset == offset


@pytest.mark.parametrize(
    ("wire", "code", "offset"),
    [
        (header(0, 1, 15, 0), PtTlsErrorCode.MALFORMED_MESSAGE, 8),
        (header(0, 1, 1 << 30, 0), PtTlsErrorCode.INVALID_PARAMETER, 8),
        (header(0, 0xFFFFFFFF, 16, 0), PtTlsErrorCode.INVALID_PARAMETER, 4),
    ],
)
def test_header_errors(wire: bytes, code: PtTlsErrorCode, offset: int) -> None:
    parser = FrameParser()
    good = encode_message(VersionRequest(), 0)
    frames = parser.feed(good + wire)
    assert [decode_value(f) for f in frames] == [VersionRequest()]  # what came before survives
    assert parser.error is not None
    assert parser.error.code is code and parser.error.offset == offset
    assert parser.broken and parser.feed(b"more") == []
    with pytest.raises(PtTlsError) as info2:
        parse_frames(b"\x00" * 0 + wire, max_length=1 << 20)
    assert info2.value.code is code


STREAM = b"".join(encode_message(m, i) for i, (m, _, _) in enumerate(CASES))


def test_stream_whole() -> None:
    frames = FrameParser().feed(STREAM)
    assert [decode_value(f) for f in frames] == [c[0] for c in CASES]


def test_stream_byte_by_byte() -> None:
    parser = FrameParser()
    frames: list[Frame] = []
    for i in range(len(STREAM)):
        frames += parser.feed(STREAM[i : i + 1])
    assert [decode_value(f) for f in frames] == [c[0] for c in CASES]
    assert parser.pending == 0


def test_stream_truncated_waits() -> None:
    parser = FrameParser()
    frames = parser.feed(STREAM[:-1])
    assert len(frames) == len(CASES) - 1
    assert parser.pending > 0
    assert [decode_value(f) for f in parser.feed(STREAM[-1:])] == [CASES[-1][0]]
    with pytest.raises(MalformedMessage) as info:
        parse_frames(STREAM[:-1])
    assert info.value.offset > 0


def test_stream_trailing_garbage() -> None:
    parser = FrameParser()
    frames = parser.feed(STREAM + b"\xff" * 5)
    assert len(frames) == len(CASES)
    assert parser.pending == 5
    assert parser.feed(b"\xff" * 11) == []  # completes a header whose length is nonsense
    assert parser.error is not None
    with pytest.raises(MalformedMessage) as info:
        parse_frames(STREAM + b"\x00\x00")
    assert info.value.offset == len(STREAM)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.integers(min_value=1, max_value=9))
def test_parser_only_raises_its_errors(data: bytes, split: int) -> None:
    parser = FrameParser(max_length=1024)
    total = 0
    for i in range(0, len(data), split):
        for frame in parser.feed(data[i : i + split]):
            total += frame.length
            try:
                msg = decode_value(frame)
            except PtTlsError as exc:
                assert 0 <= exc.offset < frame.length
            else:
                assert encode_message(msg, frame.identifier) == frame.encode() or (
                    frame.reserved != 0
                )
    if parser.error is not None:
        assert parser.error.code in (
            PtTlsErrorCode.MALFORMED_MESSAGE,
            PtTlsErrorCode.INVALID_PARAMETER,
        )
    else:
        assert total + parser.pending == len(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 8), st.binary(max_size=40))
def test_every_ietf_value_decodes_or_fails_cleanly(mtype: int, value: bytes) -> None:
    frame = Frame(0, mtype, 1, value)
    try:
        msg = decode_value(frame)
    except PtTlsError as exc:
        assert 0 <= exc.offset < frame.length
    else:
        assert msg.encode_value() == value
