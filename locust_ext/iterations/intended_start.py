"""Latency from each iteration's intended start, carried into Locust's request events for any user class.

While an open-model iteration runs, its user's greenlet knows how late the iteration began (actual start
minus the moment the schedule meant it to start). :func:`correct_request_events` wraps the Environment's
request hook so that every request event fired from that greenlet — by GrpcUser, a plain ``fire()`` or
``measure()`` — has that lateness added to its ``response_time``. The stats, reports, StatsD mirror and
thresholds gate then all see latency as a user arriving on schedule would have seen it, so a stall that
delayed the load generator (coordinated omission) is not hidden. Events fired from other greenlets (a
receive loop, a background task) are left as they are.
"""

from __future__ import annotations

import time
from typing import Any

import gevent.local
from locust.env import Environment

__all__ = ["begin_iteration", "correct_request_events", "end_iteration", "lateness_ms"]

_current = gevent.local.local()


def begin_iteration(intended_start: float) -> None:
    """Mark the calling greenlet's iteration as meant to start at ``intended_start`` (``perf_counter`` time)."""
    _current.lateness_ms = max(0.0, (time.perf_counter() - intended_start) * 1000.0)


def end_iteration() -> None:
    """The calling greenlet's iteration is over; its later events are not corrected."""
    _current.lateness_ms = 0.0


def lateness_ms() -> float:
    """How late the calling greenlet's current iteration began, in milliseconds (0 outside iterations)."""
    return float(getattr(_current, "lateness_ms", 0.0))


def correct_request_events(environment: Environment) -> None:
    """Add the firing greenlet's iteration lateness to every request event of ``environment`` (idempotent)."""
    hook = environment.events.request
    if getattr(hook, "corrects_intended_start", False):
        return
    fire_as_measured = hook.fire

    def fire(*, reverse: bool = False, **kwargs: Any) -> None:
        late = lateness_ms()
        response_time = kwargs.get("response_time")
        if late and isinstance(response_time, (int, float)):
            kwargs["response_time"] = response_time + late
        fire_as_measured(reverse=reverse, **kwargs)

    hook.fire = fire  # type: ignore[method-assign]
    hook.corrects_intended_start = True  # type: ignore[attr-defined]
