"""One HTTP/2 connection of the native transport: a gevent socket, a reader greenlet, many streams.

Callers send from their own greenlet (one ``sendall`` per unary call: HEADERS and DATA together) under a send
lock that also orders new stream ids; the reader greenlet parses frames, answers SETTINGS and PING, applies
WINDOW_UPDATE and GOAWAY, and hands headers, data and resets to the streams, waking their callers through
the hub. Both directions are flow-controlled: sends wait for window, and the large receive window we announce
is topped up with WINDOW_UPDATE once half of it is used.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import gevent
from gevent.hub import Waiter, get_hub
from gevent.lock import Semaphore

from locust_ext.grpc.native import frames as f
from locust_ext.grpc.native.headers import RawHeaders, ResponseDecoder

__all__ = ["Connection", "ConnectionGone", "Stream"]

#: Largest possible flow-control window (RFC 9113 6.9.1).
MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65_535
RECV_SIZE = 256 * 1024


class ConnectionGone(Exception):
    """The connection cannot take new streams (closed, broken, or draining after GOAWAY)."""


class Stream:
    """One call's HTTP/2 stream as the reader fills it: headers, data bytes, trailers, or why it ended."""

    __slots__ = (
        "data",
        "error",
        "expired",
        "headers",
        "id",
        "local_closed",
        "received",
        "refused",
        "remote_closed",
        "reset_code",
        "send_window",
        "trailers",
        "waiter",
        "wake_on_data",
    )

    def __init__(self, stream_id: int, send_window: int, wake_on_data: bool) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.wake_on_data = wake_on_data
        self.headers: RawHeaders | None = None
        self.trailers: RawHeaders | None = None
        self.data = bytearray()
        self.received = 0
        #: Our END_STREAM is built (sent, or being sent under the send lock).
        self.local_closed = False
        self.remote_closed = False
        self.reset_code: int | None = None
        self.error: str | None = None
        self.expired = False
        #: The server never processed it (above a GOAWAY's last stream id, or REFUSED_STREAM): safe to retry.
        self.refused = False
        self.waiter: Waiter | None = None

    @property
    def done(self) -> bool:
        """Nothing more will arrive: the server ended it, reset it, the connection failed, or the deadline hit."""
        return self.remote_closed or self.reset_code is not None or self.error is not None or self.expired

    def wait(self) -> None:
        """Block this greenlet until the reader (or the deadline timer) has something new for it."""
        waiter = self.waiter = Waiter()
        waiter.get()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            get_hub().loop.run_callback(waiter.switch, None)

    def expire(self) -> None:
        """Deadline timer callback (runs in the hub)."""
        self.expired = True
        self.wake()


