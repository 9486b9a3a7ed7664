"""Streaming gRPC calls as the user iterates them: the whole call recorded once, and measurements per message.

A :class:`RecordedStream` records its call when the stream ends, fails or is cancelled (dropped half-read, or
the user stopped). Messages also record derived measurements under request types of their own (registered
with :mod:`locust_ext.derived`, so Locust's total counts calls only), named by the method path too.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import grpc

from locust_ext.derived import register_derived
from locust_ext.grpc.errors import GrpcCallError
from locust_ext.recording import Operation

if TYPE_CHECKING:
    from locust_ext.grpc.recording import CallRecorder

__all__ = [
    "DERIVED_REQUEST_TYPES",
    "FIRST_MESSAGE",
    "MESSAGE_LATENCY",
    "MESSAGE_ROUND_TRIP",
    "RecordedStream",
    "WatchedRequests",
    "call_error",
    "message_size",
]

#: Time from the start of a streaming call to its first response message.
FIRST_MESSAGE = "grpc-first-message"
#: Per server-stream message: receive time minus the send time the message carries (see ``send_time``).
MESSAGE_LATENCY = "grpc-message-latency"
#: Per bidi reply: its arrival minus the moment its request left the request iterator (one reply per request).
MESSAGE_ROUND_TRIP = "grpc-message-rtt"
#: Measurements within a call, not calls: their rows stay, Locust's total leaves them out.
DERIVED_REQUEST_TYPES = (FIRST_MESSAGE, MESSAGE_LATENCY, MESSAGE_ROUND_TRIP)
register_derived(*DERIVED_REQUEST_TYPES)


def message_size(message: Any) -> int:
    """A protobuf message's size in bytes (0 for anything else): the event's response length."""
    byte_size = getattr(message, "ByteSize", None)
    return byte_size() if byte_size is not None else 0


class WatchedRequests:
    """The user's request iterator, consumed lazily by grpc; remembers an exception it raised, and send times."""

    def __init__(self, requests: Any, sent_times: deque[float] | None) -> None:
        self._requests = iter(requests)
        self._sent_times = sent_times
        self.error: Exception | None = None

    def __iter__(self) -> WatchedRequests:
        return self

    def __next__(self) -> Any:
        try:
            request = next(self._requests)
        except StopIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise
        if self._sent_times is not None:
            self._sent_times.append(time.perf_counter())
        return request


def call_error(error: grpc.RpcError, requests: WatchedRequests | None) -> GrpcCallError:
    """The failure recorded for a call grpc failed: its status, or the user's request iterator having raised."""
    if requests is not None and requests.error is not None:
        user_error = requests.error
        return GrpcCallError(
            grpc.StatusCode.CANCELLED, f"request iterator raised {type(user_error).__name__}: {user_error}"
        )
    return GrpcCallError.from_rpc_error(error)


class RecordedStream:
    """Iterator over a streaming call's responses that records the whole call once: at its end, error or cancel.

    A stream the task leaves half-read is cancelled when it is dropped (or when the user stops) and recorded as
    a ``CANCELLED`` failure. The whole-call event's context carries ``messages`` and ``messages_per_second``.
    Also a ``grpc.Call``: ``cancel()``, ``code()``, ``details()``, metadata accessors pass through.
    """

    def __init__(
        self,
        recorder: CallRecorder,
        operation: Operation,
        call: Any,
        requests: WatchedRequests | None = None,
        sent_times: deque[float] | None = None,
    ) -> None:
        self._recorder = recorder
        self._operation = operation
        self._name = operation.name
        self._started = operation.started
        self._call = call
        self._requests = requests
        self._sent_times = sent_times
        self._messages = 0
        self._bytes = 0
        recorder.track(self)

    def __iter__(self) -> RecordedStream:
        return self

    def __next__(self) -> Any:
        if self._operation.done:
            raise StopIteration
        try:
            message = next(self._call)
        except StopIteration:
            self._finish(None)
            self._recorder.call_succeeded()
            raise
        except grpc.RpcError as error:
            failure = call_error(error, self._requests)
            self._finish(failure)
            if self._requests is not None and self._requests.error is not None:
                raise self._requests.error from None
            self._recorder.pause_if_unavailable(failure)
            raise failure from None
        except BaseException:  # GreenletExit: the user was stopped while waiting for a message
            self._call.cancel()
            self._finish(self._recorder.cancelled(f"stream after {self._messages} messages"))
            raise
        self._on_message(message)
        return message

    def _on_message(self, message: Any) -> None:
        recorder = self._recorder
        self._messages += 1
        size = message_size(message)
        self._bytes += size
        if self._messages == 1:
            recorder.fire(self._name, self._started, size, None, request_type=FIRST_MESSAGE)
        if self._sent_times is not None:
            if self._sent_times:
                recorder.fire(self._name, self._sent_times.popleft(), size, None, request_type=MESSAGE_ROUND_TRIP)
        elif recorder.send_time is not None:
            sent_at = recorder.send_time(message)
            if sent_at is not None:
                # Wall clocks on both sides: only meaningful with synchronised clocks (same host here).
                age_s = max(0.0, time.time() - sent_at)
                recorder.fire(self._name, time.perf_counter() - age_s, size, None, request_type=MESSAGE_LATENCY)

    def _finish(self, error: BaseException | None) -> None:
        """Record the whole call once, with its message count and rate in the event's context."""
        elapsed = time.perf_counter() - self._started
        self._operation.finish(
            error,
            self._bytes,
            {"messages": self._messages, "messages_per_second": self._messages / elapsed if elapsed > 0 else 0.0},
        )

    @property
    def messages(self) -> int:
        """Messages received so far."""
        return self._messages

    def cancel(self, reason: str = "cancelled by the client") -> bool:
        """Cancel the call if it is still open; record it as a CANCELLED failure. True if it was open."""
        if self._operation.done:
            return False
        self._call.cancel()
        self._finish(GrpcCallError(grpc.StatusCode.CANCELLED, f"stream {reason} after {self._messages} messages"))
        return True

    def __enter__(self) -> RecordedStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel("left unfinished")

    def __del__(self) -> None:
        if not self._operation.done:
            self.cancel("abandoned half-read")

    def __getattr__(self, attribute: str) -> Any:
        # code(), details(), initial_metadata(), trailing_metadata(), is_active(), time_remaining(), ...
        return getattr(self._call, attribute)
