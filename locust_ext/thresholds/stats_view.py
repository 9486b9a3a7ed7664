"""Read Locust's own stats into :class:`Observation` rows, for the whole run or for a recent time window.

Locust keeps cumulative counters and a response-time histogram per (name, type) row; on a master they
already include every worker's requests. Percentiles are computed from that histogram, so they keep
whatever bucketing is in force (including finer, sub-millisecond buckets), never from the rounded CSV.

An Aggregated rule with ``type`` or ``exclude`` grades one row summed from the rows it keeps (Locust's
total would mix in derived sub-events such as gRPC first-message latency or WebSocket pushes).

Generator rules grade the load-generating processes' health figures instead (:func:`generator_rows`).

Windows ("p95 over the last 30 s") come from :class:`StatsHistory`: once a second it copies the
cumulative numbers of every row; a window is the current row minus the copy taken ``window`` seconds ago.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from locust.stats import RequestStats, StatsEntry, diff_response_time_dicts

from locust_ext.thresholds.grading import Observation
from locust_ext.thresholds.model import AGGREGATED, Rule

__all__ = ["StatsHistory", "generator_rows", "observe_entry", "rows_for_rule"]

_RowKey = tuple[str, str]


def observe_entry(entry: StatsEntry, *, per_second: bool = True) -> Observation:
    """A copy of one Locust stats row (the total row has request type ""); throughput spans the run (Locust's
    own req/s definition). ``per_second=False`` leaves out the per-second request table, which grows with
    the run's length."""
    stats = entry.stats
    return Observation(
        name=entry.name,
        request_type=entry.method or "",
        num_requests=entry.num_requests,
        num_failures=entry.num_failures,
        response_times=dict(entry.response_times),
        total_response_time=entry.total_response_time,
        min_response_time=entry.min_response_time,
        max_response_time=entry.max_response_time if entry.response_times else None,
        start_time=stats.start_time,
        end_time=stats.last_request_timestamp,
        requests_per_second=dict(entry.num_reqs_per_sec) if per_second else None,
    )


def _rows(stats: RequestStats) -> dict[_RowKey, StatsEntry]:
    rows: dict[_RowKey, StatsEntry] = {("", stats.total.name): stats.total}
    for (name, method), entry in list(stats.entries.items()):
        rows[(method, name)] = entry
    return rows


def _entries(stats: RequestStats, rule: Rule) -> list[StatsEntry]:
    """The Locust rows behind ``rule``: the total row for a plain Aggregated rule, else the rows it selects."""
    selector = rule.selector
    if selector.is_aggregated and not selector.sums_rows:
        return [stats.total]
    selects = selector.keeps if selector.sums_rows else selector.matches
    return [entry for (name, method), entry in list(stats.entries.items()) if selects(name, method)]


def _graded(rule: Rule, rows: list[Observation]) -> list[Observation]:
    """What ``rule`` grades of its rows: their sum when it sums rows (none without rows), else each by name."""
    if rule.selector.sums_rows:
        return [_sum(rows, rule.selector.type_label or "")] if rows else []
    return sorted(rows, key=lambda row: (row.name, row.request_type))


def _sum(rows: list[Observation], request_type: str) -> Observation:
    """One Aggregated row adding up ``rows``: counts, histograms and per-second tables added, extremes kept."""
    histogram: Counter[Any] = Counter()
    per_second: Counter[int] | None = Counter()
    for row in rows:
        histogram.update(row.response_times)
        if row.requests_per_second is None or per_second is None:
            per_second = None
        else:
            per_second.update(row.requests_per_second)
    lows = [row.min_response_time for row in rows if row.min_response_time is not None]
    highs = [row.max_response_time for row in rows if row.max_response_time is not None]
    ends = [row.end_time for row in rows if row.end_time is not None]
    return Observation(
        name=AGGREGATED,
        request_type=request_type,
        num_requests=sum(row.num_requests for row in rows),
        num_failures=sum(row.num_failures for row in rows),
        response_times=dict(histogram),
        total_response_time=sum(row.total_response_time for row in rows),
        min_response_time=min(lows) if lows else None,
        max_response_time=max(highs) if highs else None,
        start_time=min(row.start_time for row in rows),
        end_time=max(ends) if ends else None,
        requests_per_second=None if per_second is None else dict(per_second),
    )


