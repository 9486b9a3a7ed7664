"""Read Locust's own stats into :class:`Observation` rows, for the whole run or for a recent time window.

Locust keeps cumulative counters and a response-time histogram per (name, type) row; on a master they
already include every worker's requests. Percentiles are computed from that histogram, so they keep
whatever bucketing is in force (including finer, sub-millisecond buckets), never from the rounded CSV.

Windows ("p95 over the last 30 s") come from :class:`StatsHistory`: once a second it copies the
cumulative numbers of every row; a window is the current row minus the copy taken ``window`` seconds ago.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from locust.stats import RequestStats, StatsEntry, diff_response_time_dicts

from locust_ext.thresholds.grading import Observation
from locust_ext.thresholds.model import Rule

__all__ = ["StatsHistory", "observe_entry", "rows_for_rule"]

_RowKey = tuple[str, str]


def observe_entry(entry: StatsEntry, *, request_type: str | None = None, per_second: bool = True) -> Observation:
    """A copy of one Locust stats row; throughput spans the run (Locust's own req/s definition).

    ``per_second=False`` leaves out the per-second request table, which grows with the run's length."""
    stats = entry.stats
    return Observation(
        name=entry.name,
        request_type=entry.method if request_type is None else request_type,
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


def rows_for_rule(stats: RequestStats, rule: Rule) -> list[Observation]:
    """The rows ``rule`` grades, whole run: the total row for Aggregated, else every matching row by name."""
    if rule.selector.is_aggregated:
        return [observe_entry(stats.total, request_type="")]
    matched = [
        observe_entry(entry)
        for (name, method), entry in list(stats.entries.items())
        if rule.selector.matches(name, method)
    ]
    return sorted(matched, key=lambda row: (row.name, row.request_type))


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
        rows = {key: _counters_only(entry) for key, entry in _rows(self.stats).items()}
        self._snapshots.append((now, rows))
        while len(self._snapshots) > 1 and self._snapshots[1][0] <= now - self.keep_s:
            self._snapshots.popleft()

    def rows_for_rule(self, rule: Rule, window_s: float) -> list[Observation]:
        """Like :func:`rows_for_rule`, but only what happened in the last ``window_s`` seconds
        (or since the oldest copy, when the run is younger than the window)."""
        now = self.clock()
        older_at, older = self._snapshot_before(now - window_s)
        return [
            _difference(current, older.get(_key(current)), older_at, now) for current in rows_for_rule(self.stats, rule)
        ]

    def _snapshot_before(self, moment: float) -> tuple[float, dict[_RowKey, Observation]]:
        chosen: tuple[float, dict[_RowKey, Observation]] = (self.stats.start_time, {})
        for snapshot in self._snapshots:
            if snapshot[0] > moment:
                break
            chosen = snapshot
        return chosen


def _key(row: Observation) -> _RowKey:
    return (row.request_type, row.name)


def _counters_only(entry: StatsEntry) -> Observation:
    return observe_entry(entry, request_type="" if entry is entry.stats.total else None, per_second=False)


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
