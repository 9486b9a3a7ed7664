"""Measurements that are not operations: request types kept out of Locust's total.

Some request events measure part of an operation or something that happened to it, not an operation a user
made: a stream's first message, each message's latency or round trip, a server push, a keepalive ping, a
dropped connection's lifetime. Each keeps its own row in Locust's stats table, but counted in Locust's total
(the Aggregated row, requests/s, the failure ratio, the charts' per-second history) they would make one bidi
call with 100 replies look like 102 requests. So every process that logs requests skips the total for the
request types registered here.

Locust's ``RequestStats.log_request`` / ``log_error`` update ``total`` and the row; the first
:func:`register_derived` wraps them, once per process, so a derived type updates its row only. That happens
when a module that fires derived events is imported (the gRPC and WebSocket users register theirs then), not
at Locust's ``init``: an Environment built in code, with no ``init`` fired, must leave them out too, and
Locust has no per-Environment hook for it. Nothing is wrapped in a process that registers none. A worker's
``stats_total`` then leaves derived types out, and the master builds its total from the workers' totals, so
local, ``--processes`` and distributed runs agree. Two things a derived event still does:

* it moves the total's last-activity clock (``last_request_timestamp``, with the per-second response-time
  snapshot Locust takes when the second changes), which Locust uses as "now" for every row's current
  requests/s and the report's end time: an idle connection that only sends keepalives must not freeze the
  keepalive row's rate at the time of the last request;
* its failures stay in Locust's failures table (``stats.errors``), so ``--exit-code-on-error`` still
  reports a dropped connection or an error push, while the Aggregated failure ratio counts failed operations
  only.
"""

from __future__ import annotations

import time

from locust.stats import RequestStats, StatsEntry, StatsError

__all__ = ["derived_request_types", "is_derived", "register_derived"]

_derived: set[str] = set()

_locust_log_request = RequestStats.log_request
_locust_log_error = RequestStats.log_error


def register_derived(*request_types: str) -> None:
    """Keep these request types out of Locust's total (their rows stay); for your own derived events too."""
    for request_type in request_types:
        if not isinstance(request_type, str) or not request_type:
            raise ValueError(f"request type {request_type!r}: expected a non-empty string")
        _derived.add(request_type)
    install()


def is_derived(request_type: str) -> bool:
    """True when ``request_type`` is kept out of Locust's total."""
    return request_type in _derived


def derived_request_types() -> frozenset[str]:
    """Every request type registered as derived so far."""
    return frozenset(_derived)


def _advance_clock(total: StatsEntry) -> None:
    """What ``StatsEntry.log`` does to the total's clock, without counting a request."""
    now = time.time()
    last = total.last_request_timestamp
    if total.use_response_times_cache and last and int(now) > int(last):
        total._cache_response_times(int(now) - 1)
    total.last_request_timestamp = now


def _log_request(self: RequestStats, method: str, name: str, response_time: int, content_length: int) -> None:
    if method not in _derived:
        _locust_log_request(self, method, name, response_time, content_length)
        return
    _advance_clock(self.total)
    self.entries[(name, method)].log(response_time, content_length)


def _log_error(self: RequestStats, method: str, name: str, error: Exception | str | None) -> None:
    if method not in _derived:
        _locust_log_error(self, method, name, error)
        return
    self.entries[(name, method)].log_error(error)
    key = StatsError.create_key(method, name, error)
    entry = self.errors.get(key)
    if entry is None:
        entry = self.errors[key] = StatsError(method, name, error)
    entry.occurred()


def install() -> None:
    """Make every ``RequestStats`` leave derived request types out of its total; calling it again does nothing."""
    RequestStats.log_request = _log_request  # type: ignore[method-assign]
    RequestStats.log_error = _log_error  # type: ignore[method-assign]
