"""Call objects of the native transport, behaving like grpcio's where callers (and the suite's recording) look.

:class:`FinishedCall` is a completed unary call: what ``with_call`` returns beside the response and what a
failed call raises (a ``grpc.RpcError`` that is also a ``grpc.Call``). :class:`StreamCall` is a call still
running: the response iterator of the streaming kinds (raised as the error itself when it fails, as grpcio's
rendezvous is), and the engine of stream-unary calls. Its request iterator, if any, is consumed by a greenlet
of its own, so a bidi request generator may wait for replies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import gevent
import grpc
from gevent.hub import get_hub

from locust_ext.grpc.native.connection import Connection, ConnectionGone, Stream
from locust_ext.grpc.native.headers import Metadata, RawHeaders, metadata_from_headers
from locust_ext.grpc.native.status import MessageError, header_value, reset_status, take_message, trailer_status

if TYPE_CHECKING:
    from locust_ext.grpc.native.channel import NativeChannel

__all__ = ["CHANNEL_CLOSED", "FinishedCall", "StreamCall", "stream_outcome"]

CHANNEL_CLOSED = "Channel closed!"
_OK = grpc.StatusCode.OK


def stream_outcome(stream: Stream, conn: Connection | None) -> tuple[grpc.StatusCode, str]:
    """Status of a stream that is done (remote end first: a complete answer wins over a late deadline)."""
    if stream.remote_closed:
        return trailer_status(stream.headers, stream.trailers)
    if stream.reset_code is not None:
        return reset_status(stream.reset_code)
    if stream.error is not None:
        if stream.error == CHANNEL_CLOSED:
            return grpc.StatusCode.CANCELLED, CHANNEL_CLOSED
        return grpc.StatusCode.UNAVAILABLE, stream.error
    if conn is not None:
        conn.reset(stream)
    return grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"


class FinishedCall(grpc.RpcError, grpc.Call):
    """A call that has ended: its status, details and metadata (converted when asked for)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        headers: RawHeaders | None = None,
        trailers: RawHeaders | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details
        self._headers = headers
        self._trailers = trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> Metadata:
        return metadata_from_headers(self._headers or [])

    def trailing_metadata(self) -> Metadata:
        return metadata_from_headers(self._trailers or [])

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def debug_error_string(self) -> str:
        return f"{self._code.name}: {self._details}"

    def __str__(self) -> str:
        return f"<call code={self._code.name} details={self._details!r}>"


