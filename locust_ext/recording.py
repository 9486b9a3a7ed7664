"""The one funnel from the suite's users to Locust's request event: operations timed, failures and kills recorded.

Both users record through a :class:`Recorder`, in the spirit of Locust's ``events.request.measure``::

    with recorder.start(name, "mid-request") as operation:   # counted in flight from here
        reply = ...                                             # raise a protocol failure: recorded as it is
        operation.length = len(reply)                           # any other exit (a kill): recorded "cancelled"

Unlike ``measure()``, nothing is swallowed: the failure is recorded, then goes on into the task. A failure the
code wants recorded without raising it there (a gRPC status turned into the client's error, raised after a
backoff that must not count in the response time) goes in ``operation.failure``. An operation spanning several
calls (a gRPC stream) is started with :meth:`Recorder.start` and ended with :meth:`Operation.finish`.

Operations started with ``tracked=True`` count in the user's :class:`~locust_ext.stopping.CallsInFlight`, so a
graceful stop refuses new ones and waits for those in flight (:class:`~locust_ext.stopping.GracefulStopUser`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Any, Final

from locust.event import EventHook

from locust_ext.stopping import CallsInFlight

__all__ = ["USER_DEFAULT", "Operation", "Recorder"]


class _UserDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "USER_DEFAULT"


#: A per-call argument left to the user's class attribute (e.g. its timeout); None keeps meaning "none".
USER_DEFAULT: Final[Any] = _UserDefault()

_perf_counter = time.perf_counter


class Recorder:
    """One user's way to Locust's request event: its request type, its context, its operations in flight.

    ``failure_type`` is the protocol's failure exception (raised inside an operation, it is recorded as it is);
    ``cancelled(what)`` builds the failure recorded when anything else ends an operation (a ``GreenletExit``
    when the user is killed mid-call).
    """

    __slots__ = ("_cancelled", "context", "failure_type", "in_flight", "request_event", "request_type", "start")

    def __init__(
        self,
        request_event: EventHook,
        request_type: str,
        *,
        failure_type: type[BaseException],
        cancelled: Callable[[str], BaseException],
        context: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        #: Looked up at each event: the open model wraps its ``fire`` after users exist.
        self.request_event = request_event
        self.request_type = request_type
        self.failure_type = failure_type
        self._cancelled = cancelled
        self.context = context
        #: Tracked operations awaiting their outcome; a graceful stop waits for them before a kill.
        self.in_flight = CallsInFlight()
        #: ``start(name, cut_short, tracked=True)``: start timing an :class:`Operation`; ``cut_short`` says what
        #: a kill interrupts. Tracked operations raise ``StopUser`` here once the user is being stopped (nothing
        #: is recorded). (A partial, not a method: one Python call less on every operation's path.)
        self.start: Callable[..., Operation] = partial(Operation, self)

    def fire(
        self,
        name: str,
        started: float,
        length: int = 0,
        failure: BaseException | None = None,
        request_type: str | None = None,
        extra_context: dict[str, Any] | None = None,
    ) -> float:
        """Record one event timed from ``started`` (``time.perf_counter()``); returns its response time in ms.

        The single place the suite's users talk to Locust's request event.
        """
        elapsed_ms = (_perf_counter() - started) * 1000.0
        context = self.context()
        if extra_context:
            context = {**context, **extra_context}
        self.request_event.fire(
            request_type=request_type or self.request_type,
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=failure,
            context=context,
        )
        return elapsed_ms

    def cancelled(self, cut_short: str) -> BaseException:
        """The failure recorded for an operation ``cut_short`` interrupted."""
        return self._cancelled(cut_short)


class Operation:
    """One operation being timed (from :meth:`Recorder.start`); a context manager that records it once, however
    it ends."""

    __slots__ = ("_cut_short", "_recorder", "_tracked", "done", "failure", "length", "name", "started")

    def __init__(self, recorder: Recorder, name: str, cut_short: str, tracked: bool = True) -> None:
        if tracked:
            recorder.in_flight.starting()
        self._recorder = recorder
        self._cut_short = cut_short
        self._tracked = tracked
        self.name = name
        #: Response bytes recorded with the event.
        self.length = 0
        #: A failure to record though nothing is raised inside the block.
        self.failure: BaseException | None = None
        self.done = False
        self.started = _perf_counter()

    def finish(
        self,
        failure: BaseException | None = None,
        length: int | None = None,
        extra_context: dict[str, Any] | None = None,
    ) -> float:
        """Record the operation (once: later calls do nothing and return 0); returns its response time in ms."""
        if self.done:
            return 0.0
        self.done = True
        recorder = self._recorder
        if self._tracked:
            recorder.in_flight.ended()
        if failure is None:
            failure = self.failure
        return recorder.fire(
            self.name, self.started, self.length if length is None else length, failure, None, extra_context
        )

    def cut_short(self, extra_context: dict[str, Any] | None = None) -> None:
        """Record the operation as cancelled by whatever interrupted it (a kill, an exception not a failure)."""
        self.finish(self._recorder.cancelled(self._cut_short), 0, extra_context)

    def discard(self) -> None:
        """End the operation without recording it (it never began, e.g. its call could not be made)."""
        if not self.done:
            self.done = True
            if self._tracked:
                self._recorder.in_flight.ended()

    def __enter__(self) -> Operation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        if self.done:
            return
        if exc is None:  # finish(), written out: this is on every operation's path
            self.done = True
            recorder = self._recorder
            if self._tracked:
                recorder.in_flight.ended()
            recorder.fire(self.name, self.started, self.length, self.failure)
        elif isinstance(exc, self._recorder.failure_type):
            self.finish(exc)
        else:
            self.cut_short()
