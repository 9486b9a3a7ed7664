"""WebSocketUser in real Locust processes: the example locustfile headless, connection gauges summed over
workers, and a run past the open-file limit that degrades instead of crashing."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from locust_ext.testing import (
    Backend,
    free_port,
    locust_command,
    request_counts,
    run_distributed,
    run_locust,
    running_locust,
)
from tests.support import FOR_TESTS, REPO_ROOT

RUN_TIMEOUT_S = 90  # a deadline: a loaded machine takes longer to start and stop the processes
ENV = {"PYTHONPATH": str(REPO_ROOT)}


def run(locustfile: Path, *args: str, preexec_fn: Callable[[], None] | None = None) -> CompletedProcess[str]:
    command = locust_command(locustfile, "--only-summary", *args)
    return run_locust(command, env=ENV, timeout=RUN_TIMEOUT_S, preexec_fn=preexec_fn)


def copy_example(directory: Path) -> None:
    """Copy the example locustfile: next to locustfiles/grpc.py, Locust's path entry for the folder shadows the
    grpc library."""
    for name in ("websocket.py", "_unshadow.py"):
        shutil.copy(REPO_ROOT / "locustfiles" / name, directory / name)


def test_the_example_locustfile_runs_all_four_types(ws_backend: Backend, tmp_path: Path) -> None:
    copy_example(tmp_path)
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
        env={**ENV, "WS_GAUGES_OUT": str(out), **(env or {})},
        timeout=RUN_TIMEOUT_S,
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_the_web_ui_has_a_websocket_tab_with_the_open_connections(ws_backend: Backend, tmp_path: Path) -> None:
    copy_example(tmp_path)
    web = f"http://127.0.0.1:{free_port()}"
    command = locust_command(
        tmp_path / "websocket.py", "--web-host", "127.0.0.1", "--web-port", web.rsplit(":", 1)[1],
        "--autostart", "-u", "2", "-r", "2", "-t", "20s", "--host", ws_backend.url, "WsEchoUser",
    )  # fmt: skip
    with running_locust(command, env=ENV) as locust:
        rows: list[dict[str, int]] = []
        for _ in range(100):  # until both users are connected: at most 100 polls, 0.1 s apart
            try:
                stats = json.loads(fetch(f"{web}/stats/requests"))
            except OSError:  # not listening yet
                stats = {}
            tables = {table["key"]: table["data"] for table in stats.get("extended_stats", [])}
            rows = tables.get("websocket_connections", [])
            if rows and rows[0]["open"] == 2:
                break
            time.sleep(0.1)
        page = fetch(web)
        locust.send_signal(signal.SIGTERM)
        locust.wait(30)
    assert rows == [{"open": 2, "drops": 0, "reconnects": 0}]
    template_args = json.loads(page.split("window.templateArgs = ", 1)[1].split("\n", 1)[0])
    assert {"title": "WebSocket", "key": "websocket_connections"} in template_args["extended_tabs"]
    [table] = [table for table in template_args["extended_tables"] if table["key"] == "websocket_connections"]
    assert {"key": "open", "title": "Open connections"} in table["structure"]


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
