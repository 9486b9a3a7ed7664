"""A plain Locust user named like no_host.py's gRPC user: a master that knows nothing of gRPC hosts."""

from __future__ import annotations

from locust import User, constant, task


class NoHostGrpc(User):
    wait_time = constant(1)

    @task
    def nothing(self) -> None:
        """The master never runs users; its workers run no_host.py's class of this name."""
