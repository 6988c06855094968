"""EAP-TLS framing: flags, length, fragmentation, reassembly limit (ike.eap_tls.framing)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.eap_tls.errors import FramingError, ReassemblyLimitError
from ike.eap_tls.framing import (
    FLAG_LENGTH,
    FLAG_MORE,
    FLAG_START,
    Framing,
    Message,
    Reply,
)


def transfer(sender: Framing, receiver: Framing, data: bytes) -> tuple[bytes, int]:
    """Send ``data`` fragment by fragment, ACKing each; return (received, messages)."""
    wire = sender.send(data)
    count = 1
    while True:
        got = receiver.receive(wire)
        if isinstance(got, Message):
            assert not sender.sending
            return got.data, count
        assert got.type_data == bytes([receiver.version])  # an ACK
        nxt = sender.receive(got.type_data)
        assert isinstance(nxt, Reply)
        wire = nxt.type_data
        count += 1


@pytest.mark.parametrize("size", [1, 7, 64, 1024])
@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 1000, 5000])
def test_round_trip_any_fragment_size(size: int, length: int) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    data = data[:length]
    a, b = Framing(fragment_size=size), Framing(fragment_size=size)
    got, count = transfer(a, b, data)
    assert got == data
    assert count == max(1, -(-length // size))


def test_first_fragment_has_length_and_more_rest_no_length() -> None:
    f = Framing(fragment_size=4, version=1)
    first = f.send(b"abcdefghij")
    assert first[0] == FLAG_LENGTH | FLAG_MORE | 1
    assert struct.unpack("!I", first[1:5])[0] == 10
    assert first[5:] == b"abcd"
    second = f.receive(bytes([1]))
    assert isinstance(second, Reply) and second.type_data == bytes([FLAG_MORE | 1]) + b"efgh"
    third = f.receive(bytes([1]))
    assert isinstance(third, Reply) and third.type_data == bytes([1]) + b"ij"
    assert not f.sending


def test_unfragmented_message_has_no_length_unless_asked() -> None:
    assert Framing().send(b"xy") == b"\x00xy"
    assert Framing(length_always=True).send(b"xy") == b"\x80\x00\x00\x00\x02xy"


def test_liberal_length_on_unfragmented_message() -> None:
    got = Framing().receive(b"\x80\x00\x00\x00\x02xy")
    assert got == Message(b"xy", 0x80)


def test_length_repeated_on_every_fragment_is_accepted() -> None:
    f = Framing()
    assert isinstance(f.receive(b"\xc0\x00\x00\x00\x04ab"), Reply)
    got = f.receive(b"\x80\x00\x00\x00\x04cd")
    assert isinstance(got, Message) and got.data == b"abcd"


def test_first_fragment_without_length_is_accepted() -> None:
    f = Framing()
    assert isinstance(f.receive(b"\x40ab"), Reply)
    got = f.receive(b"\x00cd")
    assert isinstance(got, Message) and got.data == b"abcd"


def test_start_and_version_bits() -> None:
    f = Framing(version=1)
    assert f.start() == bytes([FLAG_START | 1])
    got = Framing().receive(bytes([FLAG_START | 1]))
    assert isinstance(got, Message) and got.start and got.version == 1 and got.data == b""


@pytest.mark.parametrize(
    "wire",
    [
        b"",  # no flags
        b"\x80\x00\x00",  # truncated length
        b"\x80\x00\x00\x00\x05abc",  # length does not match
        b"\x80\x00\x00\x00\x01abc",  # length shorter than data
        b"\xc0\x00\x00\x00\x02ab",  # M set but first fragment holds everything
        b"\x40",  # empty fragment with M
    ],
)
def test_malformed_framing(wire: bytes) -> None:
    with pytest.raises(FramingError):
        Framing().receive(wire)


def test_reassembled_length_mismatch() -> None:
    f = Framing()
    f.receive(b"\xc0\x00\x00\x00\x06abc")
    with pytest.raises(FramingError):
        f.receive(b"\x00de")


def test_fragments_beyond_announced_length() -> None:
    f = Framing()
    f.receive(b"\xc0\x00\x00\x00\x04abc")
    with pytest.raises(FramingError):
        f.receive(b"\x40de")


def test_announced_length_over_limit() -> None:
    with pytest.raises(ReassemblyLimitError):
        Framing().receive(b"\xc0" + struct.pack("!I", 64 * 1024 + 1) + b"a")


def test_growing_beyond_limit_without_length() -> None:
    f = Framing(max_message=100)
    f.receive(b"\x40" + b"a" * 60)
    with pytest.raises(ReassemblyLimitError):
        f.receive(b"\x40" + b"a" * 60)


def test_data_instead_of_ack_while_fragmenting() -> None:
    f = Framing(fragment_size=2)
    f.send(b"abcdef")
    with pytest.raises(FramingError):
        f.receive(b"\x00zz")


def test_start_inside_fragmented_message() -> None:
    f = Framing()
    f.receive(b"\x40ab")
    with pytest.raises(FramingError):
        f.receive(b"\x20cd")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=1, max_value=16))
def test_arbitrary_input_never_crashes(wire: bytes, size: int) -> None:
    f = Framing(fragment_size=size, max_message=1000)
    try:
        f.receive(wire)
        f.receive(wire)
    except FramingError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=700))
def test_round_trip_property(data: bytes, size: int) -> None:
    got, _ = transfer(Framing(fragment_size=size), Framing(fragment_size=size), data)
    assert got == data
