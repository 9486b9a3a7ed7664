"""Test kit: servers and Locust processes on loopback, always stopped; what Locust reported.

It knows no particular server: it starts any command that prints the ready line (``READY <scheme>
<host>:<port>``, :func:`announce_ready`) once it listens, and stops it at the end of the block. The reference
backends print it with :func:`announce_ready`, and their own helpers (``backends.kit``) are built on this kit;
the library never imports them. This module imports only the standard library, so servers can import it.

with running_server(["python", "-m", "myserver", "--port", "0"]) as server:
    done = run_locust(locust_command("locustfile.py", "--headless", "-t", "5s", "-H", server.address))
    assert done.returncode == 0
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "READY_PREFIX",
    "Backend",
    "BackendStartError",
    "announce_ready",
    "free_port",
    "json_stats",
    "locust_command",
    "parse_ready_line",
    "request_counts",
    "run_distributed",
    "run_locust",
    "running_locust",
    "running_server",
    "start_server",
    "stop_process",
]

#: The first word of the one stdout line a server prints once it accepts connections
#: (``READY grpc 127.0.0.1:50051``, ``READY ws [::1]:8080``).
READY_PREFIX = "READY"


class BackendStartError(RuntimeError):
    """The server exited or stayed silent instead of announcing that it listens."""


def announce_ready(scheme: str, host: str, port: int) -> None:
    """Print the ready line (a server calls it once it accepts connections, e.g. ``announce_ready("grpc",
    "127.0.0.1", 50051)``). Importing this module loads neither Locust nor gevent nor grpc, so any server can."""
    shown_host = f"[{host}]" if ":" in host else host
    print(f"{READY_PREFIX} {scheme} {shown_host}:{port}", flush=True)


def parse_ready_line(line: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) from a line printed by :func:`announce_ready`; None for any other line."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != READY_PREFIX:
        return None
    host, _, port = parts[2].rpartition(":")
    try:
        return parts[1], host.strip("[]"), int(port)
    except ValueError:
        return None


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """Stop a child process (a server, a Locust run): SIGTERM, then SIGKILL after ``timeout``; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class Backend:
    """A running server the kit started: what its ready line said and its process. ``kind`` is the caller's
    label for it (the reference backends use ``grpc`` and ``websocket``)."""

    kind: str
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
        """``scheme://host:port`` (``ws://...`` for a WebSocket server)."""
        return f"{self.scheme}://{self.address}"

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        return stop_process(self.process, timeout)


def _wait_for_ready_line(process: subprocess.Popen[str], timeout: float) -> tuple[tuple[str, str, int] | None, str]:
    """The ready line's parts (None if stdout closed or ``timeout`` passed first), and what the process printed
    on stdout before it: lines before the ready line (a server's own log) are skipped. Waits at most
    ``timeout`` seconds, and when stdout closed first, as long again for the process to end."""
    found: list[tuple[str, str, int]] = []
    before: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            ready = parse_ready_line(line)
            if ready is not None:
                found.append(ready)
                return
            before.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found and not reader.is_alive():
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout)  # stdout closed: it is exiting; let it finish saying why on stderr
    return (found[0] if found else None), " ".join(before)


def start_server(
    command: Sequence[str],
    *,
    kind: str = "server",
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Backend:
    """Start ``command`` (a server told to listen on port 0 or a free port) and wait for its ready line;
    ``env`` is added to this process's environment. The caller must stop it; see :func:`running_server`."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
    )
    ready, printed = _wait_for_ready_line(process, timeout)
    if ready is None:
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr = process.stderr.read() if process.stderr else ""
        raise BackendStartError(f"{' '.join(command)} did not start: {printed!r} {stderr.strip()}")
    scheme, bound_host, port = ready
    # Nobody reads stdout/stderr from here on; keep the pipes from filling up and blocking the server.
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
    return Backend(kind, scheme, bound_host, port, process)


def _drain(stream: object) -> None:
    for _ in stream:  # type: ignore[attr-defined]
        pass


@contextmanager
def running_server(
    command: Sequence[str],
    *,
    kind: str = "server",
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Iterator[Backend]:
    """Context manager around :func:`start_server` that always stops the server."""
    backend = start_server(command, kind=kind, cwd=cwd, env=env, timeout=timeout)
    try:
        yield backend
    finally:
        backend.stop()


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
    cwd: str | Path | None = None,
    timeout: float = 60.0,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a locust process to completion in ``cwd`` (default: this process's working directory) with ``env``
    added to this process's environment; output captured. Raises :class:`subprocess.TimeoutExpired` (after
    killing it) when it outlives ``timeout`` seconds."""
    return subprocess.run(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


@contextmanager
def running_locust(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A locust process in the background, output piped (read it with ``communicate``); killed at the end of the
    block if it is still running."""
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
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
    cwd: str | Path | None = None,
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
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        command = locust_command(locustfile, *master_args, *master_flags, "--expect-workers", str(workers))
        return run_locust(command, env=env, cwd=cwd, timeout=timeout)
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
