"""Shared fixtures: reference backends as real subprocesses on free loopback ports."""

from __future__ import annotations

import os

# Tests start backends (fork + exec) while gRPC calls are in flight; grpc's fork handlers are for processes that
# keep running grpc after fork, and only get in the way of an exec.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Iterator

import pytest
from locust.env import Environment

from backends.kit import running_backend
from locust_ext.testing import Backend
from locust_ext.websocket import WebSocketSession
from tests.ws_sessions import EchoUser, Recorder, open_session


@pytest.fixture(scope="module")
def grpc_backend() -> Iterator[Backend]:
    with running_backend("grpc") as backend:
        yield backend


@pytest.fixture(scope="module")
def ws_backend() -> Iterator[Backend]:
    with running_backend("websocket") as backend:
        yield backend


@pytest.fixture
def environment() -> Environment:
    """A fresh Locust environment for sessions built outside a run."""
    return Environment(user_classes=[EchoUser])


@pytest.fixture
def recorder(environment: Environment) -> Recorder:
    return Recorder(environment)


@pytest.fixture
def ws(environment: Environment, recorder: Recorder, ws_backend: Backend) -> Iterator[WebSocketSession]:
    """A WebSocketUser session connected to the reference backend (test_websocket_backend has its own ``ws``:
    a bare websocket-client connection)."""
    session = open_session(environment, ws_backend.url)
    yield session
    session.close()
