"""A GrpcUser whose CA file does not exist: refused at start-up in every process, host or no host."""

from __future__ import annotations

from locust import constant, task

from locust_ext import GrpcUser


class MissingCa(GrpcUser):
    root_certificates = "/nonexistent/ca.pem"
    wait_time = constant(1)

    @task
    def nothing(self) -> None:
        """Never runs: the class is refused before any user spawns."""
