"""The native gRPC transport against ``h2``, the reference Python HTTP/2 implementation, frame by frame.

The server end is :mod:`tests.test_grpc.h2_peer`: each frame the client sends is fed to h2's ``H2Connection`` alone,
and any ProtocolError, FlowControlError or FrameTooLargeError it raises fails the test. Covered: the four call
kinds (headers, DATA and END_STREAM as h2 sees them); flow control under tiny and changing windows and frame
sizes (a new value used only after our SETTINGS ACK reached h2); the receive side (multi-MiB padded responses
through a small window, CONTINUATION-split metadata, trailers-only responses); PING, SETTINGS and GOAWAY; client
cancellation and deadlines (RST_STREAM CANCEL) and the peer's resets mapped to grpcio's statuses. Last, the codec
of ``frames.py`` against hyperframe (h2's frame layer) in both directions.

Real loopback TCP on a port the kernel picks; every wait is bounded by a gevent.Timeout.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import gevent
import grpc
import h2.events as ev
import pytest
from gevent import socket
from gevent.event import Event
from h2.errors import ErrorCodes
from hpack import Decoder, Encoder
from hyperframe import frame as hf

from locust_ext.grpc.channels import ChannelSpec, open_channel
from locust_ext.grpc.native import frames as f
from locust_ext.grpc.native.channel import NativeChannel
from locust_ext.grpc.native.connection import Connection
from locust_ext.grpc.native.headers import RequestHeaders
from locust_ext.grpc.target import parse_target
from tests.test_grpc.h2_peer import (
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    PeerConnection,
    PeerStream,
    running_peer,
)

MIB = 1024 * 1024
LIMIT = 30.0  # seconds any one test may take, whatever the machine's speed


def channel(address: str, **spec: Any) -> grpc.Channel:
    """A native channel as GrpcUser opens it."""
    return open_channel(ChannelSpec(target=parse_target(f"grpc://{address}"), transport="native", **spec))


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    with gevent.Timeout(LIMIT):
        yield


def framed(*messages: bytes) -> bytes:
    return b"".join(f.grpc_message(m) for m in messages)


def stream_events(conn: PeerConnection, stream_id: int) -> list[Any]:
    return [e for e in conn.events if getattr(e, "stream_id", None) == stream_id]


def client_frames(conn: PeerConnection, stream_id: int) -> list[tuple[int, int]]:
    """(type, flags) of the client's frames on one stream, in order."""
    return [(fr.kind, fr.flags) for fr in conn.frames if fr.stream_id == stream_id]


# Handlers (the peer's side of each method)


def unary(stream: PeerStream) -> None:
    (message,) = stream.recv_all()
    stream.send_headers()
    stream.send_message(b"re:" + message)
    stream.send_trailers(0)


def server_stream(stream: PeerStream) -> None:
    (message,) = stream.recv_all()
    stream.send_headers()
    for i in range(3):
        stream.send_message(message + b"%d" % i)
    stream.send_trailers(0)


def client_stream(stream: PeerStream) -> None:
    messages = stream.recv_all()
    stream.send_headers()
    stream.send_message(b"|".join(messages))
    stream.send_trailers(0)


ROUTES = {
    "/pkg.Svc/Unary": unary,
    "/pkg.Svc/ServerStream": server_stream,
    "/pkg.Svc/ClientStream": client_stream,
}


# 1. The four call kinds


def test_four_call_kinds_frame_by_frame() -> None:
    with running_peer(ROUTES) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"one", timeout=10) == b"re:one"
            assert list(ch.unary_stream("/pkg.Svc/ServerStream")(b"s")) == [b"s0", b"s1", b"s2"]
            assert ch.stream_unary("/pkg.Svc/ClientStream")(iter([b"a", b"bb", b""]), timeout=10) == b"a|bb|"
            assert list(ch.stream_stream("/pkg.Svc/Bidi")(iter([b"x", b"yy"]))) == [b"x", b"yy"]
        finally:
            ch.close()
        conn = peer.connection(0)
        conn.wait_until(lambda: bool(conn.events_of(ev.ConnectionTerminated)))
        requests = conn.events_of(ev.RequestReceived)
        assert [r.stream_id for r in requests] == [1, 3, 5, 7]
        paths = [b"/pkg.Svc/Unary", b"/pkg.Svc/ServerStream", b"/pkg.Svc/ClientStream", b"/pkg.Svc/Bidi"]
        for request, path in zip(requests, paths, strict=True):
            headers = list(request.headers)
            pseudo = [h for h in headers if h[0].startswith(b":")]
            assert pseudo == [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", path),
                (b":authority", peer.address.encode()),
            ]
            assert headers[: len(pseudo)] == pseudo  # pseudo-headers first (h2 checks it too)
            fields = dict(headers)
            assert fields[b"te"] == b"trailers" and fields[b"content-type"] == b"application/grpc"
            timeout = fields.get(b"grpc-timeout")
            if path in (b"/pkg.Svc/Unary", b"/pkg.Svc/ClientStream"):  # the calls given a deadline
                assert timeout is not None and re.fullmatch(rb"\d{1,8}[mu]", timeout), timeout
                assert int(timeout[:-1]) <= (10_000 if timeout.endswith(b"m") else 10_000_000)
            else:
                assert timeout is None
            assert not request.stream_ended  # every kind sends its request in DATA
        sent = {
            1: framed(b"one"),
            3: framed(b"s"),
            5: framed(b"a", b"bb", b""),
            7: framed(b"x", b"yy"),
        }
        for stream_id, data in sent.items():
            events = stream_events(conn, stream_id)
            received = b"".join(e.data for e in events if isinstance(e, ev.DataReceived))
            assert received == data
            kinds = [type(e) for e in events if not isinstance(e, ev.WindowUpdated)]
            assert kinds[0] is ev.RequestReceived and ev.StreamEnded in kinds
            assert not any(isinstance(e, ev.StreamReset) for e in events)
            frames = client_frames(conn, stream_id)
            assert frames[0] == (f.HEADERS, f.END_HEADERS)  # one header block, END_STREAM left for DATA
            assert all(kind == f.DATA for kind, _ in frames[1:])
            assert [flags & f.END_STREAM for _, flags in frames[1:]] == [0] * (len(frames) - 2) + [f.END_STREAM]
        # Unary requests end on the DATA frame of their message; streamed ones on an empty DATA after the last.
        assert client_frames(conn, 1)[1:] == [(f.DATA, f.END_STREAM)]
        assert client_frames(conn, 3)[1:] == [(f.DATA, f.END_STREAM)]
        assert [e.data for e in stream_events(conn, 5) if isinstance(e, ev.DataReceived)][-1] == b""
        assert [e.data for e in stream_events(conn, 7) if isinstance(e, ev.DataReceived)][-1] == b""
        # The client's close: GOAWAY with no stream processed by the client (it is not a server).
        assert conn.events_of(ev.ConnectionTerminated)[0].error_code == ErrorCodes.NO_ERROR