class StreamCall(grpc.RpcError, grpc.Call):
    """A running call: iterate it for responses; ``cancel()`` sends RST_STREAM; status once it has ended."""

    def __init__(
        self,
        channel: NativeChannel,
        deserializer: Callable[[bytes], Any] | None,
        timeout: float | None,
    ) -> None:
        super().__init__()
        self._channel = channel
        self._deserialize = deserializer
        self._deadline = time.monotonic() + timeout if timeout is not None else None
        self._timeout = timeout
        self._conn: Connection | None = None
        self._stream: Stream | None = None
        self._timer: Any = None
        self._sender: gevent.Greenlet | None = None
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._local_end = False
        self._pos = 0
        self._callbacks: list[Callable[[], None]] = []
        #: How to open the stream again if the server never saw it (a unary request only: nothing consumed).
        self._retry: tuple[bytes, bytes, bool] | None = None

    # Starting

    def start(self, block: bytes, message: bytes | None, end_stream: bool, wake_on_data: bool) -> None:
        """Open the stream; a connection failure or an elapsed deadline ends the call here (raised on use)."""
        if self._timeout is not None and self._timeout <= 0:
            self._end(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            return
        if message is not None and end_stream:
            self._retry = (block, message, wake_on_data)
        self._open(block, message, end_stream, wake_on_data)
        self._channel.track(self)

    def _open(self, block: bytes, message: bytes | None, end_stream: bool, wake_on_data: bool) -> None:
        deadline = self._deadline
        try:
            self._conn, self._stream = self._channel.open_stream(block, message, end_stream, wake_on_data, deadline)
        except ConnectionGone as exc:
            self._end(grpc.StatusCode.UNAVAILABLE, str(exc))
            return
        if deadline is not None:  # armed now: waiting for a slot or window counted toward the deadline
            self._timer = get_hub().loop.timer(max(0.0, deadline - time.monotonic()))
            self._timer.start(self._stream.expire)

    def send_requests(self, requests: Iterable[Any], serializer: Callable[[Any], bytes] | None) -> None:
        """Consume ``requests`` in a greenlet of its own, sending each as it comes, then half-close."""
        if self._code is None:
            self._sender = gevent.spawn(self._send_loop, iter(requests), serializer)

    def _send_loop(self, requests: Any, serializer: Callable[[Any], bytes] | None) -> None:
        conn, stream = self._conn, self._stream
        assert conn is not None and stream is not None
        while True:
            try:
                request = next(requests)
            except StopIteration:
                break
            except Exception:
                self._abort(grpc.StatusCode.UNKNOWN, "Exception iterating requests!")
                return
            if self._code is not None or stream.done:
                return
            try:
                message = self._channel.encode_message(serializer(request) if serializer else request)
            except Exception:
                self._abort(grpc.StatusCode.INTERNAL, "Exception serializing request!")
                return
            conn.send_data(stream, message, False)
        conn.send_data(stream, b"", True)

    # Ending

    def _end(self, code: grpc.StatusCode, details: str) -> None:
        if self._code is not None:
            return
        self._code, self._details = code, details
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        sender = self._sender
        if sender is not None and sender is not gevent.getcurrent() and not sender.dead:
            sender.kill(block=False)
        self._channel.untrack(self)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def _abort(self, code: grpc.StatusCode, details: str) -> None:
        """End the call from this side: RST_STREAM, buffered responses dropped, the waiting reader woken."""
        if self._code is not None:
            return
        self._local_end = True
        if self._conn is not None and self._stream is not None:
            self._conn.reset(self._stream)
            self._stream.wake()
        self._end(code, details)

    def _settle(self) -> None:
        stream = self._stream
        assert stream is not None
        if stream.refused and not stream.expired and self._retry is not None:
            # Never seen by the server (GOAWAY, REFUSED_STREAM): opened once more, as grpcio retries it.
            block, message, wake_on_data = self._retry
            self._retry = None
            if self._timer is not None:
                self._timer.close()
                self._timer = None
            self._pos = 0
            self._open(block, message, True, wake_on_data)
            return
        code, details = stream_outcome(stream, self._conn)
        if not stream.remote_closed:
            self._local_end = True
        self._end(code, details)

    def wait_done(self) -> None:
        """Block until the call has ended (a kill meanwhile cancels it)."""
        try:
            while self._code is None:
                stream = self._stream
                assert stream is not None
                if stream.done:
                    self._settle()
                else:
                    stream.wait()
        except BaseException:
            self.cancel()
            raise

    def _next_payload(self) -> bytes | None:
        while True:
            stream = self._stream  # a new one after a transparent retry
            if stream is not None and not self._local_end:
                try:
                    payload, self._pos = take_message(
                        stream.data,
                        self._pos,
                        header_value(stream.headers, b"grpc-encoding"),
                        self._channel.max_receive,
                    )
                except MessageError as exc:
                    self._abort(exc.code, exc.details)
                    continue
                if payload is not None:
                    if self._pos > 65536 and self._pos * 2 > len(stream.data):
                        del stream.data[: self._pos]
                        self._pos = 0
                    return payload
            if self._code is not None:
                return None
            assert stream is not None
            if stream.done:
                self._settle()
            else:
                stream.wait()

    def single_response(self) -> Any:
        """The one response of a stream-unary call that has ended OK, or raise a FinishedCall."""
        if self._code is not _OK:
            raise self.finished()
        payload = self._next_payload()
        if payload is None:
            self._end_late(grpc.StatusCode.INTERNAL, "No message received for a unary response")
            raise self.finished()
        return self._decode(payload)

    def _end_late(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def _decode(self, payload: bytes) -> Any:
        if self._deserialize is None:
            return payload
        try:
            return self._deserialize(payload)
        except Exception:
            self._end_late(grpc.StatusCode.INTERNAL, "Exception deserializing response!")
            raise self.finished() from None

    def finished(self) -> FinishedCall:
        stream = self._stream
        return FinishedCall(
            self._code or grpc.StatusCode.UNKNOWN,
            self._details,
            stream.headers if stream else None,
            stream.trailers if stream else None,
        )

    # The iterator (unary-stream, stream-stream)

    def __iter__(self) -> StreamCall:
        return self

    def __next__(self) -> Any:
        payload = self._next_payload()
        if payload is None:
            if self._code is _OK:
                raise StopIteration
            raise self
        return self._decode(payload)

    # grpc.Call

    def cancel(self) -> bool:
        if self._code is not None:
            return False
        self._abort(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")
        return True

    def code(self) -> grpc.StatusCode:
        self._wait_status()
        return self._code

    def details(self) -> str:
        self._wait_status()
        return self._details

    def _wait_status(self) -> None:
        if self._code is None:
            self.wait_done()

    def initial_metadata(self) -> Metadata:
        while (stream := self._stream) is not None and stream.headers is None and self._code is None:
            if stream.done:
                self._settle()
            else:
                stream.wait()
        return metadata_from_headers(stream.headers or []) if stream is not None else ()

    def trailing_metadata(self) -> Metadata:
        self._wait_status()
        stream = self._stream
        return metadata_from_headers(stream.trailers or []) if stream is not None else ()

    def is_active(self) -> bool:
        return self._code is None

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self._code is not None:
            return False
        self._callbacks.append(callback)
        return True

    def debug_error_string(self) -> str:
        return f"{self._code.name if self._code else 'ACTIVE'}: {self._details}"

    def __str__(self) -> str:
        return f"<stream call code={self._code.name if self._code else None} details={self._details!r}>"

    def __del__(self) -> None:
        # Dropped unfinished (grpcio cancels then too): RST_STREAM from a greenlet, never from the collector.
        if self._code is None and self._stream is not None and self._conn is not None:
            if self._timer is not None:
                self._timer.close()
            gevent.spawn(self._conn.reset, self._stream)
