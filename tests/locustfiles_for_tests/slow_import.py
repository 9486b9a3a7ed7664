"""A locustfile whose import keeps the CPU busy for 1.5 s without yielding (as heavy imports do), for the
``--run-time`` test: the run must still last as long as asked."""

from __future__ import annotations

import time

from locust import User, constant, task

import locust_ext.plugin  # noqa: F401  (the suite's hooks, as a locustfile using its users has them)

_until = time.monotonic() + 1.5
while time.monotonic() < _until:  # bounded: 1.5 s
    pass


class Idle(User):
    wait_time = constant(0.5)

    @task
    def nothing(self) -> None:
        """No request: the test reads Locust's own log lines."""