def test_metadata_and_deadline_headers_as_h2_decodes_them() -> None:
    with running_peer(ROUTES) as peer:
        ch = channel(peer.address)
        try:
            metadata = (("x-text", "plain value"), ("x-blob-bin", b"\x00\xff binary"))
            assert ch.unary_unary("/pkg.Svc/Unary")(b"m", timeout=2.5, metadata=metadata) == b"re:m"
        finally:
            ch.close()
        (request,) = peer.connection(0).events_of(ev.RequestReceived)
        fields = dict(request.headers)
        assert fields[b"x-text"] == b"plain value"
        assert fields[b"x-blob-bin"] == b"AP8gYmluYXJ5"  # base64 without padding, as grpcio sends it
        assert fields[b"grpc-timeout"] == b"2500m"


@pytest.mark.parametrize(
    "metadata",
    [(("x-a", "line\nbreak"),), (("x-a", "caf\u00e9"),), (("x-a", "del\x7f"),), (("x a", "v"),), ((":path", "/x"),)],
)
def test_invalid_metadata_fails_the_call_not_the_connection(metadata: tuple[tuple[str, str], ...]) -> None:
    """Metadata grpcio refuses before sending (INTERNAL "Invalid metadata") is refused the same way: it used to
    go out, h2 answered with a connection error (PROTOCOL_ERROR), and every call on the connection failed."""
    release = Event()

    def held(stream: PeerStream) -> None:
        release.wait()
        unary(stream)

    with running_peer({"/pkg.Svc/Held": held, **ROUTES}) as peer:
        ch = channel(peer.address)
        try:
            running = gevent.spawn(ch.unary_unary("/pkg.Svc/Held"), b"bystander", timeout=LIMIT)
            conn = peer.connection(0)
            conn.wait_until(lambda: 1 in conn.streams)
            with pytest.raises(grpc.RpcError) as unary_error:
                ch.unary_unary("/pkg.Svc/Unary")(b"m", metadata=metadata, timeout=10)
            with pytest.raises(grpc.RpcError) as stream_error:
                list(ch.unary_stream("/pkg.Svc/ServerStream")(b"m", metadata=metadata, timeout=10))
            for error in (unary_error.value, stream_error.value):
                assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "Invalid metadata")
            release.set()
            assert running.get() == b"re:bystander"
        finally:
            ch.close()
        assert [e.stream_id for e in conn.events_of(ev.RequestReceived)] == [1]
        assert len(peer.connections) == 1


def test_metadata_named_like_the_transports_own_headers_is_dropped() -> None:
    """As grpcio: user metadata named te, content-type, user-agent or grpc-timeout does not reach the wire (a
    second te used to: h2 closed the connection with PROTOCOL_ERROR)."""
    with running_peer(ROUTES) as peer:
        ch = channel(peer.address)
        try:
            metadata = (("te", "gzip"), ("content-type", "text/plain"), ("user-agent", "me"), ("grpc-timeout", "1S"))
            assert ch.unary_unary("/pkg.Svc/Unary")(b"m", metadata=metadata) == b"re:m"
        finally:
            ch.close()
        (request,) = peer.connection(0).events_of(ev.RequestReceived)
        names = [name for name, _ in request.headers]
        assert names.count(b"te") == names.count(b"content-type") == names.count(b"user-agent") == 1
        assert b"grpc-timeout" not in names
        fields = dict(request.headers)
        assert (fields[b"te"], fields[b"content-type"]) == (b"trailers", b"application/grpc")
        assert fields[b"user-agent"].startswith(b"locust-grpc-websocket-native/")


# 2. Flow control under the peer's small and changing windows


def test_one_mib_message_through_tiny_and_changing_windows() -> None:
    """A 1 MiB message against a 1,000-byte stream window granted 500 bytes at a time, then SETTINGS that raise
    and lower INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE mid-message: h2 accepts every frame, and a frame over a
    size appears only once h2 has our ACK of the SETTINGS that allowed it."""
    phases = [  # (stream bytes received, new settings, connection window the peer keeps open)
        (200_000, {INITIAL_WINDOW_SIZE: 300_000, MAX_FRAME_SIZE: 65_536}, 1 << 20),
        (500_000, {INITIAL_WINDOW_SIZE: 3_000, MAX_FRAME_SIZE: 16_384}, 65_535),
        (800_000, {INITIAL_WINDOW_SIZE: 1 << 20, MAX_FRAME_SIZE: 1 << 20}, 2 << 20),
    ]
    done: list[int] = []

    def sink(stream: PeerStream) -> None:
        stream.send_headers()
        sizes = [len(m) for m in stream.recv_all()]
        stream.send_message(b"%d" % sum(sizes))
        stream.send_trailers(0)

    def on_data(conn: PeerConnection, stream: PeerStream) -> None:
        while len(done) < len(phases) and stream.data_bytes >= phases[len(done)][0]:
            _, settings, window = phases[len(done)]
            done.append(conn.acks)
            conn.peer.connection_window = window
            conn.update_settings(settings)

    settings = {INITIAL_WINDOW_SIZE: 1_000, MAX_FRAME_SIZE: 16_384}
    with running_peer(ROUTES | {"/pkg.Svc/Sink": sink}, settings=settings, grant_step=500) as peer:
        peer.on_data = on_data
        ch = channel(peer.address, options=(("grpc.max_send_message_length", 4 * MIB),))
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)  # both of the peer's SETTINGS (h2's own, then ours) acked
            message = bytes(range(256)) * 4096
            assert ch.stream_unary("/pkg.Svc/Sink")(iter([message]), timeout=LIMIT) == b"%d" % len(message)
        finally:
            ch.close()
        assert len(done) == len(phases) and done == [2, 3, 4]
        data = [fr for fr in conn.frames if fr.kind == f.DATA and fr.stream_id == 3]
        assert sum(fr.length for fr in data) == len(message) + 5
        assert all(fr.length <= fr.max_frame for fr in conn.frames)  # h2 would have raised FrameTooLargeError
        # Under the 1,000-byte window (before the first change is acked) no DATA frame exceeds it.
        assert all(fr.length <= 1_000 for fr in data if fr.acks_before == 2)
        assert len([fr for fr in data if fr.acks_before == 2]) >= 100
        # Frames over 16 KiB only after h2 had our ACK of a larger MAX_FRAME_SIZE, none after the ACK of the lower.
        big = [fr for fr in data if fr.length > 16_384]
        assert big, "the raised MAX_FRAME_SIZE was never used"
        assert all(fr.acks_before in (3, 5) for fr in big)
        assert all(fr.length <= 3_000 for fr in data if fr.acks_before == 4)
        # The peer's grants were small WINDOW_UPDATEs, at most 500 bytes, and the client used them all.
        assert conn.sent_window_updates and max(conn.sent_window_updates) <= 500


