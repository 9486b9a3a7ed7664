"""The open model: iterations start on a schedule (constant or ramping arrival rate), not when a user is free.

A scheduler greenlet hands each due iteration to an idle user; the users (``-u``) are the pool, so their
number caps the iterations in flight. An iteration that falls due while every user is busy is dropped and
counted, as k6's arrival-rate executors do. Because the schedule never waits for the server, a slow or
stalled server cannot lower the offered load, and each iteration's latency is measured from the moment it
was due (see ``intended_start``). Users' own ``wait_time`` is replaced by the schedule on each user
instance, never on its class, so a later run in the same process (a web UI restart) finds the class as it was.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import User
from locust.env import Environment
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from locust_ext.iterations import intended_start
from locust_ext.iterations.distributed import RunCoordinator, WorkerShare
from locust_ext.iterations.plan import IterationPlan
from locust_ext.roles import is_master, is_worker
from locust_ext.stages import Stage

__all__ = ["OpenModel", "arrival_offsets"]

log = logging.getLogger(__name__)

REPORT_KEY = "locust_ext_arrivals"
#: How long the schedule waits at the start for the spawned users to be ready for iterations.
POOL_READY_TIMEOUT_S = 2.0


def _no_wait() -> float:
    """A user's wait between open-model iterations: none, the schedule paces the users."""
    return 0.0


def arrival_offsets(
    stages: Sequence[Stage], *, start_rate: float = 0.0, fraction: float = 1.0, phase: float = 0.0
) -> Iterator[float]:
    """Seconds after the start at which iterations fall due, for a rate (iterations/s) moving linearly from
    ``start_rate`` through the stage targets; a constant rate is one endless stage at that rate.

    A worker with ``fraction`` of the rate and ``phase`` (its index / worker count) gets its iterations
    interleaved with the other workers' instead of all falling due at the same instants.
    """
    due_count = phase  # the arrival count (area under the rate curve) at which the next iteration is due
    counted = 0.0
    elapsed = 0.0
    rate = start_rate * fraction
    for stage in stages:
        low, high, duration = rate, stage.target * fraction, stage.duration
        if duration > 0:
            slope = (high - low) / duration if math.isfinite(duration) else 0.0
            stage_count = counted + (low + high) / 2 * duration if slope else counted + low * duration
            while due_count < stage_count:
                missing = due_count - counted
                # the positive root of counted + low*x + slope/2*x^2 = due_count, in a form stable as slope -> 0
                root = 2 * missing / (low + math.sqrt(low * low + 2 * slope * missing)) if missing else 0.0
                yield elapsed + root
                due_count += 1
            counted = stage_count
        elapsed += duration
        rate = high


