"""A grpc.Channel wrapper whose multicallables record one Locust request event per call, for all four kinds.

Stubs built on a :class:`RecordingChannel` behave like ordinary grpc stubs; each call additionally fires
``request_type="grpc"`` with ``name`` = the method path. A failed call is recorded, then raised into the
task as :class:`~locust_ext.grpc.errors.GrpcCallError` (a ``grpc.RpcError``). Every event goes through the
user's :class:`CallRecorder` (a :class:`locust_ext.recording.Recorder`); streaming calls are recorded by
:mod:`locust_ext.grpc.streams`, which also records derived measurements per message.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import gevent
import grpc
from locust.event import EventHook

from locust_ext.grpc.errors import GrpcCallError
from locust_ext.grpc.streams import (
    DERIVED_REQUEST_TYPES,
    FIRST_MESSAGE,
    MESSAGE_LATENCY,
    MESSAGE_ROUND_TRIP,
    RecordedStream,
    WatchedRequests,
    call_error,
    message_size,
)
from locust_ext.recording import USER_DEFAULT, Recorder

__all__ = [
    "DERIVED_REQUEST_TYPES",
    "FIRST_MESSAGE",
    "MESSAGE_LATENCY",
    "MESSAGE_ROUND_TRIP",
    "REQUEST_TYPE",
    "CallRecorder",
    "RecordedStream",
    "RecordingChannel",
    "sent_at_unix_nanos",
]

REQUEST_TYPE = "grpc"

Metadata = Sequence[tuple[str, str | bytes]]
SendTime = Callable[[Any], float | None]


def sent_at_unix_nanos(message: Any) -> float | None:
    """Send time (Unix seconds) from a ``sent_at_unix_nanos`` field, as the reference backend's messages carry."""
    nanos = getattr(message, "sent_at_unix_nanos", None)
    return nanos / 1e9 if nanos else None


def _cancelled_by_stop(what: str) -> GrpcCallError:
    return GrpcCallError(grpc.StatusCode.CANCELLED, f"{what} cut short: the user stopped mid-call")


class CallRecorder(Recorder):
    """One user's :class:`~locust_ext.recording.Recorder` for gRPC: default deadline and metadata, the
    call-name override, the UNAVAILABLE backoff and the streams still open."""

    def __init__(
        self,
        request_event: EventHook,
        *,
        context: Callable[[], dict[str, Any]] = dict,
        timeout: float | None = None,
        metadata: Metadata = (),
        send_time: SendTime | None = sent_at_unix_nanos,
        bidi_round_trips: bool = True,
        unavailable_backoff: tuple[float, float] | None = (0.05, 1.0),
    ) -> None:
        super().__init__(
            request_event, REQUEST_TYPE, failure_type=GrpcCallError, cancelled=_cancelled_by_stop, context=context
        )
        self.timeout = timeout
        self.metadata = tuple(metadata)
        self.send_time = send_time
        self.bidi_round_trips = bidi_round_trips
        self.unavailable_backoff = unavailable_backoff
        self._backoff_s = 0.0
        #: When set, calls are recorded under this name instead of their method path.
        self.name_override: str | None = None
        self._open_streams: weakref.WeakSet[RecordedStream] = weakref.WeakSet()

    def pause_if_unavailable(self, error: GrpcCallError) -> None:
        """After UNAVAILABLE, pause this user (doubling up to a cap) so a dead server is not hammered in a hot loop.

        The failure is already recorded; the pause is not part of its response time. Success resets the pause.
        """
        if self.unavailable_backoff is None or error.code() is not grpc.StatusCode.UNAVAILABLE:
            return
        first, cap = self.unavailable_backoff
        self._backoff_s = min(cap, self._backoff_s * 2 if self._backoff_s else first)
        gevent.sleep(self._backoff_s)

    def call_succeeded(self) -> None:
        self._backoff_s = 0.0

    def call_options(self, timeout: Any, metadata: Metadata | None) -> tuple[float | None, Metadata | None]:
        """The deadline and metadata a call really uses: per-call values over the user's defaults."""
        if timeout is USER_DEFAULT:
            timeout = self.timeout
        if self.metadata:
            metadata = self.metadata + tuple(metadata or ())
        return timeout, metadata

    def track(self, stream: RecordedStream) -> None:
        self._open_streams.add(stream)

    def cancel_open_streams(self, reason: str) -> None:
        """Cancel (and record as cancelled) every stream still open, e.g. when the user stops."""
        for stream in list(self._open_streams):
            stream.cancel(reason)


class _Recorded:
    """Common part of the four recording multicallables."""

    __slots__ = ("_inner", "_method", "_recorder")

    def __init__(self, inner: Any, method: str, recorder: CallRecorder) -> None:
        self._inner = inner
        self._method = method
        self._recorder = recorder

    @property
    def _name(self) -> str:
        return self._recorder.name_override or self._method


