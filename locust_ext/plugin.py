"""The one place that registers the suite's CLI flags and listeners with Locust, once per process.

Each feature module offers ``add_arguments(parser)`` (its flags, in a named group, each with ``env_var``)
and ``on_init(environment, **kwargs)`` (binds its listener objects to that one Environment).
Importing ``locust_ext`` calls :func:`register`, so a locustfile needs nothing more than its imports.
"""

from __future__ import annotations

from collections.abc import Callable

from locust import events

__all__ = ["register"]

_registered = False


def _features() -> list[tuple[Callable[..., None], Callable[..., None]]]:
    """(add_arguments, on_init) of every feature, in registration order."""
    features: list[tuple[Callable[..., None], Callable[..., None]]] = []
    # FEATURES: one block per feature module below; keep each feature's lines together.
    # Latency resolution: sub-millisecond histogram buckets (--latency-buckets).
    from locust_ext import latency

    features.append((latency.add_arguments, latency.on_init))
    # Host checks: every suite user class's settings at start-up, its host when the run's host is known.
    from locust_ext import host_check

    features.append((host_check.add_arguments, host_check.on_init))
    # StatsD mirror: --statsd-* flags; request timers/counters and run gauges to StatsD.
    from locust_ext import statsd

    features.append((statsd.add_arguments, statsd.on_init))
    # Thresholds gate: --thresholds* flags; validation before load, live grading, exit code at quitting.
    from locust_ext.thresholds import locust_hooks as thresholds

    features.append((thresholds.add_arguments, thresholds.on_init))
    # WebSocket users: --ws-fd-reserve; user-class checks before load, connection gauges, console and web UI.
    from locust_ext import websocket

    features.append((websocket.add_arguments, websocket.on_init))
    # Load shapes: --stages / --shape build the run's LoadTestShape (checked before load, web UI parameters).
    from locust_ext import shapes

    features.append((shapes.add_arguments, shapes.on_init))
    # Iterations: --iteration-limit (exact count) and the open model (--arrival-rate / --arrival-stages).
    from locust_ext import iterations

    features.append((iterations.add_arguments, iterations.on_init))
    return features


def register() -> None:
    """Hook every feature into Locust's events; calling it again does nothing."""
    global _registered
    if _registered:
        return
    _registered = True
    from locust_ext import derived, latency

    latency.install()
    derived.install()  # derived measurements (stream messages, pushes, keepalives) kept out of Locust's total
    for add_arguments, on_init in _features():
        events.init_command_line_parser.add_listener(add_arguments)
        events.init.add_listener(on_init)
