"""Users whose stop takes a known 1.5 s, after which each records one ``final`` event (and one ``start`` when it
starts); every event has a known 0.347 ms response time. Locust's master alone waits half a second for the
workers' final reports, so without locust_ext.final_reports the ``final`` events are always lost; with it,
exactly one per user started arrives."""

from __future__ import annotations

import gevent
from locust import User, constant, task

import locust_ext.plugin  # noqa: F401  (registers the suite with Locust, as taking a name from locust_ext does)

#: Longer than Locust's half second, shorter than the runs' --stop-timeout.
STOP_S = 1.5
KNOWN_MS = 0.347


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
