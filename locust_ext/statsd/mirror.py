"""The StatsD mirror: a listener bound to one Environment (its flags and wiring: ``locust_hooks``).

Every process with users (a worker, or a local runner) sends a timer and a success/failure counter per
request event: under ``<prefix>.requests`` for operations, under ``<prefix>.derived`` for derived measurements
(:mod:`locust_ext.derived`: stream messages, pushes, keepalives, ...), so a sum over ``requests`` counts
operations, as Locust's total does. The master, or a local runner, also sends run gauges once a second (rps
and failure ratio from Locust's total) and every run gauge other features published in
:mod:`locust_ext.run_gauges` (connection counts, the thresholds gate's grades). StatsD sums what the workers
send, so nothing is counted twice. The user's greenlet only formats lines into a buffer; a background greenlet
flushes it every second, and at test stop and quit.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, get_args

import gevent
from locust.env import Environment

from locust_ext.derived import is_derived
from locust_ext.roles import is_master, is_worker, master_runner
from locust_ext.run_gauges import published_gauges
from locust_ext.statsd.naming import RequestLines, TagStyle, gauge_lines, request_lines, sanitize_segment
from locust_ext.statsd.sender import DatagramBatcher

__all__ = ["FLUSH_INTERVAL_SECONDS", "TAG_STYLES", "MirrorConfig", "StatsdMirror"]

FLUSH_INTERVAL_SECONDS = 1.0
TAG_STYLES: tuple[TagStyle, ...] = get_args(TagStyle)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorConfig:
    """Where and how to send; ``prefix`` is dot-separated, each segment sanitised on construction."""

    host: str
    port: int = 8125
    prefix: str = "locust"
    tags: TagStyle = "none"
    sample_rate: float = 1.0

    def __post_init__(self) -> None:
        if self.tags not in TAG_STYLES:
            raise ValueError(f"statsd tags {self.tags!r}: expected one of {', '.join(TAG_STYLES)}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"statsd sample rate {self.sample_rate}: must be in (0, 1]")
        segments = [sanitize_segment(part) for part in self.prefix.split(".") if part.strip()]
        object.__setattr__(self, "prefix", ".".join(segments) or "locust")


class StatsdMirror:
    """Mirrors one Environment's request events and run gauges to StatsD; see the module docstring."""

    def __init__(self, environment: Environment, config: MirrorConfig, batcher: DatagramBatcher) -> None:
        self.environment = environment
        self.config = config
        self.batcher = batcher
        self.handler_errors = 0
        self._lines: dict[tuple[str, str], RequestLines] = {}
        self._flusher: gevent.Greenlet | None = None
        self._closed = False
        self._listening = False

    @property
    def sends_gauges(self) -> bool:
        """Run gauges come from the master or a lone local runner, never from a worker."""
        return not is_worker(self.environment)

    def start(self) -> None:
        """Listen to the Environment's events and start the once-a-second flusher."""
        events = self.environment.events
        if not is_master(self.environment):
            events.request.add_listener(self.on_request)
            self._listening = True
        events.test_stop.add_listener(self._on_flush_event)
        events.quitting.add_listener(self._on_flush_event)
        # Locust fires `quitting` before it stops a still-running local runner; `quit` comes after.
        events.quit.add_listener(self._on_quit)
        self._flusher = gevent.spawn(self._flush_forever)

    def on_request(
        self, request_type: str, name: str, response_time: float | None, exception: Any = None, **_: Any
    ) -> None:
        """Queue this event's lines; never raises into the caller (the user's greenlet)."""
        try:
            rate = self.config.sample_rate
            if rate < 1.0 and random.random() >= rate:
                return
            lines = self._lines.get((request_type, name))
            if lines is None:
                group = "derived" if is_derived(request_type) else "requests"
                lines = request_lines(self.config.prefix, str(request_type), str(name), self.config.tags, rate, group)
                self._lines[(request_type, name)] = lines
            add = self.batcher.add
            if response_time is not None:
                add(lines.timer(response_time))
            if exception is None:
                add(lines.success)
            else:
                add(lines.failure)
                add(lines.error(exception))
        except Exception:
            self.handler_errors += 1
            if self.handler_errors == 1:
                _log.exception("StatsD mirror: could not mirror a request event (logged once)")

    def run_gauges(self) -> dict[str, float]:
        """The gauges this process sends now, by name below the prefix."""
        runner = self.environment.runner
        stats = self.environment.stats.total
        gauges = {
            "run.users": float(runner.user_count if runner else 0),
            "run.rps": stats.current_rps,
            "run.fail_ratio": stats.fail_ratio,
        }
        if (master := master_runner(self.environment)) is not None:
            gauges["run.workers"] = float(master.worker_count)
        for name, value in published_gauges(self.environment).items():
            path = ".".join(sanitize_segment(part) for part in name.split("."))
            gauges[path] = value
        return gauges

    def flush(self) -> None:
        """Send pending request lines, plus the run gauges when this process owns them."""
        if self._closed:
            return
        try:
            if self.sends_gauges:
                for name, value in self.run_gauges().items():
                    for line in gauge_lines(f"{self.config.prefix}.{name}", value):
                        self.batcher.add(line)
            self.batcher.flush()
        except Exception:
            self.handler_errors += 1
            _log.exception("StatsD mirror: flush failed")

    def close(self) -> None:
        """Final flush, stop the flusher, release the socket; later events are ignored."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._listening:
            self.environment.events.request.remove_listener(self.on_request)
        if self._flusher is not None and self._flusher is not gevent.getcurrent():
            self._flusher.kill(block=False)
        self.batcher.close()

    def _flush_forever(self) -> None:
        while not self._closed:
            gevent.sleep(FLUSH_INTERVAL_SECONDS)
            self.flush()

    def _on_flush_event(self, **_: Any) -> None:
        self.flush()

    def _on_quit(self, **_: Any) -> None:
        self.close()