def test_settings_arriving_while_a_send_is_blocked_apply_after_the_ack() -> None:
    """The regression of issue 13 against h2 itself, on a bare Connection: the peer stops reading while the client
    is in the middle of sending a 16 MiB window's worth, then sends SETTINGS (MAX_FRAME_SIZE 1 MiB) and more window
    in one write and reads again. The frames built after the window opens may be 1 MiB, but h2 applies that size
    only once it has our ACK (FrameTooLargeError before): no large frame may precede the ACK."""
    window = 16 * MIB
    settings = {INITIAL_WINDOW_SIZE: window, MAX_FRAME_SIZE: 16_384}

    def sink(stream: PeerStream) -> None:
        stream.send_headers()
        stream.send_message(b"%d" % sum(len(m) for m in stream.recv_all()))
        stream.send_trailers(0)

    with running_peer({"/pkg.Svc/Sink": sink}, settings=settings, receive_buffer=32_768) as peer:
        peer.connection_window = window
        sock = socket.create_connection(("127.0.0.1", int(peer.address.rpartition(":")[2])))
        client = Connection(sock)
        try:
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2 and conn.h2.inbound_flow_control_window >= window)
            with gevent.Timeout(10):
                while client.send_window < window:  # the peer's WINDOW_UPDATE has reached the client
                    gevent.sleep(0.01)
            conn.pause_reading()
            block = RequestHeaders("http", peer.address, "h2-test").method("/pkg.Svc/Sink")
            message = f.grpc_message(bytes(24 * MIB))
            sender = gevent.spawn(client.open_stream, block, message, True, False)
            with gevent.Timeout(10):  # the window's worth is built and in sendall (more than the buffers hold)
                while not (1 in client.streams and client.streams[1].send_window <= 0):
                    gevent.sleep(0.01)
            conn.wait_until(lambda: 1 in conn.streams)  # the one batch read after the pause has the HEADERS
            assert not sender.ready()
            conn.h2.update_settings({MAX_FRAME_SIZE: 1 << 20})
            conn.h2.increment_flow_control_window(16 * MIB)
            conn.h2.increment_flow_control_window(16 * MIB, 1)
            conn.flush()
            conn.resume_reading()
            stream = sender.get(timeout=LIMIT)
            with gevent.Timeout(LIMIT):
                while not stream.done:
                    stream.wait()
            assert not peer.problems(), peer.problems()  # h2 raises FrameTooLargeError on a large frame before the ACK
            assert stream.remote_closed and stream.data == f.grpc_message(b"%d" % (24 * MIB))
        finally:
            client.close()
        data = [fr for fr in conn.frames if fr.kind == f.DATA]
        assert sum(fr.length for fr in data) == len(message)
        assert all(fr.length <= 16_384 for fr in data if fr.acks_before < 3)
        assert any(fr.length > 16_384 for fr in data if fr.acks_before == 3)


def test_many_concurrent_calls_share_small_windows() -> None:
    """Sixty calls of all kinds at once, each message larger than the 4,096-byte stream window, the connection
    window 16,384, granted 1,000 bytes at a time: h2 accepts every interleaving and every call gets its answer."""
    with running_peer(
        ROUTES, settings={INITIAL_WINDOW_SIZE: 4_096}, grant_step=1_000, connection_window=16_384
    ) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)

            def payload(i: int) -> bytes:
                return bytes([i]) * (10_000 + 97 * i)

            jobs = []
            for i in range(15):
                jobs.append(
                    (gevent.spawn(ch.unary_unary("/pkg.Svc/Unary"), payload(i), timeout=LIMIT), [b"re:" + payload(i)])
                )
                jobs.append(
                    (
                        gevent.spawn(
                            lambda i=i: list(ch.unary_stream("/pkg.Svc/ServerStream")(payload(i), timeout=LIMIT))
                        ),
                        [payload(i) + b"%d" % n for n in range(3)],
                    )
                )
                jobs.append(
                    (
                        gevent.spawn(
                            ch.stream_unary("/pkg.Svc/ClientStream"), iter([payload(i), payload(i + 1)]), timeout=LIMIT
                        ),
                        [payload(i) + b"|" + payload(i + 1)],
                    )
                )
                jobs.append(
                    (
                        gevent.spawn(
                            lambda i=i: list(
                                ch.stream_stream("/pkg.Svc/Bidi")(iter([payload(i), payload(i + 2)]), timeout=LIMIT)
                            )
                        ),
                        [payload(i), payload(i + 2)],
                    )
                )
            for job, expected in jobs:
                got = job.get()
                assert (got if isinstance(got, list) else [got]) == expected
        finally:
            ch.close()
        assert len(conn.events_of(ev.RequestReceived)) == 61
        assert max(fr.length for fr in conn.frames if fr.kind == f.DATA) <= 4_096


# 3. The receive side


