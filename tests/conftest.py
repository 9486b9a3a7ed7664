"""Shared fixtures: reference backends as real subprocesses on free loopback ports."""

from __future__ import annotations

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
