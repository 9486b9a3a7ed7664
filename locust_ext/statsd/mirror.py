"""The Locust side of the StatsD mirror: flags, and a listener bound to one Environment.

Every process with users (a worker, or a local runner) sends a timer and a success/failure counter per
request event: under ``<prefix>.requests`` for operations, under ``<prefix>.derived`` for derived measurements
(:mod:`locust_ext.derived`: stream messages, pushes, keepalives, ...), so a sum over ``requests`` counts
operations, as Locust's total does. The master, or a local runner, also sends run gauges once a second (rps
and failure ratio from Locust's total), including the thresholds gate's latest grades
(:mod:`locust_ext.statsd.grades`). StatsD sums what the workers send, so nothing is counted twice. The
user's greenlet only formats lines into a buffer; a background greenlet flushes it every second, and at test
stop and quit.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locust_ext.derived import is_derived
from locust_ext.statsd.gauges import published_gauges
from locust_ext.statsd.grades import grade_gauges
from locust_ext.statsd.naming import RequestLines, TagStyle, gauge_lines, request_lines, sanitize_segment
from locust_ext.statsd.sender import DatagramBatcher, StatsdAddressError, resolve
from locust_ext.thresholds import Verdict, graded_event

__all__ = ["FLUSH_INTERVAL_SECONDS", "MirrorConfig", "StatsdMirror", "add_arguments", "on_init"]

FLUSH_INTERVAL_SECONDS = 1.0
_TAG_STYLES: tuple[TagStyle, ...] = ("none", "dogstatsd", "graphite")

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
        if self.tags not in _TAG_STYLES:
            raise ValueError(f"statsd tags {self.tags!r}: expected one of {', '.join(_TAG_STYLES)}")
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
        #: The thresholds gate's latest grades, replaced at every grading.
        self._grades: dict[str, float] = {}
        self._flusher: gevent.Greenlet | None = None
        self._closed = False
        self._listening = False

    @property
    def sends_gauges(self) -> bool:
        """Run gauges come from the master or a lone local runner, never from a worker."""
        return not isinstance(self.environment.runner, WorkerRunner)

    def start(self) -> None:
        """Listen to the Environment's events (and to the thresholds gate's gradings, when this process sends
        gauges) and start the once-a-second flusher."""
        events = self.environment.events
        if self.sends_gauges:
            graded_event(self.environment).add_listener(self._on_graded)
        if not isinstance(self.environment.runner, MasterRunner):
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
        if isinstance(runner, MasterRunner):
            gauges["run.workers"] = float(runner.worker_count)
        for name, value in published_gauges(self.environment).items():
            path = ".".join(sanitize_segment(part) for part in name.split("."))
            gauges[path] = value
        gauges.update(self._grades)
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

    def _on_graded(self, verdict: Verdict, **_: Any) -> None:
        self._grades = grade_gauges(verdict)

    def _on_flush_event(self, **_: Any) -> None:
        self.flush()

    def _on_quit(self, **_: Any) -> None:
        self.close()


def _udp_port(text: str) -> int:
    """argparse type: a UDP port one can send to."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port one can send to (1-65535)")
    return value


def _sample_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]")
    return value


def add_arguments(parser: Any, **_: Any) -> None:
    """The mirror's flags. Precedence: command line, LOCUST_STATSD_*, config file, STATSD_HOST/STATSD_PORT."""
    group = parser.add_argument_group("StatsD mirror", "send request timers/counters and run gauges to StatsD")
    group.add_argument(
        "--statsd-host",
        env_var="LOCUST_STATSD_HOST",
        default=os.environ.get("STATSD_HOST") or None,
        help="StatsD host; the mirror is off without it (also STATSD_HOST)",
    )
    group.add_argument(
        "--statsd-port",
        env_var="LOCUST_STATSD_PORT",
        type=_udp_port,
        default=os.environ.get("STATSD_PORT") or "8125",
        help="StatsD UDP port (default 8125; also STATSD_PORT)",
    )
    group.add_argument(
        "--statsd-prefix",
        env_var="LOCUST_STATSD_PREFIX",
        default="locust",
        help="first segments of every metric name (default locust)",
    )
    group.add_argument(
        "--statsd-tags",
        env_var="LOCUST_STATSD_TAGS",
        choices=_TAG_STYLES,
        default="none",
        help="none: type and name in the metric path; dogstatsd (|#k:v) or graphite (;k=v) tags instead",
    )
    group.add_argument(
        "--statsd-sample-rate",
        env_var="LOCUST_STATSD_SAMPLE_RATE",
        type=_sample_rate,
        default=1.0,
        help="fraction of request events sent, in (0, 1] (default 1.0)",
    )


def on_init(environment: Environment, **_: Any) -> None:
    """Start a mirror for this Environment when --statsd-host is set; a host that does not resolve is
    logged once and leaves the mirror off."""
    options = environment.parsed_options
    host = getattr(options, "statsd_host", None)
    if not host:
        return
    assert options is not None
    config = MirrorConfig(
        host, options.statsd_port, options.statsd_prefix, options.statsd_tags, options.statsd_sample_rate
    )
    try:
        family, address = resolve(config.host, config.port)
    except StatsdAddressError as exc:
        _log.warning("StatsD mirror off: %s", exc)
        return
    StatsdMirror(environment, config, DatagramBatcher(family, address)).start()