class _RecordedUnaryResponse(_Recorded):
    """unary-unary and stream-unary: one response; the event fires when it arrives or the call fails."""

    __slots__ = ()
    _streams_requests = False

    def _invoke(self, with_call: bool, request: Any, timeout: Any, metadata: Metadata | None, kwargs: Any) -> Any:
        """The call itself: the response, or ``(response, call)`` when ``with_call`` (a dearer path in grpc)."""
        recorder = self._recorder
        timeout, metadata = recorder.call_options(timeout, metadata)
        requests = WatchedRequests(request, None) if self._streams_requests else None
        # A plain blocking call is the cheapest path through grpc under gevent: future() starts a channel thread
        # per call when calls do not overlap, and with_call() builds a call object (measured ~7 % dearer), so it is
        # used only when asked for. Killing a greenlet inside a blocking call would strand the call, so
        # GrpcUser.stop waits for calls in flight (see locust_ext.stopping) instead of killing mid-call.
        # A kill mid-call without GrpcUser.stop (e.g. after --stop-timeout) is recorded as cancelled.
        invoke = self._inner.with_call if with_call else self._inner
        argument = requests if requests is not None else request
        with recorder.start(self._name, "call") as call:
            try:
                result = invoke(argument, timeout=timeout, metadata=metadata, **kwargs)
            except grpc.RpcError as error:
                call.failure = call_error(error, requests)
            else:
                call.length = message_size(result[0] if with_call else result)
        failure = call.failure
        if failure is None:
            recorder.call_succeeded()
            return result
        if requests is not None and requests.error is not None:
            raise requests.error from None
        recorder.pause_if_unavailable(cast(GrpcCallError, failure))
        raise failure from None

    def __call__(
        self, request: Any, timeout: Any = USER_DEFAULT, metadata: Metadata | None = None, **kwargs: Any
    ) -> Any:
        return self._invoke(False, request, timeout, metadata, kwargs)

    def with_call(
        self, request: Any, timeout: Any = USER_DEFAULT, metadata: Metadata | None = None, **kwargs: Any
    ) -> tuple[Any, grpc.Call]:
        return self._invoke(True, request, timeout, metadata, kwargs)


class RecordedUnaryUnary(_RecordedUnaryResponse):
    __slots__ = ()


class RecordedStreamUnary(_RecordedUnaryResponse):
    __slots__ = ()
    _streams_requests = True


class _RecordedStreamResponse(_Recorded):
    """unary-stream and stream-stream: the call opens at once; its event fires when the stream ends."""

    __slots__ = ()

    def _open(
        self,
        request: Any,
        timeout: Any,
        metadata: Metadata | None,
        kwargs: Any,
        requests: WatchedRequests | None = None,
        sent_times: deque[float] | None = None,
    ) -> RecordedStream:
        recorder = self._recorder
        timeout, metadata = recorder.call_options(timeout, metadata)
        operation = recorder.start(self._name, "stream")
        try:
            call = self._inner(request, timeout=timeout, metadata=metadata, **kwargs)
        except BaseException:
            operation.discard()
            raise
        return RecordedStream(recorder, operation, call, requests, sent_times)


class RecordedUnaryStream(_RecordedStreamResponse):
    __slots__ = ()

    def __call__(
        self, request: Any, timeout: Any = USER_DEFAULT, metadata: Metadata | None = None, **kwargs: Any
    ) -> RecordedStream:
        return self._open(request, timeout, metadata, kwargs)


class RecordedStreamStream(_RecordedStreamResponse):
    __slots__ = ()

    def __call__(
        self, request_iterator: Any, timeout: Any = USER_DEFAULT, metadata: Metadata | None = None, **kwargs: Any
    ) -> RecordedStream:
        sent_times: deque[float] | None = deque() if self._recorder.bidi_round_trips else None
        requests = WatchedRequests(request_iterator, sent_times)
        return self._open(requests, timeout, metadata, kwargs, requests, sent_times)


class RecordingChannel(grpc.Channel):
    """Wraps a real channel; stubs built on it record every call through ``recorder``."""

    def __init__(self, channel: grpc.Channel, recorder: CallRecorder) -> None:
        self.channel = channel
        self.recorder = recorder

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return RecordedUnaryUnary(self.channel.unary_unary(method, *args, **kwargs), method, self.recorder)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return RecordedUnaryStream(self.channel.unary_stream(method, *args, **kwargs), method, self.recorder)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return RecordedStreamUnary(self.channel.stream_unary(method, *args, **kwargs), method, self.recorder)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return RecordedStreamStream(self.channel.stream_stream(method, *args, **kwargs), method, self.recorder)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.channel.unsubscribe(callback)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RecordingChannel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
