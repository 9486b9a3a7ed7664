"""The reference backends as tests, benches and scripts start them: processes on a free loopback port, always
stopped, and the gRPC backend's counters.

Built on the library's generic test kit (:mod:`locust_ext.testing`), which knows no particular server. Servers
never import this module: importing it imports the library, and with it Locust and gevent.

with running_backend("grpc") as backend:
    grpc_counters(backend, reset=True)
    done = run_locust(locust_command("locustfile.py", "--headless", "-t", "5s", "-H", backend.address))
    assert grpc_counters(backend).methods["/loadtest.v1.Hello/SayHello"].received > 0
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import grpc

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import Backend, running_server

__all__ = ["REPO_ROOT", "BackendKind", "grpc_counters", "running_backend"]

BackendKind = Literal["grpc", "websocket"]
_MODULES: dict[str, str] = {"grpc": "backends.grpc_server", "websocket": "backends.websocket_server"}
#: The checkout the backends run from (``python -m backends...`` finds them there).
REPO_ROOT = Path(__file__).resolve().parent.parent


def _command(kind: BackendKind, args: Sequence[str], host: str) -> list[str]:
    return [sys.executable, "-m", _MODULES[kind], "--host", host, "--port", "0", *args]


@contextmanager
def running_backend(
    kind: BackendKind, args: Sequence[str] = (), *, host: str = "127.0.0.1", timeout: float = 20.0
) -> Iterator[Backend]:
    """A reference backend on a free port for the block; always stopped."""
    with running_server(_command(kind, args, host), kind=kind, cwd=REPO_ROOT, timeout=timeout) as backend:
        yield backend


def grpc_counters(backend: Backend, *, reset: bool = False) -> pb.Counters:
    """The gRPC backend's per-method counters from its Admin service; ``reset`` zeroes them (and returns them
    as they were), so a test counts only its own calls."""
    with grpc.insecure_channel(backend.address) as channel:
        admin = pb_grpc.AdminStub(channel)
        return admin.ResetCounters(pb.ResetCountersRequest()) if reset else admin.GetCounters(pb.GetCountersRequest())