class OpenModel:
    """Runs one process's share of the arrival schedule and counts iterations started and dropped."""

    def __init__(self, coordinator: RunCoordinator) -> None:
        self.coordinator = coordinator
        self.environment: Environment = coordinator.environment
        self.active = False
        self.stages: list[Stage] = []
        self.start_rate = 0.0
        self.finite = False
        self.share = WorkerShare(0, 1)
        self.idle: deque[AsyncResult] = deque()
        self.scheduler: gevent.Greenlet | None = None
        self.started = self.dropped = self.in_flight = 0
        self.exhausted = False
        # totals across workers (master), or this process's own counts (alone)
        self.total_started = self.total_dropped = 0
        self._reported = (0, 0)
        coordinator.share_listeners.append(self._on_share)
        events = self.environment.events
        if is_master(self.environment):
            events.worker_report.add_listener(self._on_worker_report)
            events.test_start.add_listener(self._reset_totals)
        else:
            events.spawning_complete.add_listener(self._start_schedule)
            events.test_stopping.add_listener(self._stop_schedule)  # before users are stopped: no false drops
            if is_worker(self.environment):
                events.report_to_master.add_listener(self._report_to_master)
        if not is_worker(self.environment) and coordinator.plan.open_model:
            events.quitting.add_listener(self._log_summary)

    # --- this process's schedule -------------------------------------------------------------------------

    def _on_share(self, share: WorkerShare, plan: IterationPlan) -> None:
        self._stop_schedule()
        self.active = plan.open_model
        self.stages, self.start_rate = plan.arrival_stages()
        self.finite = plan.stages is not None
        self.share = share
        self.started = self.dropped = self.in_flight = 0
        self._reported = (0, 0)
        self.exhausted = False

    def _start_schedule(self, **_: Any) -> None:
        if not self.active or self.scheduler is not None or self.exhausted:
            return
        runner = self.environment.runner
        assert runner is not None
        self.scheduler = runner.greenlet.spawn(self._run_schedule)

    def _stop_schedule(self, **_: Any) -> None:
        if self.scheduler is not None:
            self.scheduler.kill(block=False)
            self.scheduler = None

    def _run_schedule(self) -> None:
        runner = self.environment.runner
        assert runner is not None
        ready_by = time.perf_counter() + POOL_READY_TIMEOUT_S
        while len(self.idle) < runner.user_count and time.perf_counter() < ready_by:
            gevent.sleep(0.01)  # spawned users are still running on_start; the first iterations need them
        started_at = time.perf_counter()
        offsets = arrival_offsets(
            self.stages,
            start_rate=self.start_rate,
            fraction=1.0 / self.share.count,
            phase=self.share.index / self.share.count,
        )
        for offset in offsets:
            due = started_at + offset
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            self._hand_out(due)
        self.exhausted = True
        self._check_done()

    def _hand_out(self, due: float) -> None:
        if self.idle:
            self.idle.popleft().set(due)
            self.started += 1
        else:
            self.dropped += 1

    # --- the users' side (IterationController) -----------------------------------------------------------

    def begin(self, user: User) -> None:
        if not self.active:
            return
        # Waiting for the next iteration is the open model's wait_time: like TaskSet.wait(), a user stopped
        # while it waits goes at once, and one asked to stop does not take another iteration.
        if user._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        user._state = LOCUST_STATE_WAITING
        user.wait_time = _no_wait  # type: ignore[method-assign]
        ticket = AsyncResult()
        self.idle.append(ticket)
        try:
            due = ticket.get()
        except BaseException:
            if ticket.ready():  # handed out just as the user was stopped: it never ran
                self.started -= 1
                self.dropped += 1
            else:
                self.idle.remove(ticket)
            raise
        user._state = LOCUST_STATE_RUNNING
        self.in_flight += 1
        intended_start.begin_iteration(due)

    def end(self, user: User) -> None:
        if not self.active:
            return
        intended_start.end_iteration()
        self.in_flight -= 1
        self._check_done()

    def _check_done(self) -> None:
        if self.finite and self.exhausted and self.in_flight == 0:
            self.coordinator.done()

    # --- counts across processes ------------------------------------------------------------------------

    def _report_to_master(self, data: dict[str, Any], **_: Any) -> None:
        if not self.active:
            return
        started, dropped = self._reported
        data[REPORT_KEY] = {"started": self.started - started, "dropped": self.dropped - dropped}
        self._reported = (self.started, self.dropped)

    def _reset_totals(self, **_: Any) -> None:
        self.total_started = self.total_dropped = 0

    def _on_worker_report(self, data: dict[str, Any], **_: Any) -> None:
        counts = data.get(REPORT_KEY)
        if counts:
            self.total_started += counts["started"]
            self.total_dropped += counts["dropped"]

    def counts(self) -> tuple[int, int]:
        """(iterations started on schedule, iterations dropped at the in-flight cap) so far, whole run."""
        if is_master(self.environment):
            return self.total_started, self.total_dropped
        return self.started, self.dropped

    def _log_summary(self, **_: Any) -> None:
        started, dropped = self.counts()
        log.info(
            "Open model: %d iterations started on schedule, %d dropped at the in-flight cap (the user count)",
            started,
            dropped,
        )
