"""What the gRPC benches share: servers started pinned to a CPU, CPU time from /proc, the grpc-js server.

Servers run as ``taskset -c CPU <command>`` so every thread they ever start stays on that CPU (pinning a
running process with ``sched_setaffinity`` moves only its main thread, not grpc's poller threads). They
announce themselves with the reference backends' ``READY <scheme> <host>:<port>`` line.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backends.common import parse_ready_line

REPO_ROOT = Path(__file__).resolve().parent.parent
LOAD_CPU = 0
SERVER_CPU = 1
GRPC_JS_PREFIX = REPO_ROOT / ".cache" / "grpc-js-server"
GRPC_JS_PACKAGES = ("@grpc/grpc-js@1.14.7", "@grpc/proto-loader@0.8.1")


def can_pin() -> bool:
    """True when there are two CPUs to split between load and server, and taskset to do it."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pinned(command: Sequence[str], cpu: int) -> list[str]:
    """``command`` prefixed with ``taskset -c cpu`` (unchanged when pinning is impossible)."""
    return ["taskset", "-c", str(cpu), *command] if can_pin() else list(command)


def placement() -> str:
    if can_pin():
        return f"load on CPU {LOAD_CPU}, server on CPU {SERVER_CPU} (taskset)"
    return "no taskset or one CPU: load and server share the machine (ratios only)"


def python_env() -> dict[str, str]:
    """Environment for Python children: the repository importable, output unbuffered."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A pinned server process and where it listens."""

    name: str
    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ready_line(stream: IO[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        return stream.readline() if selector.select(timeout) else ""


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def start_server(
    name: str, command: Sequence[str], *, cpu: int = SERVER_CPU, env: dict[str, str] | None = None, timeout: float = 30
) -> Server:
    """Start ``command`` pinned to ``cpu`` and wait for its READY line; the caller must stop it."""
    process = subprocess.Popen(
        pinned(command, cpu),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or python_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    line = _ready_line(process.stdout, timeout)
    ready = parse_ready_line(line.strip())
    if ready is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"{name}: {' '.join(command)} did not start: {line!r} {process.stderr.read().strip()}")
    # Nobody reads the pipes from here on; keep them from filling up and blocking the server.
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
    return Server(name, process, ready[1], ready[2])


def reference_backend_command() -> list[str]:
    return [sys.executable, "-m", "backends.grpc_server", "--host", "127.0.0.1", "--port", "0"]


def grpc_js_command() -> tuple[list[str], dict[str, str]] | None:
    """(command, env) for bench/grpc_js_server.js, installing its npm packages once; None (and why) if unavailable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("note: node/npm not found; skipping the @grpc/grpc-js server")
        return None
    modules = GRPC_JS_PREFIX / "node_modules"
    if not (modules / "@grpc" / "grpc-js").is_dir():
        install = [npm, "install", "--prefix", str(GRPC_JS_PREFIX), "--no-audit", "--no-fund", *GRPC_JS_PACKAGES]
        result = subprocess.run(install, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            print(f"note: npm install failed; skipping the @grpc/grpc-js server: {result.stderr.strip()[-300:]}")
            return None
    script = REPO_ROOT / "bench" / "grpc_js_server.js"
    return [node, str(script), "--host", "127.0.0.1", "--port", "0"], {**os.environ, "NODE_PATH": str(modules)}