def test_large_padded_response_through_a_small_receive_window() -> None:
    """Six 1 MiB messages in DATA frames of varying size and padding, metadata in header blocks split into
    CONTINUATION frames, through a 65,535-byte receive window: the client's WINDOW_UPDATEs keep h2's outbound
    window open (h2 refuses to send past it)."""
    big_header = "".join(chr(97 + i % 26) for i in range(40_000))
    big_trailer = "".join(chr(65 + i % 26) for i in range(30_000))
    messages = [bytes([i]) * MIB for i in range(6)]

    def big(stream: PeerStream) -> None:
        assert stream.recv_all() == [b"go"]
        stream.send_headers(extra=[("x-big", big_header)])
        for i, payload in enumerate(messages):
            stream.send_message(payload, pad_length=lambda n, i=i: (n * 37 + i) % 256, max_chunk=1_000 + 3_001 * i)
        stream.send_trailers(0, extra=[("x-trailer", big_trailer)])

    with running_peer({"/pkg.Svc/Big": big}) as peer:
        ch = NativeChannel(peer.address, receive_window=65_535, options=[("grpc.max_receive_message_length", 2 * MIB)])
        try:
            call = ch.unary_stream("/pkg.Svc/Big")(b"go", timeout=LIMIT)
            assert list(call) == messages
            assert dict(call.initial_metadata())["x-big"] == big_header
            assert dict(call.trailing_metadata())["x-trailer"] == big_trailer
            assert call.code() is grpc.StatusCode.OK
        finally:
            ch.close()
        conn = peer.connection(0)
        # h2 split both header blocks into HEADERS + CONTINUATION frames (client max frame 16,384).
        blocks = [(kind, flags) for kind, flags, sid, _ in conn.sent_frames if sid == 1 and kind != f.DATA]
        assert [kind for kind, flags in blocks if kind == f.HEADERS and not flags & f.END_HEADERS] == [f.HEADERS] * 2
        assert sum(1 for kind, _ in blocks if kind == f.CONTINUATION) >= 2
        updates = conn.events_of(ev.WindowUpdated)
        sent = sum(len(m) + 5 for m in messages)
        stream_updates = sum(u.delta for u in updates if u.stream_id == 1)
        connection_updates = sum(u.delta for u in updates if u.stream_id == 0)
        assert stream_updates >= sent - 65_535 and connection_updates >= sent - 65_535
        padded = [fr for fr in conn.sent_frames if fr[0] == f.DATA and fr[1] & f.PADDED]
        assert len(padded) > 1_000


def test_trailers_only_responses() -> None:
    trailer = "".join(chr(97 + i % 26) for i in range(30_000))

    def not_found(stream: PeerStream) -> None:
        stream.recv_all()
        stream.trailers_only(5, "caf%C3%A9 100%25 missing", extra=[("x-why", "gone"), ("x-long", trailer)])

    with running_peer({"/pkg.Svc/NotFound": not_found}) as peer:
        ch = channel(peer.address)
        try:
            with pytest.raises(grpc.RpcError) as unary_error:
                ch.unary_unary("/pkg.Svc/NotFound")(b"q", timeout=10)
            call = ch.unary_stream("/pkg.Svc/NotFound")(b"q", timeout=10)
            with pytest.raises(grpc.RpcError) as stream_error:
                list(call)
        finally:
            ch.close()
        for error in (unary_error.value, stream_error.value):
            assert error.code() is grpc.StatusCode.NOT_FOUND
            assert error.details() == "café 100% missing"
            trailing = dict(error.trailing_metadata())
            assert trailing["x-why"] == "gone" and trailing["x-long"] == trailer
        assert sum(1 for kind in peer.connection(0).sent_frame_kinds if kind == f.CONTINUATION) >= 1


def test_metadata_through_h2s_dynamic_table() -> None:
    """300 responses whose metadata h2's HPACK encoder indexes, reuses and evicts (4,096-byte table): the client's
    decoder, and its memory of blocks that left the table alone, give every call its own metadata."""

    def expected(i: int) -> tuple[dict[str, str], dict[str, str]]:
        initial = {"x-n": str(i % 7), f"x-v{i % 13}": "v" * (i * 37 % 900)}
        trailing = {"x-t": f"t{i % 5}" * (i % 50), f"x-u{i % 11}": str(i)}
        return initial, trailing

    def meta(stream: PeerStream) -> None:
        (message,) = stream.recv_all()
        initial, trailing = expected(int(message))
        stream.send_headers(extra=list(initial.items()))
        stream.send_message(message)
        stream.send_trailers(0, extra=list(trailing.items()))

    with running_peer({"/pkg.Svc/Meta": meta}) as peer:
        ch = channel(peer.address)
        try:
            method = ch.unary_unary("/pkg.Svc/Meta")
            for i in range(300):
                response, call = method.with_call(b"%d" % i, timeout=10)
                assert response == b"%d" % i
                assert (dict(call.initial_metadata()), dict(call.trailing_metadata())) == expected(i), i
        finally:
            ch.close()


def test_large_request_metadata_in_continuation_frames() -> None:
    with running_peer(ROUTES) as peer:
        ch = channel(peer.address)
        try:
            big = "".join(chr(48 + i % 75) for i in range(40_000))
            assert ch.unary_unary("/pkg.Svc/Unary")(b"m", metadata=(("x-big", big),), timeout=10) == b"re:m"
        finally:
            ch.close()
        conn = peer.connection(0)
        assert dict(conn.events_of(ev.RequestReceived)[0].headers)[b"x-big"] == big.encode()
        kinds = [fr.kind for fr in conn.frames if fr.stream_id == 1]
        assert kinds[0] == f.HEADERS and kinds[1] == f.CONTINUATION and kinds[-1] == f.DATA


def test_cancel_mid_response_keeps_the_connection_window_open() -> None:
    """A 20 MiB response cancelled after its first message, through a 65,535-byte receive window: what was in
    flight for the cancelled stream still counts, and the client's connection-level WINDOW_UPDATEs keep h2 able to
    send the next call's 20 MiB on the same connection."""

    def flood(stream: PeerStream) -> None:
        stream.recv_all()
        stream.send_headers()
        for _ in range(20):
            stream.send_message(b"z" * MIB)
        stream.send_trailers(0)

    with running_peer({"/pkg.Svc/Flood": flood}) as peer:
        ch = NativeChannel(peer.address, receive_window=65_535, options=[("grpc.max_receive_message_length", 2 * MIB)])
        try:
            call = ch.unary_stream("/pkg.Svc/Flood")(b"go", timeout=LIMIT)
            assert next(call) == b"z" * MIB
            call.cancel()
            again = ch.unary_stream("/pkg.Svc/Flood")(b"go", timeout=LIMIT)
            assert sum(1 for _ in again) == 20 and again.code() is grpc.StatusCode.OK
        finally:
            ch.close()
        conn = peer.connection(0)
        assert [(r.stream_id, r.error_code) for r in conn.events_of(ev.StreamReset)] == [(1, ErrorCodes.CANCEL)]
        assert len(peer.connections) == 1


# 4. PING, SETTINGS, GOAWAY


def acked(conn: PeerConnection, opaque: bytes) -> bool:
    return any(e.ping_data == opaque for e in conn.events_of(ev.PingAckReceived))