class Connection:
    """An HTTP/2 client connection over a connected (possibly TLS) gevent socket."""

    def __init__(self, sock: Any, *, receive_window: int = 1 << 30) -> None:
        self.sock = sock
        self.decoder = ResponseDecoder()
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.send_lock = Semaphore()
        self.send_window = DEFAULT_WINDOW
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16_384
        self.peer_max_streams = MAX_WINDOW
        self.goaway_last: int | None = None
        self.closed_reason: str | None = None
        self._receive_window = receive_window
        self._receive_unacked = 0
        self._window_waiters: list[Waiter] = []
        self._header_parts: list[bytes] = []
        self._header_flags = 0
        self._header_stream = 0
        self._resets: list[bytes] = []
        preface = f.CONNECTION_PREFACE + f.settings_frame(
            {f.SETTINGS_ENABLE_PUSH: 0, f.SETTINGS_INITIAL_WINDOW_SIZE: receive_window},
        )
        if receive_window > DEFAULT_WINDOW:
            preface += f.window_update_frame(0, receive_window - DEFAULT_WINDOW)
        sock.sendall(preface)
        self.reader = gevent.spawn(self._read_loop)

    @property
    def usable(self) -> bool:
        """Can take a new stream: open, no GOAWAY seen, stream ids left."""
        return self.closed_reason is None and self.goaway_last is None and self.next_id < MAX_WINDOW

    # Sending (caller greenlets)

    def _send(self, data: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(data)

    def _send_control(self, data: bytes) -> None:
        """Send a small control frame (RST_STREAM, GOAWAY) from any context: from the hub (e.g. a greenlet's
        link callback closing a user's channel) it goes from a greenlet of its own, since the hub cannot block."""
        if gevent.getcurrent() is get_hub():
            gevent.spawn(self._send_quietly, data)
        else:
            self._send_quietly(data)

    def _send_quietly(self, data: bytes) -> None:
        if self.closed_reason is not None:
            return
        try:
            self._send(data)
        except OSError as exc:
            self._fail(f"Socket closed: {exc.strerror or exc}")

    def open_stream(
        self, block: bytes, message: bytes | None, end_stream: bool, wake_on_data: bool, deadline: float | None = None
    ) -> Stream:
        """Start a stream with header ``block`` and, when given, its first DATA (one send if the window allows).

        A stream that has to wait, for a free slot under the server's MAX_CONCURRENT_STREAMS or for flow-control
        window, waits at most until ``deadline`` (the call's, on ``time.monotonic``): it then comes back expired,
        and the caller reports DEADLINE_EXCEEDED (an expired stream that never got an id was never sent)."""
        stream = Stream(0, 0, wake_on_data)
        timer = None
        try:
            while len(self.streams) >= self.peer_max_streams and self.usable:
                if deadline is not None and timer is None:
                    timer = self._expire_at(stream, deadline)
                if stream.expired:
                    return stream
                self._wait_window()
            with self.send_lock:
                if not self.usable:
                    raise ConnectionGone(self.closed_reason or "connection draining after GOAWAY")
                stream_id = stream.id = self.next_id
                self.next_id += 2
                stream.send_window = self.peer_initial_window
                self.streams[stream_id] = stream
                max_frame = self.peer_max_frame
                if message is None:
                    out = f.headers_frames(stream_id, block, end_stream, max_frame)
                    stream.local_closed = end_stream
                    message_left: bytes | None = None
                else:
                    out = f.headers_frames(stream_id, block, False, max_frame)
                    size = len(message)
                    if size <= self.send_window and size <= stream.send_window:
                        out += f.data_frames(stream_id, message, end_stream, max_frame)
                        stream.local_closed = end_stream
                        self.send_window -= size
                        stream.send_window -= size
                        message_left = None
                    else:
                        message_left = message
                try:
                    self.sock.sendall(out)
                except OSError as exc:
                    self._fail(f"Socket closed: {exc.strerror or exc}")
                    raise ConnectionGone(self.closed_reason) from None
            if message_left is not None:
                if deadline is not None and timer is None:
                    timer = self._expire_at(stream, deadline)
                self.send_data(stream, message_left, end_stream)
            return stream
        finally:
            if timer is not None:
                timer.close()

    def _expire_at(self, stream: Stream, deadline: float) -> Any:
        """A hub timer expiring ``stream`` at ``deadline`` and waking whoever waits for window or a stream slot."""
        timer = get_hub().loop.timer(max(0.0, deadline - time.monotonic()))
        timer.start(self._expire_waiting, stream)
        return timer

    def _expire_waiting(self, stream: Stream) -> None:
        stream.expire()
        self._wake_window_waiters()

    def send_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        """DATA for ``stream``, waiting for flow-control window as needed; gives up quietly if the stream ends."""
        view = memoryview(data)
        while True:
            if stream.done or self.closed_reason is not None:
                return
            with self.send_lock:
                size = min(len(view), self.send_window, stream.send_window)
                if size > 0 or not view:
                    chunk = bytes(view[:size])
                    last = size == len(view)
                    out = f.data_frames(stream.id, chunk, end_stream and last, self.peer_max_frame)
                    stream.local_closed = end_stream and last
                    self.send_window -= size
                    stream.send_window -= size
                    try:
                        self.sock.sendall(out)
                    except OSError as exc:
                        self._fail(f"Socket closed: {exc.strerror or exc}")
                        return
                    if last:
                        return
                    view = view[size:]
                    continue
            self._wait_window()

    def _wait_window(self) -> None:
        waiter = Waiter()
        self._window_waiters.append(waiter)
        waiter.get()

    def _wake_window_waiters(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        loop = get_hub().loop
        for waiter in waiters:
            loop.run_callback(waiter.switch, None)

    def reset(self, stream: Stream, error_code: int = f.CANCEL) -> None:
        """Forget ``stream`` and tell the server with RST_STREAM (unless it already ended)."""
        if self.streams.pop(stream.id, None) is None:
            return
        self._wake_window_waiters()
        if self.closed_reason is None and not stream.remote_closed and stream.reset_code is None:
            self._send_control(f.rst_stream_frame(stream.id, error_code))
        self._close_if_drained()

    def close(self, reason: str = "Channel closed!") -> None:
        """Close the socket now (GOAWAY first when that cannot block); streams still open end with ``reason``."""
        if self.closed_reason is None and gevent.getcurrent() is not get_hub() and not self.send_lock.locked():
            with contextlib.suppress(OSError), gevent.Timeout(1.0, False):
                self._send(f.goaway_frame(0))
        self._fail(reason)

    # Receiving (the reader greenlet)

    def _read_loop(self) -> None:
        reader = f.FrameReader(max_frame=16_384)
        recv = self.sock.recv
        try:
            while True:
                data = recv(RECV_SIZE)
                if not data:
                    self._fail("Socket closed")
                    return
                replies = []
                for kind, flags, stream_id, payload in reader.feed(data):
                    reply = self._on_frame(kind, flags, stream_id, payload)
                    if reply:
                        replies.append(reply)
                if self._resets:
                    replies += self._resets
                    self._resets = []
                if self._receive_unacked >= self._receive_window >> 1:
                    replies.append(f.window_update_frame(0, self._receive_unacked))
                    self._receive_unacked = 0
                if replies:
                    self._send(b"".join(replies))
                if self.goaway_last is not None:
                    self._close_if_drained()
        except OSError as exc:
            self._fail(f"Socket closed: {exc.strerror or exc}")
        except f.FrameError as exc:
            self._fail(f"protocol error: {exc}")
        except Exception as exc:  # a bug or a malformed header block: fail the calls rather than hang them
            self._fail(f"{type(exc).__name__}: {exc}")

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> bytes | None:
        if self._header_parts and kind != f.CONTINUATION:
            raise f.FrameError("header block interrupted by another frame")
        if kind == f.DATA:
            return self._on_data(flags, stream_id, payload)
        if kind == f.HEADERS:
            self._header_stream, self._header_flags = stream_id, flags
            self._header_parts = [f.strip_padding(flags, payload, priority=True)]
            if flags & f.END_HEADERS:
                self._on_header_block()
        elif kind == f.CONTINUATION:
            if not self._header_parts or stream_id != self._header_stream:
                raise f.FrameError("unexpected CONTINUATION")
            self._header_parts.append(payload)
            if flags & f.END_HEADERS:
                self._on_header_block()
        elif kind == f.RST_STREAM:
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                stream.reset_code = f.parse_u32(payload)
                # Safe to retry only if nothing came back: once response headers arrived the server has taken the
                # call (gRFC A6 commits it), and a retry would hand the caller a second response stream.
                stream.refused = stream.reset_code == f.REFUSED_STREAM and stream.headers is None
                stream.wake()
                self._wake_window_waiters()
        elif kind == f.SETTINGS:
            if flags & f.ACK:
                return None
            settings = f.parse_settings(payload)
            # The ACK goes out before the new values apply: the peer enforces a larger MAX_FRAME_SIZE or window only
            # once it has our ACK, so no frame built with them may reach it first (grpc-core closes the connection).
            self._send(f.settings_frame(ack=True))
            self._apply_settings(settings)
        elif kind == f.PING:
            if not flags & f.ACK:
                return f.ping_frame(payload, ack=True)
        elif kind == f.GOAWAY:
            self._on_goaway(*f.parse_goaway(payload))
        elif kind == f.WINDOW_UPDATE:
            increment = f.parse_u32(payload) & 0x7FFFFFFF
            if stream_id == 0:
                self.send_window += increment
            else:
                stream = self.streams.get(stream_id)
                if stream is not None:
                    stream.send_window += increment
            self._wake_window_waiters()
        elif kind == f.PUSH_PROMISE:
            raise f.FrameError("PUSH_PROMISE received although push is disabled")
        return None  # PRIORITY and unknown frame types are ignored (RFC 9113 4.1, 5.5)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> bytes | None:
        size = len(payload)
        self._receive_unacked += size
        stream = self.streams.get(stream_id)
        if stream is None:
            return None
        stream.data += f.strip_padding(flags, payload) if flags & f.PADDED else payload
        stream.received += size
        reply = None
        if flags & f.END_STREAM:
            self._finish(stream)
        else:
            if stream.received >= self._receive_window >> 1:
                reply = f.window_update_frame(stream_id, stream.received)
                stream.received = 0
            if stream.wake_on_data:
                stream.wake()
        return reply

    def _on_header_block(self) -> None:
        parts, self._header_parts = self._header_parts, []
        headers = self.decoder.decode(parts[0] if len(parts) == 1 else b"".join(parts))
        stream = self.streams.get(self._header_stream)
        if stream is None:
            return  # decoded all the same: the HPACK table must follow every block
        end = self._header_flags & f.END_STREAM
        if stream.headers is None and not end:
            stream.headers = headers
            if stream.wake_on_data:  # a unary caller waits for the end only
                stream.wake()
        else:
            stream.trailers = headers
        if end:
            self._finish(stream)

    def _finish(self, stream: Stream) -> None:
        stream.remote_closed = True
        self.streams.pop(stream.id, None)
        if not stream.local_closed:
            # The server answered before our END_STREAM (e.g. an early status on a client stream): close our
            # side with RST_STREAM NO_ERROR, as grpc-go does. Left half-closed it would still count against the
            # server's MAX_CONCURRENT_STREAMS, and the server would keep it, though we no longer do.
            stream.local_closed = True
            self._resets.append(f.rst_stream_frame(stream.id, f.NO_ERROR))
        stream.wake()
        if self._window_waiters:
            self._wake_window_waiters()

    def _apply_settings(self, settings: dict[int, int]) -> None:
        window = settings.get(f.SETTINGS_INITIAL_WINDOW_SIZE)
        if window is not None:
            delta = window - self.peer_initial_window
            self.peer_initial_window = window
            for stream in self.streams.values():
                stream.send_window += delta
        self.peer_max_frame = settings.get(f.SETTINGS_MAX_FRAME_SIZE, self.peer_max_frame)
        self.peer_max_streams = settings.get(f.SETTINGS_MAX_CONCURRENT_STREAMS, self.peer_max_streams)
        self._wake_window_waiters()

    def _on_goaway(self, last_stream_id: int, error_code: int, debug: bytes) -> None:
        self.goaway_last = last_stream_id
        reason = f"GOAWAY received (error code {error_code}{': ' + debug.decode(errors='replace') if debug else ''})"
        for stream_id in [sid for sid in self.streams if sid > last_stream_id]:
            stream = self.streams.pop(stream_id)
            stream.error = reason
            stream.refused = True
            stream.wake()
        self._wake_window_waiters()

    def _close_if_drained(self) -> None:
        if self.goaway_last is not None and not self.streams and self.closed_reason is None:
            self._fail("connection drained after GOAWAY")

    def _fail(self, reason: str) -> None:
        """Close for good: every open stream ends with ``reason`` (UNAVAILABLE to its caller)."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.error = reason
            stream.wake()
        self._wake_window_waiters()
        with contextlib.suppress(OSError):
            self.sock.close()
        if gevent.getcurrent() is not self.reader:
            self.reader.kill(block=False)