def rows_for_rule(stats: RequestStats, rule: Rule) -> list[Observation]:
    """The rows ``rule`` grades, whole run: Locust's total row for Aggregated, the sum of the kept rows for
    Aggregated with ``type``/``exclude``, else every matching row by name."""
    return _graded(rule, [observe_entry(entry) for entry in _entries(stats, rule)])


def generator_rows(processes: Mapping[str, Mapping[str, float | None]]) -> list[Observation]:
    """One row per load-generating process (:func:`locust_ext.generator.generator_figures`), for generator rules;
    its "requests" are its hub lag samples."""
    return [
        Observation(
            name=name,
            request_type="generator",
            num_requests=int(figures.get("samples") or 0),
            num_failures=0,
            response_times={},
            total_response_time=0.0,
            min_response_time=None,
            max_response_time=None,
            start_time=0.0,
            end_time=None,
            figures=figures,
        )
        for name, figures in sorted(processes.items())
    ]


class StatsHistory:
    """Per-second copies of every row's cumulative counters, kept for ``keep_s`` seconds."""

    def __init__(self, stats: RequestStats, keep_s: float, clock: Callable[[], float] = time.time) -> None:
        self.stats = stats
        self.keep_s = keep_s
        self.clock = clock
        self._snapshots: deque[tuple[float, dict[_RowKey, Observation]]] = deque()

    def record(self) -> None:
        """Copy the current counters; drop copies older than needed for the longest window."""
        now = self.clock()
        rows = {key: observe_entry(entry, per_second=False) for key, entry in _rows(self.stats).items()}
        self._snapshots.append((now, rows))
        while len(self._snapshots) > 1 and self._snapshots[1][0] <= now - self.keep_s:
            self._snapshots.popleft()

    def rows_for_rule(self, rule: Rule, window_s: float) -> list[Observation]:
        """Like :func:`rows_for_rule`, but only what happened in the last ``window_s`` seconds
        (or since the oldest copy, when the run is younger than the window)."""
        now = self.clock()
        older_at, older = self._snapshot_before(now - window_s)
        current = [observe_entry(entry, per_second=False) for entry in _entries(self.stats, rule)]
        return _graded(rule, [_difference(row, older.get(_key(row)), older_at, now) for row in current])

    def _snapshot_before(self, moment: float) -> tuple[float, dict[_RowKey, Observation]]:
        chosen: tuple[float, dict[_RowKey, Observation]] = (self.stats.start_time, {})
        for snapshot in self._snapshots:
            if snapshot[0] > moment:
                break
            chosen = snapshot
        return chosen


def _key(row: Observation) -> _RowKey:
    return (row.request_type, row.name)


def _difference(current: Observation, older: Observation | None, older_at: float, now: float) -> Observation:
    if older is None:
        histogram: dict[Any, int] = dict(current.response_times)
        requests, failures, total = current.num_requests, current.num_failures, current.total_response_time
    else:
        histogram = diff_response_time_dicts(dict(current.response_times), dict(older.response_times))
        requests = current.num_requests - older.num_requests
        failures = current.num_failures - older.num_failures
        total = current.total_response_time - older.total_response_time
    return Observation(
        name=current.name,
        request_type=current.request_type,
        num_requests=requests,
        num_failures=failures,
        response_times=histogram,
        total_response_time=total,
        min_response_time=None,
        max_response_time=None,
        start_time=max(older_at, current.start_time),
        end_time=now,
    )
