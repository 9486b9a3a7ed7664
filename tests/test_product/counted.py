"""Locust's request counts set against what the reference backends counted, for runs made the way users make them.

Both sides are keyed the same way: a gRPC method path (``/loadtest.v1.Echo/Echo``, the example locustfile's
``[64B]``-style size suffix dropped), or a WebSocket request type (``echo``) plus ``connect`` for connections.
Entries are Locust's stats rows as in a ``--json-file`` report or the web UI's ``/stats/requests``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from backends.kit import grpc_counters
from locust_ext.testing import Backend
from tests.ws_sessions import server_stats

#: The WebSocket user's row for connections, compared with the connections the backend opened.
_WS_CONNECT = "connect"
#: WebSocket rows that are not requests the backend counts: protocol pings, derived and late events.
_WS_NOT_REQUESTS = {"ping frame", "disconnect", "keepalive", "late reply"}


def served(backend: Backend, *, reset: bool = False) -> Counter[str]:
    """What the backend's handlers received, per key (before the reset, with ``reset``)."""
    if backend.kind == "grpc":
        counters = grpc_counters(backend, reset=reset)
        return Counter({path: method.received for path, method in counters.methods.items() if method.received})
    stats = server_stats(backend, reset=reset)
    counted = Counter({name: count for name, count in stats["requests"].items() if count})
    if stats["connections_opened"]:
        counted[_WS_CONNECT] = stats["connections_opened"]
    return counted


def made(kind: str, entries: Iterable[Mapping[str, Any]]) -> tuple[Counter[str], Counter[str]]:
    """(requests, failures) per key from Locust's stats rows of that protocol's request type; derived rows (other
    types, pushes, pings the server does not count as requests) are left out."""
    requests: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for entry in entries:
        if entry.get("method") != kind:
            continue
        name = str(entry["name"])
        key = name.split(" [", 1)[0] if kind == "grpc" else name
        if kind == "websocket" and (key in _WS_NOT_REQUESTS or key.startswith("push ")):
            continue
        requests[key] += int(entry["num_requests"])
        failures[key] += int(entry["num_failures"])
    return requests, failures


def check_counts(backend: Backend, entries: Iterable[Mapping[str, Any]], *, cut_short: int = 0) -> int:
    """Assert that every request Locust counted as a success reached the backend, and the backend saw no more
    than Locust counted (plus ``cut_short``: calls a stop may have killed before Locust recorded them).
    Returns how many requests Locust counted."""
    requests, failures = made(backend.kind, entries)
    server = served(backend)
    assert set(server) <= set(requests), f"the backend saw {sorted(server)}, Locust counted {sorted(requests)}"
    for key, total in requests.items():
        succeeded = total - failures[key]
        assert succeeded <= server[key] <= total + cut_short, (key, succeeded, server[key], total, cut_short)
    return requests.total()
