"""The native transport's sans-I/O parts without a socket: HTTP/2 frames, cached HPACK blocks, gRPC status and
message rules, each checked against the ``hpack`` package's own encoder and decoder as the reference."""

from __future__ import annotations

import base64
import gzip
import random

import grpc
import pytest
from hpack import Decoder, Encoder

from locust_ext.grpc.native import frames as f
from locust_ext.grpc.native.headers import (
    RequestHeaders,
    ResponseDecoder,
    encode_timeout,
    grpc_message_text,
    metadata_from_headers,
)
from locust_ext.grpc.native.status import MessageError, take_message, trailer_status


def test_frames_survive_any_split_of_the_byte_stream() -> None:
    sent = [
        f.settings_frame({f.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20}),
        f.headers_frames(1, b"h" * 40_000, False, 16_384),
        f.data_frames(1, b"d" * 50_000, True, 16_384),
        f.ping_frame(b"12345678"),
        f.window_update_frame(0, 99),
        f.rst_stream_frame(3),
        f.goaway_frame(7, 2, b"bye"),
    ]
    wire = b"".join(sent)
    whole = list(f.FrameReader().feed(wire))
    reader, rng, pos = f.FrameReader(), random.Random(7), 0
    pieces: list[tuple[int, int, int, bytes]] = []
    while pos < len(wire):
        step = rng.randint(1, 3000)
        pieces.extend(reader.feed(wire[pos : pos + step]))
        pos += step
    assert pieces == whole
    kinds = [(kind, flags, stream) for kind, flags, stream, _ in whole]
    assert kinds[:5] == [(f.SETTINGS, 0, 0), (f.HEADERS, 0, 1), (f.CONTINUATION, 0, 1), (f.CONTINUATION, 4, 1),
                         (f.DATA, 0, 1)]  # fmt: skip
    data = [payload for kind, _, _, payload in whole if kind == f.DATA]
    assert b"".join(data) == b"d" * 50_000 and [flags for kind, flags, _, _ in whole if kind == f.DATA][-1] == 1
    assert f.parse_goaway(whole[-1][3]) == (7, 2, b"bye")
    assert f.parse_settings(whole[0][3]) == {f.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20}


def test_oversized_frames_and_padding() -> None:
    with pytest.raises(f.FrameError):
        list(f.FrameReader(max_frame=16_384).feed(f.frame(f.DATA, 0, 1, b"x" * 16_385)))
    padded = bytes([3]) + b"body" + b"\0\0\0"
    assert f.strip_padding(f.PADDED, padded) == b"body"
    with pytest.raises(f.FrameError):
        f.strip_padding(f.PADDED, bytes([9]) + b"ab")


def test_request_blocks_need_no_dynamic_table_and_decode_anywhere() -> None:
    headers = RequestHeaders("http", "127.0.0.1:5", "ua/1")
    block = headers.method("/pkg.Svc/Get") + headers.timeout(2.5) + headers.metadata([("k", "v"), ("b-bin", b"\0\1")])
    assert headers.method("/pkg.Svc/Get") is headers.method("/pkg.Svc/Get")  # cached
    busy = Decoder()
    busy.decode(Encoder().encode([(":path", "/other"), ("x", "y" * 50)]))  # a decoder with a populated table
    expected = [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/pkg.Svc/Get"), (b":authority", b"127.0.0.1:5"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"user-agent", b"ua/1"),
        (b"grpc-accept-encoding", b"identity,gzip"), (b"grpc-timeout", b"2500m"), (b"k", b"v"),
        (b"b-bin", base64.b64encode(b"\0\1").rstrip(b"=")),
    ]  # fmt: skip
    for decoder in (Decoder(), busy):
        assert [(bytes(n), bytes(v)) for n, v in decoder.decode(block, raw=True)] == expected
    assert len(busy.header_table.dynamic_entries) == 2  # the request block added nothing


def test_timeouts_never_exceed_eight_digits_and_round_up() -> None:
    assert encode_timeout(0.0001) == b"1m"
    assert encode_timeout(30) == b"30000m"
    assert encode_timeout(200_000) == b"200000S"
    assert encode_timeout(1e12).endswith(b"H") and len(encode_timeout(1e12)) <= 9


def test_response_blocks_remembered_only_while_exact() -> None:
    """A server-side encoder with indexing: the cache must always answer what a plain decoder answers."""
    server, reference, cached = Encoder(), Decoder(), ResponseDecoder()
    rng = random.Random(3)
    sequence = []
    for i in range(300):
        fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "identity")]
        if i % 17 == 0:
            fields.append(("date", f"Tue, {i}"))  # new values now and then: the table changes
        if rng.random() < 0.3:
            fields = [("grpc-status", str(rng.choice([0, 0, 0, 5]))), ("grpc-message", "x" if i % 2 else "")]
        sequence.append(server.encode(fields))
        if i == 150:
            server.header_table_size = 64  # a table size update mid-stream
    remembered = 0
    for block in sequence:
        remembered += block in cached._known
        assert cached.decode(block) == [(bytes(n), bytes(v)) for n, v in reference.decode(block, raw=True)]
    assert remembered > 100  # most warm blocks were answered from memory


def test_metadata_and_status_from_trailers() -> None:
    trailers = [(b"grpc-status", b"5"), (b"grpc-message", b"not%20found%3A%20%E2%9C%93"), (b"k-bin", b"AAE")]
    assert trailer_status(None, trailers) == (grpc.StatusCode.NOT_FOUND, "not found: \u2713")
    assert metadata_from_headers(trailers) == (("k-bin", b"\0\1"),)
    assert grpc_message_text(b"100%25") == "100%"
    assert trailer_status([(b":status", b"503")], [])[0] is grpc.StatusCode.UNAVAILABLE
    assert trailer_status([(b":status", b"404")], None)[0] is grpc.StatusCode.UNIMPLEMENTED
    assert trailer_status([(b":status", b"200")], None)[0] is grpc.StatusCode.INTERNAL


def test_messages_whole_partial_compressed_and_limited() -> None:
    data = bytearray(f.grpc_message(b"one") + f.grpc_message(gzip.compress(b"two"), compressed=True))
    first, pos = take_message(data, 0, b"gzip", -1)
    second, end = take_message(data, pos, b"gzip", -1)
    assert (first, second, end) == (b"one", b"two", len(data))
    assert take_message(bytearray(f.grpc_message(b"abc")[:6]), 0, None, -1) == (None, 0)
    with pytest.raises(MessageError) as too_big:
        take_message(bytearray(f.grpc_message(b"x" * 11)), 0, None, 10)
    assert too_big.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(MessageError):
        take_message(bytearray(f.grpc_message(b"zz", compressed=True)), 0, None, -1)
