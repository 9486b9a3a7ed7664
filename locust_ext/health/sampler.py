"""One process's health, sampled cheaply: gevent hub lag, CPU, resident memory, open files, greenlets.

Hub lag is how late a 50 ms gevent timer fires. A greenlet that computes without yielding (a CPU-bound task,
a big JSON parse, a hub with more ready greenlets than one core can run) holds every other greenlet back by
that much, and every response time measured meanwhile grows by it: the lag is the generator's own share of
the numbers. The sampler wakes 20 times a second to measure it, and once a second reads the rest: CPU time
(``time.process_time``), resident memory (``/proc/self/statm``), open descriptors (``/proc/self/fd``) and the
hub's active watchers, which is how greenlets are counted: every greenlet blocked in a sleep, a socket wait or
a timeout holds one (counting greenlet objects with the garbage collector stalls the hub for tens of ms).

:meth:`HealthSampler.report` gives the current reporting interval's figures (``live``, then a new interval
starts) and the run's (``run``, the :data:`locust_ext.generator.FIGURES`), both plain dicts for a worker report.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from typing import Any

import gevent
import psutil

from locust_ext.generator import open_fd_count, open_file_limit

__all__ = ["LAG_INTERVAL_S", "TICK_S", "HealthSampler", "percentile", "slope_per_min"]

#: How often the lag timer is set; how often the slower probes run.
LAG_INTERVAL_S = 0.05
TICK_S = 1.0
#: Resident memory before this share of the run (at most ``_WARMUP_MAX_S``) is warm-up, left out of the slope;
#: the slope needs ``_SLOPE_MIN_S`` of samples after it.
_WARMUP_SHARE = 1 / 3
_WARMUP_MAX_S = 120.0
_SLOPE_MIN_S = 30.0
#: Memory samples kept (one a second; halved, every other one kept, when full): a long run stays small.
_MEMORY_SAMPLES = 3600
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def percentile(histogram: Counter[float], share: float) -> float | None:
    """The value below which ``share`` of the counted values fall (None for an empty histogram)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, round(total * share))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def slope_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, bytes) samples, in KiB per minute."""
    count = len(samples)
    mean_t = sum(t for t, _ in samples) / count
    mean_v = sum(v for _, v in samples) / count
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return covariance / spread * 60 / 1024


def _bucket(lag_ms: float) -> float:
    """Two significant digits (0.1 ms steps below 10 ms, 1 ms below 100): a bounded histogram."""
    if lag_ms < 10:
        return round(lag_ms, 1)
    if lag_ms < 100:
        return float(round(lag_ms))
    return float(round(lag_ms, -1))


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return int(psutil.Process().memory_info().rss)


class HealthSampler:
    """Samples this process while started; ``reset`` at a test's start begins the run's figures anew."""

    def __init__(self) -> None:
        self._greenlet: gevent.Greenlet | None = None
        self.reset()
        #: Whether a test is running: only then do the run's figures grow (start-up and the stop's own work
        #: stall the hub too, when no response time is being measured).
        self.measuring = False

    def reset(self) -> None:
        """Forget the run so far and measure a new one (a test starts); the current values stay."""
        self.measuring = True
        now = time.monotonic()
        self.run_lag: Counter[float] = Counter()
        self.interval_lag: Counter[float] = Counter()
        self.run_lag_max = 0.0
        self.interval_lag_max = 0.0
        self.run_started = now
        self.memory: deque[tuple[float, int]] = deque()
        self._memory_step = 1
        self._memory_skip = 0
        self.cpu_peak = 0.0
        self.cpu = 0.0
        self._cpu_mark = (now, time.process_time())
        self.rss = self.rss_peak = _rss()
        self.open_files = self.open_files_peak = open_fd_count()
        self.open_files_limit = open_file_limit()
        self.greenlets = self.greenlets_peak = self._watchers()

    def end_run(self) -> None:
        """The test stopped: the run's figures stay as they are (reports still carry them)."""
        self.measuring = False

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _loop(self) -> None:
        next_tick = time.monotonic() + TICK_S
        while True:
            before = time.perf_counter()
            gevent.sleep(LAG_INTERVAL_S)
            self.record_lag(max(0.0, (time.perf_counter() - before - LAG_INTERVAL_S) * 1000))
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_S
                self.tick()

    def record_lag(self, lag_ms: float) -> None:
        bucket = _bucket(lag_ms)
        self.interval_lag[bucket] += 1
        self.interval_lag_max = max(self.interval_lag_max, lag_ms)
        if self.measuring:
            self.run_lag[bucket] += 1
            self.run_lag_max = max(self.run_lag_max, lag_ms)

    @staticmethod
    def _watchers() -> int:
        return int(getattr(gevent.get_hub().loop, "activecnt", 0))

    def tick(self) -> None:
        """The once-a-second probes: memory, descriptors, greenlets (peaks kept)."""
        self.rss = _rss()
        self.open_files = open_fd_count()
        self.greenlets = self._watchers()
        if not self.measuring:
            return
        self.rss_peak = max(self.rss_peak, self.rss)
        self.open_files_peak = max(self.open_files_peak, self.open_files)
        self.greenlets_peak = max(self.greenlets_peak, self.greenlets)
        self._memory_skip += 1
        if self._memory_skip >= self._memory_step:
            self._memory_skip = 0
            self.memory.append((time.monotonic(), self.rss))
            if len(self.memory) >= _MEMORY_SAMPLES:
                self.memory = deque(list(self.memory)[::2])
                self._memory_step *= 2

    def memory_growth_per_min(self) -> float | None:
        """Resident memory slope after warm-up, KiB/min; None until enough of the run is past warm-up."""
        if not self.memory:
            return None
        elapsed = self.memory[-1][0] - self.run_started
        warm_until = self.run_started + min(_WARMUP_MAX_S, elapsed * _WARMUP_SHARE)
        kept = [(t, rss) for t, rss in self.memory if t >= warm_until]
        if len(kept) < 2 or kept[-1][0] - kept[0][0] < _SLOPE_MIN_S:
            return None
        return slope_per_min(kept)

    def _take_cpu(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        if now - then > 0.2:
            self.cpu = 100.0 * (cpu - cpu_then) / (now - then)
            if self.measuring:
                self.cpu_peak = max(self.cpu_peak, self.cpu)
        return self.cpu

    def report(self) -> dict[str, Any]:
        """``{"live": this interval's figures, "run": the run's, "samples": lag samples in the run}``; a new
        interval starts."""
        cpu = self._take_cpu()
        share = 100.0 * self.open_files / self.open_files_limit if self.open_files_limit > 0 else None
        peak_share = 100.0 * self.open_files_peak / self.open_files_limit if self.open_files_limit > 0 else None
        live = {
            "hub_lag_p50": percentile(self.interval_lag, 0.5),
            "hub_lag_p99": percentile(self.interval_lag, 0.99),
            "hub_lag_max": self.interval_lag_max if self.interval_lag else None,
            "cpu": cpu,
            "memory_rss": self.rss / 2**20,
            "open_files": float(self.open_files),
            "open_files_limit": float(self.open_files_limit),
            "open_files_share": share,
            "greenlets": float(self.greenlets),
        }
        run = {
            "hub_lag_p50": percentile(self.run_lag, 0.5),
            "hub_lag_p99": percentile(self.run_lag, 0.99),
            "hub_lag_max": self.run_lag_max if self.run_lag else None,
            "cpu": self.cpu_peak,
            "memory_rss": self.rss_peak / 2**20,
            "memory_growth_per_min": self.memory_growth_per_min(),
            "open_files": float(self.open_files_peak),
            "open_files_share": peak_share,
            "greenlets": float(self.greenlets_peak),
        }
        self.interval_lag = Counter()
        self.interval_lag_max = 0.0
        return {"live": live, "run": run, "samples": sum(self.run_lag.values())}