def test_ping_and_settings_are_acknowledged() -> None:
    with running_peer(ROUTES) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"a", timeout=10) == b"re:a"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 1)
            for opaque in (b"\x00" * 8, b"pingpong", bytes(range(8))):
                conn.ping(opaque)
                conn.wait_until(partial(acked, conn, opaque))
            conn.update_settings({MAX_FRAME_SIZE: 32_768, INITIAL_WINDOW_SIZE: 100_000})
            conn.wait_until(lambda: conn.acks >= 2)
            assert conn.events_of(ev.SettingsAcknowledged)[-1].changed_settings[MAX_FRAME_SIZE].new_value == 32_768
            assert ch.unary_unary("/pkg.Svc/Unary")(b"b" * 50_000, timeout=10) == b"re:" + b"b" * 50_000
        finally:
            ch.close()
        data = [fr for fr in conn.frames if fr.kind == f.DATA and fr.stream_id == 3]
        assert max(fr.length for fr in data) == 32_768  # the new size, used once h2 had the ACK
        assert [len(e.ping_data) for e in conn.events_of(ev.PingAckReceived)] == [8, 8, 8]


def test_goaway_finishes_streams_below_and_retries_or_fails_those_above() -> None:
    release = Event()

    def hold(stream: PeerStream) -> None:
        if stream.conn.index == 0:
            release.wait()
        stream.send_headers()
        while (message := stream.recv()) is not None:
            stream.send_message(message)
        stream.send_trailers(0)

    stop_requests = Event()

    def streamed(first: bytes) -> Iterator[bytes]:
        yield first
        stop_requests.wait()

    with running_peer({"/pkg.Svc/Hold": hold}) as peer:
        ch = channel(peer.address)
        try:
            results: dict[str, Any] = {}

            def run(name: str, fn: Any) -> None:
                try:
                    results[name] = fn()
                except grpc.RpcError as exc:
                    results[name] = exc

            below = gevent.spawn(run, "below", lambda: ch.unary_unary("/pkg.Svc/Hold")(b"1", timeout=LIMIT))
            conn = peer.connection(0)
            conn.wait_until(lambda: 1 in conn.streams)
            retried = gevent.spawn(run, "retried", lambda: ch.unary_unary("/pkg.Svc/Hold")(b"3", timeout=LIMIT))
            conn.wait_until(lambda: 3 in conn.streams)
            bidi = gevent.spawn(run, "bidi", lambda: list(ch.stream_stream("/pkg.Svc/Hold")(streamed(b"5"))))
            conn.wait_until(lambda: 5 in conn.streams)
            upload = gevent.spawn(
                run, "upload", lambda: ch.stream_unary("/pkg.Svc/Hold")(streamed(b"7"), timeout=LIMIT)
            )
            conn.wait_until(lambda: 7 in conn.streams)
            seen = len(conn.frames)
            conn.goaway(last_stream_id=1)
            gevent.joinall([retried, bidi, upload], raise_error=True)
            assert results["retried"] == b"3"  # on a new connection
            for name in ("bidi", "upload"):
                assert isinstance(results[name], grpc.RpcError), results[name]
                assert results[name].code() is grpc.StatusCode.UNAVAILABLE
                assert "GOAWAY" in results[name].details()
            assert not below.ready()  # stream 1, at the GOAWAY's last stream id, is still running
            release.set()
            below.join()
            assert results["below"] == b"1"
            conn.wait_until(lambda: conn.closed)  # the drained connection is closed by the client
        finally:
            stop_requests.set()
            ch.close()
        # No new stream on the connection after the GOAWAY; the retry is the second connection's only stream.
        assert not [fr for fr in conn.frames[seen:] if fr.kind == f.HEADERS]
        second = peer.connection(1)
        assert [(s.id, s.path) for s in second.streams.values()] == [(1, b"/pkg.Svc/Hold")]
        assert len(peer.connections) == 2


def test_max_concurrent_streams_is_respected() -> None:
    """Ten calls at once against MAX_CONCURRENT_STREAMS 3: at most three streams are open in h2's view (h2 raises
    TooManyStreamsError on a fourth), the others wait and all finish."""
    release = Event()
    open_now: list[int] = []
    most: list[int] = [0]

    def held(stream: PeerStream) -> None:
        open_now.append(stream.id)
        most[0] = max(most[0], len(open_now))
        release.wait()
        open_now.remove(stream.id)
        unary(stream)

    with running_peer({"/pkg.Svc/Held": held, **ROUTES}, settings={MAX_CONCURRENT_STREAMS: 3}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)
            calls = [gevent.spawn(ch.unary_unary("/pkg.Svc/Held"), b"%d" % i, timeout=LIMIT) for i in range(10)]
            conn.wait_until(lambda: len(open_now) == 3)
            assert not any(call.ready() for call in calls)
            release.set()
            assert [call.get() for call in calls] == [b"re:%d" % i for i in range(10)]
        finally:
            ch.close()
        assert most[0] == 3 and len(conn.events_of(ev.RequestReceived)) == 11


def test_a_response_before_our_end_stream_closes_our_side() -> None:
    """The server answers a client stream before the client half-closed (an early status): the client closes
    its side with RST_STREAM NO_ERROR, so the stream stops counting against the server's MAX_CONCURRENT_STREAMS.
    Before the fix it stayed half-closed in h2's view, and the fourth such call on a connection limited to three
    streams was a TooManyStreamsError (h2 closed the connection, the call failed UNAVAILABLE)."""

    def early(stream: PeerStream) -> None:
        assert stream.recv() == b"first"
        stream.send_headers()
        stream.send_message(b"early")
        stream.send_trailers(3, "rejected early")

    stop = Event()

    def requests() -> Iterator[bytes]:
        yield b"first"
        stop.wait()

    with running_peer({"/pkg.Svc/Early": early, **ROUTES}, settings={MAX_CONCURRENT_STREAMS: 3}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)
            for _ in range(6):
                with pytest.raises(grpc.RpcError) as error:
                    ch.stream_unary("/pkg.Svc/Early")(requests(), timeout=LIMIT)
                assert (error.value.code(), error.value.details()) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "rejected early",
                )
            bidi = ch.stream_stream("/pkg.Svc/Early")(requests(), timeout=LIMIT)
            assert next(bidi) == b"early"
            with pytest.raises(grpc.RpcError):
                next(bidi)
            assert bidi.code() is grpc.StatusCode.INVALID_ARGUMENT
            conn.wait_until(lambda: len(conn.events_of(ev.StreamReset)) == 7)
        finally:
            stop.set()
            ch.close()
        resets = conn.events_of(ev.StreamReset)
        assert [(r.stream_id, r.error_code) for r in resets] == [(3 + 2 * i, ErrorCodes.NO_ERROR) for i in range(7)]
        assert conn.h2.open_inbound_streams == 0


