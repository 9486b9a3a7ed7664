"""What only this repository's tests share (the public test kit is locust_ext.testing)."""

from __future__ import annotations

from pathlib import Path

from backends.kit import grpc_counters
from locust_ext.testing import Backend

REPO_ROOT = Path(__file__).resolve().parent.parent
FOR_TESTS = REPO_ROOT / "tests" / "locustfiles_for_tests"


def server_calls(backend: Backend, *, reset: bool = False) -> int:
    """Calls the gRPC backend's handlers received, all methods together (before the reset, with ``reset``)."""
    return sum(method.received for method in grpc_counters(backend, reset=reset).methods.values())
