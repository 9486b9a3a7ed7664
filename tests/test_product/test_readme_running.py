"""The README's "Running it" commands, run as written against the reference backends.

Only ports change: the backends listen on free ports (their addresses replace ``127.0.0.1:50051`` and
``ws://127.0.0.1:8080`` in the text), and Locust's own environment variables move the web UI and master ports.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from locust_ext.testing import Backend, free_port, json_stats
from tests.support import REPO_ROOT, server_calls
from tests.ws_sessions import server_stats

RUN_TIMEOUT_S = 90
README = REPO_ROOT / "README.md"


def readme_blocks() -> dict[str, list[str]]:
    """The command lines of each fenced block in "Running it", keyed by the bold label above the block."""
    text = README.read_text()
    section = text.split("\n## Running it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^\*\*([^*]+)\*\*.*?^```\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    return {label: [line for line in body.splitlines() if line.strip()] for label, body in blocks}


def with_backend_ports(line: str, grpc_backend: Backend, ws_backend: Backend) -> list[str]:
    line = line.replace("ws://127.0.0.1:8080", ws_backend.url).replace("127.0.0.1:50051", grpc_backend.address)
    return shlex.split(line)


def locust_env(tmp_path: Path, name: str, **ports: int | str) -> dict[str, str]:
    """This interpreter's ``locust`` first on PATH; free ports through Locust's env vars; exact counts in a JSON
    file named by a ``~/.locust.conf`` in a home of the test's own (``--json-file`` has no env var)."""
    home = tmp_path / f"home-{name}"
    home.mkdir()
    (home / ".locust.conf").write_text(f"json-file = {tmp_path / name}\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    env["LOCUST_WEB_HOST"] = "127.0.0.1"
    env.update({f"LOCUST_{key.upper()}": str(value) for key, value in ports.items()})
    return env


@contextmanager
def started(command: list[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def grpc_calls_recorded(stem: Path) -> int:
    return sum(entry["num_requests"] for entry in json_stats(stem) if entry["method"] == "grpc")


def test_the_section_lists_the_commands_these_tests_run() -> None:
    blocks = readme_blocks()
    assert list(blocks) == ["Headless", "Web UI", "Distributed", "Several cores of one machine"]
    assert all(line.startswith("locust -f locustfiles/") for lines in blocks.values() for line in lines)


def test_headless_runs(grpc_backend: Backend, ws_backend: Backend, tmp_path: Path) -> None:
    grpc_line, ws_line = readme_blocks()["Headless"]
    server_calls(grpc_backend, reset=True)
    command = with_backend_ports(grpc_line, grpc_backend, ws_backend)
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=locust_env(tmp_path, "grpc"), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode in (0, 3), done.stderr[-2000:]
    assert "Thresholds" in done.stderr + done.stdout
    assert grpc_calls_recorded(tmp_path / "grpc") == server_calls(grpc_backend) > 0

    server_stats(ws_backend, reset=True)
    command = with_backend_ports(ws_line, grpc_backend, ws_backend)
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=locust_env(tmp_path, "ws"), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode in (0, 3), done.stderr[-2000:]
    echoes = sum(e["num_requests"] for e in json_stats(tmp_path / "ws") if e["name"] == "echo")
    assert echoes == server_stats(ws_backend)["requests"].get("echo", 0) > 0


def _post(url: str, form: Mapping[str, str] | None = None) -> dict[str, object]:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
        reply: dict[str, object] = json.loads(response.read() or b"{}")
    return reply


def _wait_for(condition: object, what: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if callable(condition) and condition():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_web_ui_takes_the_host_from_its_form(grpc_backend: Backend, ws_backend: Backend, tmp_path: Path) -> None:
    """The form's fields as the page posts them; tests/test_product/test_webui_browser.py types them into the real
    page."""
    (line,) = readme_blocks()["Web UI"]
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    server_calls(grpc_backend, reset=True)
    env = locust_env(tmp_path, "webui", web_port=web_port)
    with started(with_backend_ports(line, grpc_backend, ws_backend), env) as process:
        _wait_for(lambda: urllib.request.urlopen(web, timeout=2).status == 200, "the web UI")
        refused = _post(f"{web}/swarm", {"user_count": "2", "spawn_rate": "2", "host": ws_backend.url})
        assert refused["success"] is False and "scheme must be grpc:// or grpcs://" in str(refused["message"])
        started_run = _post(f"{web}/swarm", {"user_count": "4", "spawn_rate": "4", "host": grpc_backend.address})
        assert started_run["success"] is True
        _wait_for(lambda: server_calls(grpc_backend) > 20, "calls at the backend")
        _post(f"{web}/stop")
        assert process.poll() is None


def test_distributed_master_and_workers(grpc_backend: Backend, ws_backend: Backend, tmp_path: Path) -> None:
    master_line, *worker_lines = readme_blocks()["Distributed"]
    assert worker_lines and all(line.split() == worker_lines[0].split() for line in worker_lines)
    assert "--host" not in worker_lines[0]
    server_calls(grpc_backend, reset=True)
    port = str(free_port())
    ports = {"master_node_port": port, "master_bind_port": port, "master_bind_host": "127.0.0.1"}
    with ExitStack() as stack:
        workers = [
            # each worker a home of its own: every Locust process writes the --json-file of its config
            stack.enter_context(
                started(with_backend_ports(line, grpc_backend, ws_backend), locust_env(tmp_path, f"worker{i}", **ports))
            )
            for i, line in enumerate(worker_lines)
        ]
        env = locust_env(tmp_path, "distributed", **ports)
        master = stack.enter_context(started(with_backend_ports(master_line, grpc_backend, ws_backend), env))
        _, master_err = master.communicate(timeout=RUN_TIMEOUT_S)
        assert master.returncode in (0, 3), master_err[-2000:]
        for worker in workers:
            worker.wait(timeout=30)
            assert worker.returncode == 0
    assert f"{len(worker_lines)} workers connected" in master_err
    assert grpc_calls_recorded(tmp_path / "distributed") == server_calls(grpc_backend) > 0


def test_processes(grpc_backend: Backend, ws_backend: Backend, tmp_path: Path) -> None:
    (line,) = readme_blocks()["Several cores of one machine"]
    server_calls(grpc_backend, reset=True)
    port = free_port()  # Locust's default master port may be held by another run on the machine
    command = with_backend_ports(line, grpc_backend, ws_backend)
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=locust_env(tmp_path, "processes", master_bind_port=port, master_node_port=port),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert grpc_calls_recorded(tmp_path / "processes") == server_calls(grpc_backend) > 0


@pytest.mark.parametrize("label", ["Headless", "Distributed", "Several cores of one machine"])
def test_a_wrong_scheme_in_each_mode_is_one_line_and_no_load(
    label: str, grpc_backend: Backend, ws_backend: Backend, tmp_path: Path
) -> None:
    line = readme_blocks()[label][0].replace("127.0.0.1:50051", "ws://127.0.0.1:1")
    server_calls(grpc_backend, reset=True)
    port = free_port()
    env = locust_env(tmp_path, "refused", master_bind_port=port, master_node_port=port)
    command = with_backend_ports(line, grpc_backend, ws_backend)
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 2
    # forked --processes workers may still log that they joined; the refusal is the one error line
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert re.fullmatch(
        r"error: Grpc\w+User: host 'ws://127.0.0.1:1': scheme must be grpc:// or grpcs://, not ws://", error
    )
    assert server_calls(grpc_backend) == 0
