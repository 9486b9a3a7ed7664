"""Start both reference backends in the background (pid and log files under run/) and stop them.

``python -m backends.control start|stop|status`` — what ``make backends`` and ``make stop`` run.
``start`` returns once both backends accept connections, or fails naming the one that did not.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from backends.common import fail
from locust_ext.testing import parse_ready_line

RUN_DIR = Path(os.environ.get("LOADTEST_RUN_DIR", "run"))


def grpc_workers() -> int:
    """gRPC backend processes: half the cores (the other half is for Locust), 1 to 4; LOADTEST_GRPC_WORKERS wins.

    One backend process answers about 5,700 SayHello calls/s per core and one Locust process makes about 9,000,
    so on a machine with cores to spare the backend gets two or more (see README, "Why this server").
    """
    configured = os.environ.get("LOADTEST_GRPC_WORKERS")
    if configured:
        return int(configured)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def ws_workers() -> int:
    """WebSocket backend processes: 1 (rooms span every connection), unless LOADTEST_WS_WORKERS says, or
    LOADTEST_WS_CONNECTIONS asks for more connections than one process's hard open-file limit holds.

    Rooms are per process (``backends.ws_workers``): size up for connection counts, not for room fan-out.
    """
    configured = os.environ.get("LOADTEST_WS_WORKERS")
    if configured:
        return int(configured)
    connections = int(os.environ.get("LOADTEST_WS_CONNECTIONS") or 0)
    if connections <= 0:
        return 1
    from backends.ws_workers import default_workers  # imports the server module: only when sizing

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return default_workers(1, connections, hard if hard != resource.RLIM_INFINITY else 1 << 20)


BACKENDS = {
    "grpc": ("backends.grpc_server", "50051", ["--workers", str(grpc_workers())]),
    "websocket": ("backends.websocket_server", "8080", ["--workers", str(ws_workers())]),
}


def _pid_file(name: str) -> Path:
    return RUN_DIR / f"{name}.pid"


def _running_pid(name: str) -> int | None:
    try:
        pid = int(_pid_file(name).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _wait_ready(name: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            ready = parse_ready_line(line)
            if ready is not None:
                return f"{ready[0]}://{ready[1]}:{ready[2]}"
        if process.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            fail(f"{name} backend exited with code {process.returncode}: {last[0]}")
        time.sleep(0.05)
    process.terminate()
    fail(f"{name} backend did not accept connections within {timeout:.0f} s; see {log}")


def start(host: str, timeout: float) -> None:
    """Start every backend not yet running; if one fails, stop them all (nothing is left half up)."""
    try:
        _start_all(host, timeout)
    except SystemExit:
        stop(timeout)
        raise


def _start_all(host: str, timeout: float) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for name, (module, port, extra) in BACKENDS.items():
        if _running_pid(name) is not None:
            print(f"{name} backend already running (pid {_running_pid(name)})")
            continue
        log = RUN_DIR / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--host", host, "--port", port, *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        _pid_file(name).write_text(str(process.pid))
        url = _wait_ready(name, process, log, timeout)
        print(f"{name} backend listening on {url} (pid {process.pid}, log {log})")


def stop(timeout: float) -> None:
    for name in BACKENDS:
        pid = _running_pid(name)
        _pid_file(name).unlink(missing_ok=True)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        print(f"{name} backend stopped (pid {pid})")


def status() -> int:
    down = 0
    for name in BACKENDS:
        pid = _running_pid(name)
        print(f"{name}: {'running, pid ' + str(pid) if pid else 'not running'}")
        down += pid is None
    return 1 if down else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backends.control", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.action == "start":
        start(args.host, args.timeout)
    elif args.action == "stop":
        stop(args.timeout)
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()
