"""Process-wide tuning for many users in one Locust process: Locust's default arguments built once, and Python's
cycle collector kept off the objects that live for the whole run.

Both were found holding 100,000 WebSocket connections from one 2-core machine (``scripts/ws_scale.py``), where
each alone capped the run well below its target; both help any run with thousands of users per process.
"""

from __future__ import annotations

import functools
import gc
from typing import Any

import locust.argument_parser

__all__ = ["YOUNG_COLLECTION_EVERY", "cache_default_arguments", "tune_collector"]

#: Allocations between young collections once tuned (Python's default is 700).
YOUNG_COLLECTION_EVERY = 50_000

_tuned = False


def cache_default_arguments() -> None:
    """Build Locust's default arguments once per process.

    A Locust worker rebuilds Locust's whole argument parser once per option of every spawn message it gets (a
    membership test on ``default_args_dict()`` inside a comprehension in ``WorkerRunner.handle_message``): about
    10 ms a build and a hundred options, so about a second of blocked hub per message while the master ramps.
    Locust's own defaults cannot change within a process; each caller still gets a dict of its own.
    """
    current = locust.argument_parser.default_args_dict
    if getattr(current, "built_once", False):
        return
    built = functools.cache(current)

    def default_args_dict() -> dict[str, Any]:
        return dict(built())

    default_args_dict.built_once = True  # type: ignore[attr-defined]
    locust.argument_parser.default_args_dict = default_args_dict


def tune_collector() -> None:
    """Keep the cycle collector's full collections off what was built before the run (once per process).

    Each full collection walks every tracked object, so with thousands of users' connections it blocks the hub
    for tenths of a second, and a growing heap sets one off at every quarter of growth (32 % of a worker's CPU
    in a ramp to 10,000 WebSocket connections, 42 % of the backend's). Objects that exist when the first run
    starts (imports, the locustfile, Locust itself) are moved out of collection (``gc.freeze``), and young
    collections come every :data:`YOUNG_COLLECTION_EVERY` allocations. Cycles are still collected.
    """
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 100)
