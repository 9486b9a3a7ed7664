"""Test kit: start a reference backend as a subprocess on a free loopback port, always stopped on exit.

with running_backend("grpc") as backend:
    channel = grpc.insecure_channel(backend.address)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from backends.common import parse_ready_line

__all__ = ["Backend", "BackendStartError", "running_backend", "start_backend"]

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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


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