def test_goaway_while_a_unary_request_waits_for_window() -> None:
    """A unary request blocked on a 1,000-byte window when GOAWAY says the server never took its stream: the send
    stops, and the call is retried whole on a new connection."""
    with running_peer(ROUTES, settings={INITIAL_WINDOW_SIZE: 1_000}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)
            peer.grants = False
            call = gevent.spawn(ch.unary_unary("/pkg.Svc/Unary"), b"B" * 50_000, timeout=LIMIT)
            conn.wait_until(lambda: 3 in conn.streams)
            peer.grants = True
            conn.goaway(last_stream_id=1)
            assert call.get() == b"re:" + b"B" * 50_000
        finally:
            ch.close()
        assert conn.streams[3].data_bytes <= 1_000
        second = peer.connection(1)
        assert [e.stream_id for e in second.events_of(ev.RequestReceived)] == [1]
        assert second.streams[1].data_bytes == 50_005


# 5. Cancellation and deadlines, resets both ways


def wait_for_reset(stream: PeerStream) -> None:
    stream.conn.wait_until(lambda: stream.reset_code is not None, timeout=LIMIT)


def never(stream: PeerStream) -> None:
    wait_for_reset(stream)


def test_client_cancel_and_deadline_reach_h2_as_rst_stream_cancel() -> None:
    def forever(stream: PeerStream) -> None:
        stream.send_headers()
        stream.send_message(b"first")
        wait_for_reset(stream)

    def bidi_forever(stream: PeerStream) -> None:
        stream.send_headers()
        stream.send_message(b"hello")
        wait_for_reset(stream)

    routes = {"/pkg.Svc/Forever": forever, "/pkg.Svc/Never": never, "/pkg.Svc/BidiForever": bidi_forever}
    with running_peer(routes) as peer:
        ch = channel(peer.address)
        stop = Event()

        def requests() -> Iterator[bytes]:
            yield b"r"
            stop.wait()

        try:
            call = ch.unary_stream("/pkg.Svc/Forever")(b"x")
            assert next(call) == b"first"
            assert call.cancel()
            assert call.code() is grpc.StatusCode.CANCELLED
            with pytest.raises(grpc.RpcError) as deadline:
                ch.unary_unary("/pkg.Svc/Never")(b"y", timeout=0.3)
            assert deadline.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            bidi = ch.stream_stream("/pkg.Svc/BidiForever")(requests())
            assert next(bidi) == b"hello"
            bidi.cancel()
            assert bidi.code() is grpc.StatusCode.CANCELLED
            conn = peer.connection(0)
            conn.wait_until(lambda: len(conn.events_of(ev.StreamReset)) == 3)
        finally:
            stop.set()
            ch.close()
        resets = conn.events_of(ev.StreamReset)
        assert [(r.stream_id, r.error_code, r.remote_reset) for r in resets] == [
            (1, ErrorCodes.CANCEL, True),
            (3, ErrorCodes.CANCEL, True),
            (5, ErrorCodes.CANCEL, True),
        ]
        timeout = dict(conn.events_of(ev.RequestReceived)[1].headers)[b"grpc-timeout"]
        assert re.fullmatch(rb"\d{1,3}m", timeout) and 0 < int(timeout[:-1]) <= 300


def test_deadline_while_waiting_for_window() -> None:
    """The peer stops granting window (a 1,000-byte stream window): a unary and a server-streaming call whose
    request does not fit end DEADLINE_EXCEEDED at their deadline, with RST_STREAM CANCEL. They used to wait for
    window with no deadline at all (the call's timer was armed only once the request was out): a hang."""
    with running_peer({"/pkg.Svc/Never": never, **ROUTES}, settings={INITIAL_WINDOW_SIZE: 1_000}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)
            peer.grants = False
            with gevent.Timeout(10, AssertionError("the deadline was not applied while waiting for window")):
                with pytest.raises(grpc.RpcError) as unary_error:
                    ch.unary_unary("/pkg.Svc/Never")(b"u" * 100_000, timeout=0.3)
                call = ch.unary_stream("/pkg.Svc/Never")(b"s" * 100_000, timeout=0.3)
                with pytest.raises(grpc.RpcError) as stream_error:
                    list(call)
            assert unary_error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert stream_error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            conn.wait_until(lambda: len(conn.events_of(ev.StreamReset)) == 2)
        finally:
            ch.close()
        resets = conn.events_of(ev.StreamReset)
        assert [(r.stream_id, r.error_code) for r in resets] == [(3, ErrorCodes.CANCEL), (5, ErrorCodes.CANCEL)]
        for stream_id in (3, 5):
            assert (
                sum(e.flow_controlled_length for e in stream_events(conn, stream_id) if isinstance(e, ev.DataReceived))
                <= 1_000
            )


def test_a_wait_for_window_counts_toward_the_deadline() -> None:
    """The peer withholds window for 3 s, then grants it and never answers: a call with a 4 s deadline ends
    DEADLINE_EXCEEDED 4 s after it started. Its response timer used to be armed, after the wait, with the time
    that had remained before it (a 7 s call)."""
    with running_peer({"/pkg.Svc/Never": never, **ROUTES}, settings={INITIAL_WINDOW_SIZE: 1_000}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)
            peer.grants = False

            def grant_later() -> None:
                gevent.sleep(3.0)
                peer.grants = True
                conn._grant_window()
                conn.flush()

            granter = gevent.spawn(grant_later)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as error:
                ch.unary_unary("/pkg.Svc/Never")(b"u" * 20_000, timeout=4.0)
            elapsed = time.monotonic() - started
            granter.get(timeout=10)
        finally:
            ch.close()
        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert conn.streams[3].data_bytes == 20_005  # the request went out whole once the window came
        assert 4.0 <= elapsed < 6.0, elapsed  # a timer never fires early; a stretched deadline would take 7 s


