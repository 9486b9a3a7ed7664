"""Users whose stop takes a known 1.5 s, after which each records one ``final`` event (and one ``start`` when it
starts); every event has a known 0.347 ms response time. Locust's master alone waits half a second for the
workers' final reports, so without locust_ext.final_reports the ``final`` events are always lost; with it,
exactly one per user started arrives. A worker also exits a known second after telling the master it quit, so
a worker forked by --processes that wrote the master's --json-file would always write it last."""

from __future__ import annotations

from typing import Any

import gevent
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

import locust_ext.plugin  # noqa: F401  (registers the suite with Locust, as taking a name from locust_ext does)

#: Longer than Locust's half second, shorter than the runs' --stop-timeout.
STOP_S = 1.5
KNOWN_MS = 0.347

#: How long a worker lingers between its quit message to the master and its exit.
LINGER_S = 1.0


@events.quitting.add_listener
def _linger(environment: Environment, **_: Any) -> None:
    # Quitting listeners fire newest first: the worker runner's own, which tells the master, comes before this.
    if isinstance(environment.runner, WorkerRunner):
        gevent.sleep(LINGER_S)


class SlowStop(User):
    wait_time = constant(0.1)

    def record(self, name: str) -> None:
        self.environment.events.request.fire(
            request_type="known", name=name, response_time=KNOWN_MS, response_length=0, exception=None, context={}
        )

    def on_start(self) -> None:
        self.record("start")

    @task
    def tick(self) -> None:
        self.record("tick")

    def on_stop(self) -> None:
        gevent.sleep(STOP_S)
        self.record("final")
