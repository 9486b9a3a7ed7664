"""WebSocketUser in real Locust processes: the example locustfile headless, connection gauges summed over
workers, and a run past the open-file limit that degrades instead of crashing."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from locust_ext.testing import Backend

REPO_ROOT = Path(__file__).resolve().parent.parent
FOR_TESTS = REPO_ROOT / "tests" / "locustfiles_for_tests"
RUN_TIMEOUT_S = 60


def locust(locustfile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--only-summary", *args]


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, **kwargs
    )  # type: ignore[call-overload]


def stats_rows(json_file: Path) -> dict[str, dict[str, int]]:
    """(name -> requests, failures) from Locust's --json-file output."""
    rows = json.loads(json_file.with_suffix(".json").read_text())
    return {row["name"]: {"requests": row["num_requests"], "failures": row["num_failures"]} for row in rows}


def test_the_example_locustfile_runs_all_four_types(ws_backend: Backend, tmp_path: Path) -> None:
    # Run from a copy: next to locustfiles/grpc.py, Locust's path entry for the folder shadows the grpc library.
    for name in ("websocket.py", "_unshadow.py"):
        shutil.copy(REPO_ROOT / "locustfiles" / name, tmp_path / name)
    report = tmp_path / "stats"
    done = run(
        locust(
            tmp_path / "websocket.py", "--headless", "-u", "12", "-r", "12", "-t", "3s", "--stop-timeout", "2",
            "--host", ws_backend.url, "--json-file", str(report),
        )
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    rows = stats_rows(report)
    for name in ("connect", "echo", "compute", "stream", "ping", "ping frame", "push stream"):
        assert rows[name]["requests"] > 0, name
    assert rows["connect"] == {"requests": 12, "failures": 0}
    assert "WebSocket connections:" in done.stderr


def test_connection_gauges_add_up_over_a_master_and_two_workers(ws_backend: Backend, tmp_path: Path) -> None:
    out = tmp_path / "gauges.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WS_GAUGES_OUT": str(out)}
    locustfile = FOR_TESTS / "ws_user_gauges.py"
    common = ["-f", str(locustfile), "--host", ws_backend.url]
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", *common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
         "0", "--headless", "-u", "10", "-r", "10", "-t", "6s", "--expect-workers", "2", "--only-summary"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: list[subprocess.Popen[str]] = []
    try:
        port = _master_port(master)
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    *common,
                    "--worker",
                    "--master-host",
                    "127.0.0.1",
                    "--master-port",
                    str(port),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        _, stderr = master.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
            process.wait()
    highest = json.loads(out.read_text())
    assert highest["websocket.open_connections"] == 10, stderr[-2000:]
    assert highest["websocket.drops"] == 10
    assert highest["websocket.reconnects"] == 10
    assert "open, 10 drops, 10 reconnects" in stderr  # the summary line at quit


def _master_port(master: subprocess.Popen[str]) -> int:
    """Locust does not print a port chosen by the OS; read it from the master's listening socket."""
    import time

    import psutil

    for _ in range(200):
        ports = [c.laddr.port for c in psutil.Process(master.pid).net_connections("tcp") if c.status == "LISTEN"]
        if ports:
            return int(ports[0])
        time.sleep(0.05)
    raise AssertionError("the master did not start listening")


def test_past_the_open_file_limit_connects_fail_and_locust_keeps_running(ws_backend: Backend, tmp_path: Path) -> None:
    soft_limit = 200
    users = 300

    def low_limit() -> None:  # soft and hard: Locust raises a soft limit below 10,000 by itself
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit, soft_limit))

    report = tmp_path / "stats"
    done = run(
        locust(FOR_TESTS / "ws_user_idle.py", "--headless", "-u", str(users), "-r", "300", "-t", "4s",
               "--host", ws_backend.url, "--json-file", str(report)),
        preexec_fn=low_limit,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-2000:]  # failures recorded, no crash (an unhandled greenlet error is 2)
    assert f"the open-file limit {soft_limit} cannot hold {users} WebSocket users" in output
    assert "connect: open-file limit" in output
    assert "Too many open files" not in output and "Unhandled exception" not in output
    connect = stats_rows(report)["connect"]
    assert 0 < connect["requests"] - connect["failures"] < users
