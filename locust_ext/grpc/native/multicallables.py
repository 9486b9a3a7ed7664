"""The four multicallables of :class:`~locust_ext.grpc.native.channel.NativeChannel`, as generated stubs use them.

Unary-unary is the hot path: the request header block comes from the per-method cache, HEADERS and DATA leave
in one send, the caller sleeps until the reader has the whole answer, and no call object is built unless
``with_call`` asks for one or the call fails. The other kinds run on :class:`~.calls.StreamCall`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from gevent.hub import get_hub

from locust_ext.grpc.native.calls import FinishedCall, StreamCall, stream_outcome
from locust_ext.grpc.native.connection import ConnectionGone
from locust_ext.grpc.native.status import MessageError, header_value, take_message

if TYPE_CHECKING:
    from locust_ext.grpc.native.channel import NativeChannel

__all__ = ["StreamStream", "StreamUnary", "UnaryStream", "UnaryUnary"]

MetadataArg = Sequence[tuple[str, str | bytes]] | None
_OK = grpc.StatusCode.OK


class _MultiCallable:
    __slots__ = ("_block", "_channel", "_deserialize", "_method", "_serialize")

    def __init__(
        self,
        channel: NativeChannel,
        method: str,
        request_serializer: Callable[[Any], bytes] | None,
        response_deserializer: Callable[[bytes], Any] | None,
    ) -> None:
        self._channel = channel
        self._method = method
        self._serialize = request_serializer
        self._deserialize = response_deserializer
        self._block = channel.request_headers.method(method)

    def _headers(
        self, timeout: float | None, metadata: MetadataArg, compression: Any, credentials: Any, wait_for_ready: Any
    ) -> bytes:
        """This call's header block: the method's cached block, then deadline, metadata and encoding."""
        if credentials is not None:
            raise NotImplementedError("the native gRPC transport does not support call credentials; use grpcio")
        if wait_for_ready:
            raise NotImplementedError("the native gRPC transport does not support wait_for_ready=True; use grpcio")
        block = self._block
        headers = self._channel.request_headers
        if timeout is not None:
            block += headers.timeout(timeout)
        if metadata:
            block += headers.metadata(metadata)
        if compression is not None:
            self._channel.check_compression(compression)
        encoding = self._channel.encoding_block
        return block + encoding if encoding else block

    def _encode(self, request: Any) -> bytes:
        try:
            payload = self._serialize(request) if self._serialize is not None else request
        except Exception:
            raise FinishedCall(grpc.StatusCode.INTERNAL, "Exception serializing request!") from None
        return self._channel.encode_message(payload)

    def _start(
        self,
        request: Any,
        request_streams: bool,
        response_streams: bool,
        timeout: float | None,
        metadata: MetadataArg,
        credentials: Any,
        wait_for_ready: Any,
        compression: Any,
    ) -> StreamCall:
        """Opens a call of the streaming kinds on :class:`~.calls.StreamCall`: the header block, then the call,
        its stream opened with the one encoded request (ending our side) or with none and the requests sent
        from ``request`` as they come; ``response_streams`` wakes the caller at each DATA frame."""
        block = self._headers(timeout, metadata, compression, credentials, wait_for_ready)
        call = StreamCall(self._channel, self._deserialize, timeout)
        if request_streams:
            call.start(block, None, False, response_streams)
            call.send_requests(request, self._serialize)
        else:
            call.start(block, self._encode(request), True, response_streams)
        return call


class _UnaryResponse(_MultiCallable):
    """Unary-unary and stream-unary: blocking calls only."""

    __slots__ = ()

    def future(self, *_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError("the native gRPC transport has no future(); call the stub, or use grpcio")


class UnaryUnary(_UnaryResponse, grpc.UnaryUnaryMultiCallable):
    """One request, one response: the cheapest path."""

    __slots__ = ()

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        return self._blocking(request, timeout, metadata, credentials, compression, wait_for_ready)[0]

    def with_call(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> tuple[Any, grpc.Call]:
        response, call = self._blocking(request, timeout, metadata, credentials, compression, wait_for_ready, True)
        return response, call

    def _blocking(
        self,
        request: Any,
        timeout: float | None,
        metadata: MetadataArg,
        credentials: Any,
        compression: Any,
        wait_for_ready: Any,
        with_call: bool = False,
    ) -> tuple[Any, FinishedCall | None]:
        block = self._headers(timeout, metadata, compression, credentials, wait_for_ready)
        message = self._encode(request)
        if timeout is not None and timeout <= 0:
            raise FinishedCall(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        deadline = time.monotonic() + timeout if timeout is not None else None
        channel = self._channel
        retried = False
        while True:
            try:
                conn, stream = channel.open_stream(block, message, True, False, deadline)
            except ConnectionGone as exc:
                raise FinishedCall(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
            timer = None
            if deadline is not None:  # armed now: waiting for a slot or window counted toward the deadline
                timer = get_hub().loop.timer(max(0.0, deadline - time.monotonic()))
                timer.start(stream.expire)
            try:
                while not stream.done:
                    stream.wait()
            except BaseException:
                conn.reset(stream)
                raise
            finally:
                if timer is not None:
                    timer.close()
            # Never seen by the server (GOAWAY, REFUSED_STREAM): retried transparently once, as grpcio does.
            if retried or not (stream.refused and not stream.expired):
                break
            retried = True
        code, details = stream_outcome(stream, conn)
        if code is not _OK:
            raise FinishedCall(code, details, stream.headers, stream.trailers)
        try:
            payload, _ = take_message(
                stream.data, 0, header_value(stream.headers, b"grpc-encoding"), channel.max_receive
            )
        except MessageError as exc:
            raise FinishedCall(exc.code, exc.details, stream.headers, stream.trailers) from None
        if payload is None:
            raise FinishedCall(
                grpc.StatusCode.INTERNAL, "No message received for a unary response", stream.headers, stream.trailers
            )
        deserialize = self._deserialize
        try:
            response = deserialize(payload) if deserialize is not None else payload
        except Exception:
            raise FinishedCall(
                grpc.StatusCode.INTERNAL, "Exception deserializing response!", stream.headers, stream.trailers
            ) from None
        return response, FinishedCall(_OK, details, stream.headers, stream.trailers) if with_call else None


class UnaryStream(_MultiCallable, grpc.UnaryStreamMultiCallable):
    """One request, a stream of responses: returns the running call, an iterator."""

    __slots__ = ()

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> StreamCall:
        return self._start(request, False, True, timeout, metadata, credentials, wait_for_ready, compression)


class StreamUnary(_UnaryResponse, grpc.StreamUnaryMultiCallable):
    """A stream of requests (consumed as they come), one response."""

    __slots__ = ()

    def __call__(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        return self._blocking(request_iterator, timeout, metadata, credentials, compression, wait_for_ready)[0]

    def with_call(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> tuple[Any, grpc.Call]:
        return self._blocking(request_iterator, timeout, metadata, credentials, compression, wait_for_ready)

    def _blocking(
        self,
        requests: Iterable[Any],
        timeout: float | None,
        metadata: MetadataArg,
        credentials: Any,
        compression: Any,
        wait_for_ready: Any,
    ) -> tuple[Any, grpc.Call]:
        call = self._start(requests, True, False, timeout, metadata, credentials, wait_for_ready, compression)
        call.wait_done()
        response = call.single_response()
        return response, call.finished()


class StreamStream(_MultiCallable, grpc.StreamStreamMultiCallable):
    """Requests and responses both streamed: returns the running call, an iterator."""

    __slots__ = ()

    def __call__(
        self,
        request_iterator: Iterable[Any],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> StreamCall:
        return self._start(request_iterator, True, True, timeout, metadata, credentials, wait_for_ready, compression)
