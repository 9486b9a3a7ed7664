"""The base of the test locustfiles' gRPC probes: a GrpcUser that stops itself after ``max_calls`` calls."""

from __future__ import annotations

from locust.exception import StopUser

from locust_ext import GrpcUser


class BoundedProbe(GrpcUser):
    abstract = True
    max_calls = 300
    timeout = 5.0
    unavailable_backoff = None  # UNAVAILABLE in these tests is injected, not a dead server

    def on_start(self) -> None:
        self.calls = 0

    def count_call(self) -> None:
        """Call before each RPC: the user stops once it has made ``max_calls``."""
        if self.calls >= self.max_calls:
            raise StopUser()
        self.calls += 1
