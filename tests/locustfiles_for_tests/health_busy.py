"""Generator health under test: a user whose task computes without yielding for HEALTH_BUSY_MS (default 0:
a quiet generator), then waits 10 ms. No server: the hub lag comes from the task itself."""

from __future__ import annotations

import os
import time

from locust import User, constant, task

import locust_ext.plugin  # noqa: F401  (the suite's flags and features)

BUSY_S = float(os.environ.get("HEALTH_BUSY_MS", "0")) / 1000


class BusyUser(User):
    wait_time = constant(0.01)

    @task
    def compute(self) -> None:
        start = time.perf_counter()
        deadline = start + BUSY_S
        while time.perf_counter() < deadline:
            pass
        self.environment.events.request.fire(
            request_type="busy",
            name="compute",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=None,
            context={},
        )
