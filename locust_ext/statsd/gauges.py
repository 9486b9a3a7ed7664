"""A per-Environment registry of extra gauges that the StatsD mirror sends with its run gauges.

Other features publish their numbers here without knowing whether the mirror is on:
``publish_gauge(environment, "websocket.open_connections", 812)``. The mirror sends every registered
gauge under ``<prefix>.<name>`` each flush (at least once a second), from the master or a local runner
only. Values are the latest ones set; publish on the master (aggregate worker numbers through Locust's
``worker_report`` first), since a worker's registry is never sent.
"""

from __future__ import annotations

import math
from weakref import WeakKeyDictionary

from locust.env import Environment

__all__ = ["publish_gauge", "published_gauges"]

_registries: WeakKeyDictionary[Environment, dict[str, float]] = WeakKeyDictionary()


def publish_gauge(environment: Environment, name: str, value: float) -> None:
    """Set gauge ``name`` (dot-separated segments, e.g. ``thresholds.p95_hello.grade``) to ``value``.

    Cheap and safe to call at any time, mirror on or off; a non-finite value is ignored.
    """
    number = float(value)
    if math.isfinite(number):
        _registries.setdefault(environment, {})[name] = number


def published_gauges(environment: Environment) -> dict[str, float]:
    """A copy of the gauges published for ``environment``."""
    return dict(_registries.get(environment, {}))
