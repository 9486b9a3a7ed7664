"""Test kit: reference backends and Locust processes on loopback, always stopped; what they counted.

with running_backend("grpc") as backend:
    grpc_counters(backend, reset=True)
    done = run_locust(locust_command("locustfile.py", "--headless", "-t", "5s", "-H", backend.address))
    assert grpc_counters(backend).methods["/loadtest.v1.Hello/SayHello"].received > 0
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc

from backends.common import parse_ready_line, stop_process
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

__all__ = [
    "Backend",
    "BackendStartError",
    "free_port",
    "grpc_counters",
    "json_stats",
    "locust_command",
    "request_counts",
    "run_distributed",
    "run_locust",
    "running_backend",
    "running_locust",
    "start_backend",
]

BackendKind = Literal["grpc", "websocket"]
_MODULES: dict[str, str] = {"grpc": "backends.grpc_server", "websocket": "backends.websocket_server"}
_REPO_ROOT = Path(__file__).resolve().parent.parent


class BackendStartError(RuntimeError):
    """The backend exited or stayed silent instead of announcing that it listens."""


@dataclass
class Backend:
    """A running backend: where it listens and its process."""

    kind: BackendKind
    scheme: str
    host: str
    port: int
    process: subprocess.Popen[str]

    @property
    def address(self) -> str:
        """``host:port`` as gRPC targets and sockets want it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``scheme://host:port`` (``ws://...`` for the WebSocket backend)."""
        return f"{self.scheme}://{self.address}"

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        return stop_process(self.process, timeout)


def _read_ready_line(process: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        lines.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""


def start_backend(
    kind: BackendKind, args: Sequence[str] = (), *, host: str = "127.0.0.1", timeout: float = 20.0
) -> Backend:
    """Start a backend on a free port and wait until it accepts connections; the caller must stop it."""
    command = [sys.executable, "-m", _MODULES[kind], "--host", host, "--port", "0", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=_REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    line = _read_ready_line(process, timeout)
    ready = parse_ready_line(line)
    if ready is None:
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr = process.stderr.read() if process.stderr else ""
        raise BackendStartError(f"{' '.join(command)} did not start: {line!r} {stderr.strip()}")
    scheme, bound_host, port = ready
    # Nobody reads stdout/stderr from here on; keep the pipes from filling up and blocking the server.
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
    return Backend(kind, scheme, bound_host, port, process)


def _drain(stream: object) -> None:
    for _ in stream:  # type: ignore[attr-defined]
        pass


@contextmanager
def running_backend(
    kind: BackendKind, args: Sequence[str] = (), *, host: str = "127.0.0.1", timeout: float = 20.0
) -> Iterator[Backend]:
    """Context manager around :func:`start_backend` that always stops the backend."""
    backend = start_backend(kind, args, host=host, timeout=timeout)
    try:
        yield backend
    finally:
        backend.stop()


def grpc_counters(backend: Backend, *, reset: bool = False) -> pb.Counters:
    """The gRPC backend's per-method counters from its Admin service; ``reset`` zeroes them (and returns them
    as they were), so a test counts only its own calls."""
    with grpc.insecure_channel(backend.address) as channel:
        admin = pb_grpc.AdminStub(channel)
        return admin.ResetCounters(pb.ResetCountersRequest()) if reset else admin.GetCounters(pb.GetCountersRequest())


def free_port(kind: Literal["tcp", "udp"] = "tcp") -> int:
    """A loopback port that was free a moment ago (bound, then released), for servers that cannot take port 0,
    such as Locust's master, or as a UDP port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def locust_command(locustfile: str | Path, *args: str) -> list[str]:
    """``python -m locust -f locustfile *args`` with this interpreter (``locustfile`` may be comma-separated)."""
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *args]


def run_locust(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a locust process to completion with ``env`` added to this process's environment; output captured.
    Raises :class:`subprocess.TimeoutExpired` (after killing it) when it outlives ``timeout`` seconds."""
    return subprocess.run(
        list(command),
        cwd=_REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


@contextmanager
def running_locust(command: Sequence[str], *, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A locust process in the background, output piped (read it with ``communicate``); killed at the end of the
    block if it is still running."""
    process = subprocess.Popen(
        list(command),
        cwd=_REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def run_distributed(
    locustfile: str | Path,
    master_args: Sequence[str],
    *,
    worker_args: Sequence[str] = (),
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """A master plus ``workers`` worker processes on loopback; returns the master's result once it exits.

    ``master_args`` (e.g. ``--headless -u 4 -t 5s``) go to the master, which waits for every worker;
    ``worker_args`` to each worker (flags a worker reads itself, such as ``--statsd-*``; never ``--host``: the
    master sends it in its spawn message, as users run it). Workers' output is
    discarded; they are given 20 s to follow the master out, then killed.
    """
    port = str(free_port())
    worker_command = locust_command(locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", port)
    master_flags = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port]
    processes = [
        subprocess.Popen(
            [*worker_command, *worker_args],
            cwd=_REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        command = locust_command(locustfile, *master_args, *master_flags, "--expect-workers", str(workers))
        return run_locust(command, env=env, timeout=timeout)
    finally:
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def json_stats(json_stem: str | Path) -> list[dict[str, Any]]:
    """The entries of the report Locust wrote for ``--json-file json_stem`` (it appends ``.json``), at exit."""
    entries: list[dict[str, Any]] = json.loads(Path(f"{json_stem}.json").read_text())
    return entries


def request_counts(json_stem: str | Path) -> tuple[Counter[str], Counter[str]]:
    """(requests, failures) per request name from a ``--json-file`` report; ``requests.total()`` for all."""
    requests: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for entry in json_stats(json_stem):
        requests[entry["name"]] += entry["num_requests"]
        failures[entry["name"]] += entry["num_failures"]
    return requests, failures
