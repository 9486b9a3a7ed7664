"""Run gauges: a per-Environment registry of numbers that features publish and the StatsD mirror sends.

Features publish without knowing whether the mirror is on: ``publish_gauge(environment,
"websocket.open_connections", 812)``. The mirror sends every published gauge under ``<prefix>.<name>`` at each
flush (at least once a second), from the master or a local runner only. Values are the latest ones set;
publish on the master (aggregate worker numbers through Locust's ``worker_report`` first), since a worker's
registry is never sent. A name is dot-separated segments; :func:`gauge_segment` makes any text one segment.
This module is neutral ground: the features that publish and the mirror that sends import it, not each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from weakref import WeakKeyDictionary

from locust.env import Environment

__all__ = ["MAX_SEGMENT_LENGTH", "gauge_segment", "publish_gauge", "publish_gauges", "published_gauges"]

#: Longest segment of a metric name; keeps every StatsD line far below one datagram.
MAX_SEGMENT_LENGTH = 120
# Dots split Graphite paths; ':', '|', '@', '#', ',' and ';' are StatsD / tag syntax; '/' and spaces are
# mangled by Graphite and the StatsD daemon. Only letters, digits, '_' and '-' survive in a path segment.
_NOT_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")

_registries: WeakKeyDictionary[Environment, dict[str, float]] = WeakKeyDictionary()


def gauge_segment(text: str) -> str:
    """One Graphite path segment: runs of anything but ``[A-Za-z0-9_-]`` become ``_``; never empty."""
    cleaned = _NOT_SEGMENT.sub("_", text).strip("_")[:MAX_SEGMENT_LENGTH]
    return cleaned or "_"


def publish_gauge(environment: Environment, name: str, value: float) -> None:
    """Set gauge ``name`` (dot-separated segments, e.g. ``websocket.open_connections``) to ``value``.

    Cheap and safe to call at any time, mirror on or off; a non-finite value is ignored.
    """
    number = float(value)
    if math.isfinite(number):
        _registries.setdefault(environment, {})[name] = number


def publish_gauges(environment: Environment, group: str, gauges: Mapping[str, float]) -> None:
    """Replace every gauge under ``group.`` with ``gauges`` (full names, each under ``group.``): a gauge the
    feature no longer has (a rule that lost its grade) stops being sent."""
    registry = _registries.setdefault(environment, {})
    for name in [name for name in registry if name.startswith(f"{group}.")]:
        del registry[name]
    for name, value in gauges.items():
        publish_gauge(environment, name, value)


def published_gauges(environment: Environment) -> dict[str, float]:
    """A copy of the gauges published for ``environment``."""
    return dict(_registries.get(environment, {}))
