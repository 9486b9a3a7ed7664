"""Generator health figures: what the health feature measures per load-generating process, and the thresholds
gate grades (``generator:`` rules).

Neutral ground, like :mod:`locust_ext.run_gauges`: :mod:`locust_ext.health` publishes each process's run figures
here (on the master, or a local runner), :mod:`locust_ext.thresholds` reads them; neither imports the other.
Also the process probes several features need (open descriptors, their limit). Standard library only at import.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

if TYPE_CHECKING:  # the thresholds model reads FIGURES: importing this module must not load Locust
    from locust.env import Environment

__all__ = [
    "FIGURES",
    "generator_figures",
    "open_fd_count",
    "open_file_limit",
    "publish_generator_figures",
]

#: Every gradable figure of one process over the run so far: name -> (unit, what it is).
FIGURES: dict[str, tuple[str, str]] = {
    "hub_lag_p50": ("ms", "median lateness of a 50 ms gevent timer: how long ready greenlets wait for the hub"),
    "hub_lag_p99": ("ms", "99th percentile of that lateness: what the worst 1 % of measured times had added"),
    "hub_lag_max": ("ms", "the longest single stall of the hub"),
    "cpu": ("%", "busiest reporting interval's CPU use of the process (100 % = one core, its ceiling)"),
    "memory_rss": ("MiB", "largest resident memory seen"),
    "memory_growth_per_min": ("KiB/min", "resident memory slope after warm-up (least squares; None under 30 s)"),
    "open_files": ("files", "most descriptors open at once (sockets included)"),
    "open_files_share": ("%", "most descriptors open at once, as a share of the soft open-file limit"),
    "greenlets": ("greenlets", "most greenlets waiting on the hub at once (its active watchers: sleeps, socket waits)"),
}

_registries: WeakKeyDictionary[Any, dict[str, dict[str, float | None]]] = WeakKeyDictionary()


def open_fd_count() -> int:
    """Descriptors this process has open now (0 where /proc/self/fd cannot be read).

    Linux 6.2 and later give the count as the directory's size (3 us); older kernels say 0 there, and the
    directory is listed instead (about 2 ms per thousand descriptors)."""
    try:
        return os.stat("/proc/self/fd").st_size or len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def open_file_limit() -> int:
    """This process's soft open-file limit."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def publish_generator_figures(environment: Environment, processes: Mapping[str, Mapping[str, float | None]]) -> None:
    """Set the run figures (:data:`FIGURES`) of every load-generating process: ``{"worker-0": {...}}``; a
    process left out is forgotten."""
    _registries[environment] = {name: dict(figures) for name, figures in processes.items()}


def generator_figures(environment: Environment) -> dict[str, dict[str, float | None]]:
    """A copy of the figures last published for ``environment``, by process name (empty before any)."""
    return {name: dict(figures) for name, figures in _registries.get(environment, {}).items()}
