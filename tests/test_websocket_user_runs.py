"""WebSocketUser in real Locust processes: the example locustfile headless, connection gauges summed over
workers, and a run past the open-file limit that degrades instead of crashing."""

from __future__ import annotations

import json
import resource
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from locust_ext.testing import Backend, locust_command, request_counts, run_distributed, run_locust
from tests.support import FOR_TESTS, REPO_ROOT

RUN_TIMEOUT_S = 60
ENV = {"PYTHONPATH": str(REPO_ROOT)}


def run(locustfile: Path, *args: str, preexec_fn: Callable[[], None] | None = None) -> CompletedProcess[str]:
    command = locust_command(locustfile, "--only-summary", *args)
    return run_locust(command, env=ENV, timeout=RUN_TIMEOUT_S, preexec_fn=preexec_fn)


def test_the_example_locustfile_runs_all_four_types(ws_backend: Backend, tmp_path: Path) -> None:
    # Run from a copy: next to locustfiles/grpc.py, Locust's path entry for the folder shadows the grpc library.
    for name in ("websocket.py", "_unshadow.py"):
        shutil.copy(REPO_ROOT / "locustfiles" / name, tmp_path / name)
    report = tmp_path / "stats"
    done = run(
        tmp_path / "websocket.py", "--headless", "-u", "12", "-r", "12", "-t", "3s", "--stop-timeout", "2",
        "--host", ws_backend.url, "--json-file", str(report),
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    requests, failures = request_counts(report)
    for name in ("connect", "echo", "compute", "stream", "ping", "ping frame", "push stream"):
        assert requests[name] > 0, name
    assert (requests["connect"], failures["connect"]) == (12, 0)
    assert "WebSocket connections:" in done.stderr


def run_gauges(host: str, out: Path, seconds: int, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    """A master and two workers running ws_user_gauges.py for ``seconds``; the gauges end up in ``out``."""
    return run_distributed(
        FOR_TESTS / "ws_user_gauges.py",
        ["--headless", "-u", "10", "-r", "10", "-t", f"{seconds}s", "--only-summary", "--host", host],
        worker_args=["--host", host],
        env={**ENV, "WS_GAUGES_OUT": str(out), **(env or {})},
        timeout=RUN_TIMEOUT_S,
    )


def test_connection_gauges_add_up_over_a_master_and_two_workers(ws_backend: Backend, tmp_path: Path) -> None:
    out = tmp_path / "gauges.json"
    master = run_gauges(ws_backend.url, out, 6)
    gauges = json.loads(out.read_text())
    highest, final = gauges["highest"], gauges["final"]
    assert highest["websocket.open_connections"] == 10, master.stderr[-2000:]
    assert highest["websocket.drops"] == 10
    assert highest["websocket.reconnects"] == 10
    assert final == {"websocket.open_connections": 0, "websocket.drops": 10, "websocket.reconnects": 10}
    assert "0 open, 10 drops, 10 reconnects" in master.stderr  # the summary line at quit


def test_a_vanished_workers_connections_leave_the_open_gauge(ws_backend: Backend, tmp_path: Path) -> None:
    out = tmp_path / "gauges.json"
    # Worker 1 dies 4 s in (after its first report, 3 s in) without a last one; the master finds it missing
    # about 4 s later.
    master = run_gauges(ws_backend.url, out, 12, {"WS_GAUGES_KILL_AFTER_S": "4"})
    gauges = json.loads(out.read_text())
    assert gauges["highest"]["websocket.open_connections"] == 10, master.stderr[-2000:]
    assert gauges["final"]["websocket.open_connections"] == 0
    assert "failed to send heartbeat" in master.stderr


def test_past_the_open_file_limit_connects_fail_and_locust_keeps_running(ws_backend: Backend, tmp_path: Path) -> None:
    soft_limit = 200
    users = 300

    def low_limit() -> None:  # soft and hard: Locust raises a soft limit below 10,000 by itself
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit, soft_limit))

    report = tmp_path / "stats"
    done = run(
        FOR_TESTS / "ws_user_idle.py", "--headless", "-u", str(users), "-r", "300", "-t", "4s",
        "--host", ws_backend.url, "--json-file", str(report), preexec_fn=low_limit,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-2000:]  # failures recorded, no crash (an unhandled greenlet error is 2)
    assert f"the open-file limit {soft_limit} cannot hold {users} WebSocket users" in output
    assert "connect: open-file limit" in output
    assert "Too many open files" not in output and "Unhandled exception" not in output
    requests, failures = request_counts(report)
    assert 0 < requests["connect"] - failures["connect"] < users
