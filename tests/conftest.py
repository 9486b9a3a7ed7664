"""Shared fixtures: reference backends as real subprocesses on free loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys

# Tests start backends (fork + exec) while gRPC calls are in flight; grpc's fork handlers are for processes that
# keep running grpc after fork, and only get in the way of an exec.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest
from locust.env import Environment

from backends.kit import running_backend
from locust_ext.testing import Backend
from locust_ext.websocket import WebSocketSession
from tests.support import REPO_ROOT
from tests.ws_sessions import EchoUser, Recorder, open_session


@pytest.fixture(scope="module")
def grpc_backend() -> Iterator[Backend]:
    with running_backend("grpc") as backend:
        yield backend


@pytest.fixture(scope="module")
def ws_backend() -> Iterator[Backend]:
    with running_backend("websocket") as backend:
        yield backend


@pytest.fixture(scope="module")
def dark_backend() -> Iterator[Backend]:
    """The reference gRPC backend without server reflection (calls need .proto files or a protoset)."""
    with running_backend("grpc", ["--no-reflection"]) as backend:
        yield backend


@pytest.fixture(scope="module")
def protoset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FileDescriptorSet of loadtest.proto, built as users build one (protoc --include_imports)."""
    out = tmp_path_factory.mktemp("protoset") / "loadtest.pb"
    command = [sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"--descriptor_set_out={out}"]
    subprocess.run([*command, "--include_imports", "loadtest/v1/loadtest.proto"], check=True, cwd=REPO_ROOT)
    return out


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
