"""The one place that registers the suite with Locust: importing this module registers it, once per process.

Each feature keeps its Locust wiring in a ``locust_hooks`` module that offers ``add_arguments(parser)`` (its
flags, in a named group, each with ``env_var``) and ``on_init(environment, **kwargs)`` (binds its listener
objects to that one Environment, and sets what the process needs from its flags). Registration adds each of
those as a listener of Locust's ``init_command_line_parser`` and ``init`` events, in the order below.

What happens at import, and why it cannot wait for ``init`` (this list is the whole of it):

1. Importing this module registers those listeners (two per feature), and one more ``init`` listener after
   them that brings gevent's loop clock up to date for Locust's ``--run-time`` timer. Locust parses the
   command line right after it imports the locustfile, so the suite's flags must be known by then; the
   locustfile's imports are the only code that runs in between. A locustfile triggers it by importing any
   name from ``locust_ext`` (``from locust_ext import GrpcUser``), the user packages ``locust_ext.grpc`` or
   ``locust_ext.websocket``, or this module itself (``import locust_ext.plugin``: Locust's own users with the
   suite's flags).
2. Importing ``locust_ext.grpc`` (which registering the suite does, for the gRPC wiring) switches grpc to
   gevent (:mod:`locust_ext.grpc.gevent_support`): grpc requires it before any grpc object exists, and every
   gRPC module of the suite is imported through that package.
3. The first :func:`locust_ext.derived.register_derived` (made when the gRPC or WebSocket user modules are
   imported) wraps ``RequestStats.log_request`` / ``log_error`` once per process, so derived measurements stay
   out of Locust's total also in an Environment built in code, where no ``init`` fires.
4. Importing ``locust_ext.websocket.frames`` registers an ``os.register_at_fork`` hook that empties the
   mask-key pool in a forked child (``--processes`` workers must not send the parent's keys); it has to exist
   before any fork.

Importing Locust itself patches the standard library with gevent; that is Locust's doing, and the suite
imports it only where it uses it. Everything else happens at ``init``, per Environment: listener objects,
flag checks (exit 2 before load), and the process-wide settings a flag gives (a Locust process has one
Environment): latency buckets (Locust's bucket function is process-wide), the WebSocket descriptor reserve (the
open-file limit is the process's) and the default gRPC transport. Once a run with ``--iteration-limit`` or
the open model starts, :mod:`locust_ext.iterations` wraps ``TaskSet.execute_task`` (once per process, a no-op
for Environments without iteration controllers: Locust has no iteration event), that Environment's
``events.request.fire`` (open model: latency from the intended start) and each of its users' ``wait_time``
(open model: the schedule paces them). ``import locust_ext.thresholds`` (a report tool) and the other library
packages register nothing and leave grpc alone (``tests/test_product/test_import_effects.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

import gevent
from locust import events

__all__ = ["FEATURES", "register"]

#: Every feature's Locust wiring, in registration order.
FEATURES: tuple[str, ...] = (
    # Latency buckets (--latency-buckets) and host checks: the features that are single top-level modules.
    "locust_ext.locust_hooks",
    # StatsD mirror: --statsd-* flags; request timers/counters and run gauges to StatsD.
    "locust_ext.statsd.locust_hooks",
    # Thresholds gate: --thresholds* flags; validation before load, live grading, exit code at quitting.
    "locust_ext.thresholds.locust_hooks",
    # WebSocket users: --ws-fd-reserve; connection gauges, console and web UI.
    "locust_ext.websocket.locust_hooks",
    # gRPC users: --grpc-transport (native, the default, or grpcio) for GrpcUser classes that set no transport.
    "locust_ext.grpc.locust_hooks",
    # Load shapes: --stages / --shape build the run's LoadTestShape (checked before load, web UI parameters).
    "locust_ext.shapes.locust_hooks",
    # Iterations: --iteration-limit (exact count) and the open model (--arrival-rate / --arrival-stages).
    "locust_ext.iterations.locust_hooks",
    # Generator health: --generator-report; hub lag, CPU, memory, files, greenlets per process (web UI, StatsD).
    "locust_ext.health.locust_hooks",
)

_registered = False


def register() -> None:
    """Hook every feature into Locust's events; calling it again does nothing."""
    global _registered
    if _registered:
        return
    _registered = True
    for name in FEATURES:
        hooks = importlib.import_module(name)
        events.init_command_line_parser.add_listener(hooks.add_arguments)
        events.init.add_listener(hooks.on_init)
    events.init.add_listener(_bring_loop_clock_up_to_date)


def _bring_loop_clock_up_to_date(**_kwargs: Any) -> None:
    """Make ``--run-time`` last as long as asked. Locust sets its timer right after ``init`` from gevent's cached
    loop time, which stood still since the hub last ran, before the locustfile's imports: runs ended that much
    early (up to 2 s seen). After every feature's ``init`` work; a locustfile's own slow ``init`` still counts."""
    gevent.get_hub().loop.update_now()


register()
