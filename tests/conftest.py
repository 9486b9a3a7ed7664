"""Shared fixtures: reference backends as real subprocesses on free loopback ports."""

from __future__ import annotations

import os

# Tests start backends (fork + exec) while gRPC calls are in flight; grpc's fork handlers are for processes that
# keep running grpc after fork, and only get in the way of an exec.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Iterator

import pytest

from locust_ext.testing import Backend, running_backend


@pytest.fixture(scope="module")
def grpc_backend() -> Iterator[Backend]:
    with running_backend("grpc") as backend:
        yield backend


@pytest.fixture(scope="module")
def ws_backend() -> Iterator[Backend]:
    with running_backend("websocket") as backend:
        yield backend