def test_deadline_while_waiting_for_a_stream_slot() -> None:
    """MAX_CONCURRENT_STREAMS 1 and that stream held: a call queued behind it ends DEADLINE_EXCEEDED at its own
    deadline, never sent. It used to wait for the slot whatever its deadline."""
    release = Event()

    def held(stream: PeerStream) -> None:
        release.wait()
        unary(stream)

    with running_peer({"/pkg.Svc/Held": held, **ROUTES}, settings={MAX_CONCURRENT_STREAMS: 1}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Unary")(b"warm", timeout=10) == b"re:warm"
            conn = peer.connection(0)
            conn.wait_until(lambda: conn.acks >= 2)
            first = gevent.spawn(ch.unary_unary("/pkg.Svc/Held"), b"first", timeout=LIMIT)
            conn.wait_until(lambda: 3 in conn.streams)
            with gevent.Timeout(10, AssertionError("the deadline was not applied while waiting for a stream slot")):
                with pytest.raises(grpc.RpcError) as unary_error:
                    ch.unary_unary("/pkg.Svc/Unary")(b"queued", timeout=0.3)
                call = ch.unary_stream("/pkg.Svc/Unary")(b"queued", timeout=0.3)
                with pytest.raises(grpc.RpcError) as stream_error:
                    list(call)
            assert unary_error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert stream_error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert not first.ready()
            release.set()
            assert first.get() == b"re:first"
            assert ch.unary_unary("/pkg.Svc/Unary")(b"after", timeout=10) == b"re:after"  # the slot is free again
        finally:
            ch.close()
        assert [e.stream_id for e in conn.events_of(ev.RequestReceived)] == [1, 3, 5]  # the queued calls never sent
        assert not conn.events_of(ev.StreamReset)


@pytest.mark.parametrize(
    ("kind", "code", "status", "details"),
    [
        ("server_stream", ErrorCodes.CANCEL, grpc.StatusCode.CANCELLED, "Received RST_STREAM with error code 8"),
        ("server_stream", ErrorCodes.ENHANCE_YOUR_CALM, grpc.StatusCode.RESOURCE_EXHAUSTED, "error code 11"),
        ("server_stream", ErrorCodes.INTERNAL_ERROR, grpc.StatusCode.INTERNAL, "error code 2"),
        ("bidi", ErrorCodes.REFUSED_STREAM, grpc.StatusCode.UNAVAILABLE, "Stream refused by server"),
        ("bidi", ErrorCodes.PROTOCOL_ERROR, grpc.StatusCode.INTERNAL, "error code 1"),
        ("unary", ErrorCodes.REFUSED_STREAM, grpc.StatusCode.UNAVAILABLE, "Stream refused by server"),
    ],
)
def test_peer_reset_maps_to_grpcio_status(kind: str, code: int, status: grpc.StatusCode, details: str) -> None:
    seen: list[int] = []

    def reset(stream: PeerStream) -> None:
        seen.append(stream.id)
        if kind == "unary" and len(seen) > 5:  # refusing forever would only test the deadline
            unary(stream)
            return
        if kind != "unary":  # a response under way, then the reset
            stream.send_headers()
            stream.send_message(b"partial")
        stream.reset(code)

    with running_peer({"/pkg.Svc/Reset": reset}) as peer:
        ch = channel(peer.address)
        try:
            with pytest.raises(grpc.RpcError) as error:
                if kind == "unary":
                    ch.unary_unary("/pkg.Svc/Reset")(b"u", timeout=10)
                elif kind == "server_stream":
                    assert list(ch.unary_stream("/pkg.Svc/Reset")(b"s", timeout=10)) == [b"partial"]
                else:
                    assert list(ch.stream_stream("/pkg.Svc/Reset")(iter([b"b"]), timeout=10)) == [b"partial"]
        finally:
            ch.close()
        assert error.value.code() is status
        assert details in error.value.details()
    # A refused unary call is retried once (as grpcio does, gRFC A6), on the same connection; refused again, it
    # fails UNAVAILABLE.
    assert seen == ([1, 3] if kind == "unary" else [1])


def test_refused_unary_call_succeeds_on_its_retry() -> None:
    calls: list[int] = []

    def refuse_once(stream: PeerStream) -> None:
        calls.append(stream.id)
        if len(calls) == 1:
            stream.reset(ErrorCodes.REFUSED_STREAM)
        else:
            unary(stream)

    with running_peer({"/pkg.Svc/Once": refuse_once}) as peer:
        ch = channel(peer.address)
        try:
            assert ch.unary_unary("/pkg.Svc/Once")(b"again", timeout=10) == b"re:again"
        finally:
            ch.close()
    assert calls == [1, 3]


@pytest.mark.parametrize("kind", ["unary", "server_stream"])
def test_refused_after_response_headers_is_not_retried(kind: str) -> None:
    """REFUSED_STREAM after the server's response headers (and, streaming, a message the caller has): the call is
    committed, so it fails UNAVAILABLE as grpcio's does, without a second attempt. It used to be retried, and the
    caller of a server stream got the messages of two attempts."""

    def late_refusal(stream: PeerStream) -> None:
        stream.recv_all()
        stream.send_headers()
        stream.send_message(b"partial-%d" % stream.id)
        stream.reset(ErrorCodes.REFUSED_STREAM)

    with running_peer({"/pkg.Svc/Late": late_refusal}) as peer:
        ch = channel(peer.address)
        got: list[bytes] = []
        try:
            with pytest.raises(grpc.RpcError) as error:
                if kind == "unary":
                    ch.unary_unary("/pkg.Svc/Late")(b"u", timeout=10)
                else:
                    for message in ch.unary_stream("/pkg.Svc/Late")(b"s", timeout=10):
                        got.append(message)
        finally:
            ch.close()
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        assert got == ([b"partial-1"] if kind == "server_stream" else [])
        assert len(peer.connection(0).events_of(ev.RequestReceived)) == 1


# 6. frames.py against hyperframe, h2's frame layer


def parse(data: bytes) -> list[Any]:
    """Frames as hyperframe reads them (each length checked against the header)."""
    out, view = [], memoryview(data)
    while view:
        frame, length = hf.Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        assert len(view[9 : 9 + length]) == length
        out.append(frame)
        view = view[9 + length :]
    return out


def flag_bits(frame: hf.Frame) -> int:
    return sum(flag.bit for flag in frame.defined_flags if flag.name in frame.flags)


@pytest.mark.parametrize("size", [0, 1, 16_383, 16_384, 16_385, 50_000])
@pytest.mark.parametrize("end_stream", [False, True])
def test_data_frames_parse_as_hyperframe_reads_them(size: int, end_stream: bool) -> None:
    data = bytes(i % 251 for i in range(size))
    parsed = parse(f.data_frames(7, data, end_stream, 16_384))
    assert all(isinstance(p, hf.DataFrame) and p.stream_id == 7 for p in parsed)
    assert b"".join(p.data for p in parsed) == data
    assert all(len(p.data) <= 16_384 for p in parsed) and len(parsed) == max(1, -(-size // 16_384))
    assert [("END_STREAM" in p.flags) for p in parsed] == [False] * (len(parsed) - 1) + [end_stream]
    assert all("PADDED" not in p.flags for p in parsed)


@pytest.mark.parametrize("value_size", [10, 16_000, 40_000])
@pytest.mark.parametrize("end_stream", [False, True])
def test_headers_frames_with_continuation_parse_as_hyperframe_reads_them(value_size: int, end_stream: bool) -> None:
    headers = [(b":status", b"200"), (b"x-v", bytes(65 + i % 26 for i in range(value_size)))]
    block = Encoder().encode(headers, huffman=False)
    parsed = parse(f.headers_frames(5, block, end_stream, 16_384))
    assert isinstance(parsed[0], hf.HeadersFrame)
    assert all(isinstance(p, hf.ContinuationFrame) for p in parsed[1:])
    assert len(parsed) == -(-len(block) // 16_384)
    assert all(p.stream_id == 5 for p in parsed)
    assert ("END_STREAM" in parsed[0].flags) is end_stream
    assert [("END_HEADERS" in p.flags) for p in parsed] == [False] * (len(parsed) - 1) + [True]
    assert b"".join(p.data for p in parsed) == block
    assert Decoder().decode(b"".join(p.data for p in parsed), raw=True) == headers


def test_control_frames_parse_as_hyperframe_reads_them() -> None:
    settings = {f.SETTINGS_ENABLE_PUSH: 0, f.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 30, f.SETTINGS_MAX_FRAME_SIZE: 1 << 20}
    (frame,) = parse(f.settings_frame(settings))
    assert isinstance(frame, hf.SettingsFrame) and frame.settings == settings and not frame.flags
    (frame,) = parse(f.settings_frame(ack=True))
    assert isinstance(frame, hf.SettingsFrame) and frame.flags == {"ACK"} and frame.settings == {}
    for stream_id, increment in ((0, 1), (3, (1 << 31) - 1), (9, 65_535)):
        (frame,) = parse(f.window_update_frame(stream_id, increment))
        assert isinstance(frame, hf.WindowUpdateFrame)
        assert (frame.stream_id, frame.window_increment) == (stream_id, increment)
    for code in (f.CANCEL, f.REFUSED_STREAM, f.PROTOCOL_ERROR):
        (frame,) = parse(f.rst_stream_frame(11, code))
        assert isinstance(frame, hf.RstStreamFrame) and (frame.stream_id, frame.error_code) == (11, code)
    for ack in (False, True):
        (frame,) = parse(f.ping_frame(b"opaque!!", ack=ack))
        assert isinstance(frame, hf.PingFrame) and frame.opaque_data == b"opaque!!"
        assert frame.flags == ({"ACK"} if ack else set()) and frame.stream_id == 0
    for last, code, debug in ((0, f.NO_ERROR, b""), ((1 << 31) - 1, f.ENHANCE_YOUR_CALM, b"too many pings")):
        (frame,) = parse(f.goaway_frame(last, code, debug))
        assert isinstance(frame, hf.GoAwayFrame)
        assert (frame.last_stream_id, frame.error_code, frame.additional_data) == (last, code, debug)
    assert f.grpc_message(b"abc") == struct.pack(">BL", 0, 3) + b"abc"
    assert f.grpc_message(b"abc", compressed=True)[:1] == b"\x01"


def hyperframe_frames() -> list[Any]:
    """Every frame type a server may send, with padding and priority where the type allows."""
    data = hf.DataFrame(1, data=b"payload" * 100, flags=["END_STREAM", "PADDED"])
    data.pad_length = 17
    empty = hf.DataFrame(3, data=b"", flags=["PADDED"])
    empty.pad_length = 0
    block = Encoder().encode([(b":status", b"200"), (b"content-type", b"application/grpc")])
    headers = hf.HeadersFrame(1, data=block[:5], flags=["PADDED", "PRIORITY"])
    headers.pad_length = 9
    headers.depends_on, headers.stream_weight, headers.exclusive = 3, 200, True
    continuation = hf.ContinuationFrame(1, data=block[5:], flags=["END_HEADERS"])
    settings = hf.SettingsFrame(0, settings={hf.SettingsFrame.MAX_FRAME_SIZE: 1 << 20, 0x4: 12345})
    ack = hf.SettingsFrame(0, flags=["ACK"])
    ping = hf.PingFrame(0, opaque_data=b"\x01\x02\x03\x04\x05\x06\x07\x08")
    goaway = hf.GoAwayFrame(0, last_stream_id=9, error_code=2, additional_data=b"bye")
    window = hf.WindowUpdateFrame(5, window_increment=(1 << 31) - 1)
    rst = hf.RstStreamFrame(5, error_code=8)
    priority = hf.PriorityFrame(7, depends_on=1, stream_weight=16)
    big = hf.DataFrame(9, data=bytes(16_384), flags=["END_STREAM"])
    return [data, empty, headers, continuation, settings, ack, ping, goaway, window, rst, priority, big]


@pytest.mark.parametrize("chunk", [1, 7, 9, 1000, 1 << 20])
def test_frame_reader_parses_hyperframe_frames(chunk: int) -> None:
    sent = hyperframe_frames()
    wire = b"".join(frame.serialize() for frame in sent)
    reader = f.FrameReader(max_frame=16_384)
    got: list[tuple[int, int, int, bytes]] = []
    for start in range(0, len(wire), chunk):
        got.extend(reader.feed(wire[start : start + chunk]))
    assert [(kind, flags, stream_id) for kind, flags, stream_id, _ in got] == [
        (frame.type, flag_bits(frame), frame.stream_id) for frame in sent
    ]
    assert [payload for *_, payload in got] == [frame.serialize_body() for frame in sent]
    by_type = {frame.type: (frame, payload) for frame, (*_, payload) in zip(sent, got, strict=True)}
    (data, empty, headers, continuation, settings, *_rest) = got
    assert f.strip_padding(data[1], data[3]) == sent[0].data
    assert f.strip_padding(empty[1], empty[3]) == b""
    assert f.strip_padding(headers[1], headers[3], priority=True) + continuation[3] == sent[2].data + sent[3].data
    assert f.parse_settings(settings[3]) == sent[4].settings
    assert f.parse_goaway(by_type[f.GOAWAY][1]) == (9, 2, b"bye")
    assert f.parse_u32(by_type[f.WINDOW_UPDATE][1]) == (1 << 31) - 1
    assert f.parse_u32(by_type[f.RST_STREAM][1]) == 8


def test_frame_reader_refuses_a_frame_over_its_maximum() -> None:
    reader = f.FrameReader(max_frame=16_384)
    with pytest.raises(f.FrameError):
        list(reader.feed(hf.DataFrame(1, data=bytes(16_385)).serialize()))
