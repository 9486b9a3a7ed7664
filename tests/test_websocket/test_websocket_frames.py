"""The frame codec against an independent implementation: the ``websockets`` library's Frame parser/serializer."""

from __future__ import annotations

import os

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from locust_ext.websocket.frames import (
    MAX_MESSAGE_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    ProtocolError,
    encode_frame,
    mask,
)

#: Payload sizes around every length encoding: 7-bit (<= 125), 16-bit (126..65535), 64-bit (>= 65536).
SIZES = [0, 1, 125, 126, 127, 65_535, 65_536, 200_000]


def parse_client_frame(data: bytes) -> Frame:
    """Parse one masked client frame with websockets, checking it uses every byte."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as stop:
        next(parser)
    assert reader.at_eof()
    frame: Frame = stop.value.value
    return frame


def server_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=False)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_client_frames_parse_in_the_reference_implementation(size: int, opcode: int) -> None:
    payload = os.urandom(size)
    frame = parse_client_frame(encode_frame(opcode, payload))
    assert (frame.opcode, frame.data, frame.fin) == (opcode, payload, True)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_client_control_frames_parse_in_the_reference_implementation(opcode: int) -> None:
    frame = parse_client_frame(encode_frame(opcode, b"\x03\xe8bye"))
    assert (frame.opcode, frame.data) == (opcode, b"\x03\xe8bye")


def test_every_client_frame_gets_a_fresh_mask_key() -> None:
    keys = {encode_frame(OP_TEXT, b"same")[2:6] for _ in range(50)}
    assert len(keys) > 40  # 50 random 32-bit keys: a repeat is vanishingly rare, never most of them


@pytest.mark.parametrize("size", [1, 3, 4, 5, 101, 70_001])
def test_masking_is_its_own_inverse_and_xors_the_repeated_key(size: int) -> None:
    payload, key = os.urandom(size), os.urandom(4)
    masked = mask(payload, key)
    assert masked == bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    assert mask(masked, key) == payload
    assert mask(b"", key) == b""


@pytest.mark.parametrize("size", SIZES)
def test_server_frames_of_every_length_encoding_are_read(size: int) -> None:
    payload = os.urandom(size)
    assert FrameReader().feed(server_frame(Opcode.BINARY, payload), []) == [(OP_BINARY, payload)]


def test_a_buffer_holding_many_frames_yields_them_all_in_order() -> None:
    data = b"".join(server_frame(Opcode.TEXT, f"message {index}".encode()) for index in range(100))
    out = FrameReader().feed(data, [])
    assert out == [(OP_TEXT, f"message {index}".encode()) for index in range(100)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_frames_split_anywhere_across_reads_are_reassembled(chunk: int) -> None:
    frames = [(Opcode.TEXT, b"a" * 5), (Opcode.BINARY, os.urandom(300)), (Opcode.BINARY, os.urandom(70_000))]
    data = b"".join(server_frame(opcode, payload) for opcode, payload in frames)
    reader = FrameReader()
    out: list[tuple[int, bytes]] = []
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk], out)
    assert out == [(int(opcode), payload) for opcode, payload in frames]


def test_fragments_join_into_one_message_and_control_frames_pass_between_them() -> None:
    data = b"".join(
        [
            server_frame(Opcode.TEXT, b"hel", fin=False),
            server_frame(Opcode.PING, b"p"),
            server_frame(Opcode.CONT, b"lo ", fin=False),
            server_frame(Opcode.CONT, b"world"),
            server_frame(Opcode.BINARY, b"\x00", fin=False),
            server_frame(Opcode.CONT, b"\x01"),
        ]
    )
    assert FrameReader().feed(data, []) == [(OP_PING, b"p"), (OP_TEXT, b"hello world"), (OP_BINARY, b"\x00\x01")]


def test_a_close_frame_keeps_its_code_and_reason() -> None:
    close = Frame(Opcode.CLOSE, b"\x0f\xa0kicked").serialize(mask=False)
    assert FrameReader().feed(close, []) == [(OP_CLOSE, b"\x0f\xa0kicked")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (Frame(Opcode.TEXT, b"x").serialize(mask=True), "masked frame"),
        (b"\xc1\x01x", "reserved bits"),  # FIN + RSV1, which the reference refuses to write
        (server_frame(Opcode.CONT, b"x"), "continuation frame with no message"),
        (server_frame(Opcode.TEXT, b"a", fin=False) + server_frame(Opcode.TEXT, b"b"), "new message before"),
        (b"\x09\x01p", "fragmented or oversized control"),
        (b"\x89\x7e\x00\x7e" + b"p" * 126, "fragmented or oversized control"),
        (b"\x83\x00", "reserved opcode 0x3"),
        (b"\x82\x7f" + (MAX_MESSAGE_BYTES + 1).to_bytes(8, "big"), "more than"),
    ],
)
def test_frames_that_break_the_protocol_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        FrameReader().feed(data, [])


def test_frames_completed_before_a_broken_one_are_kept() -> None:
    good = server_frame(Opcode.TEXT, b'{"id":1}') + server_frame(Opcode.PONG, b"p")
    out: list[tuple[int, bytes]] = []
    with pytest.raises(ProtocolError, match="reserved opcode"):
        FrameReader().feed(good + b"\x83\x00", out)
    assert out == [(OP_TEXT, b'{"id":1}'), (OP_PONG, b"p")]
