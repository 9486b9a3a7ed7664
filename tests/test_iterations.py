"""The exact iteration limit end to end: real locust processes (alone, and master + two workers) against the
reference gRPC backend; Locust's own counts and the server's Admin counters must both equal the limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import Backend
from tests.test_thresholds_run import free_port, server_calls, started

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfiles_for_tests" / "shapes_grpc.py"
RUN_TIMEOUT_S = 90


def locust_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]


def run_locust(command: Sequence[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def requests_recorded(json_file: Path) -> int:
    """Requests in Locust's final stats (``--json-file``, written at exit, unlike the CSV files)."""
    entries: list[dict[str, Any]] = json.loads(json_file.read_text())
    return sum(int(entry["num_requests"]) for entry in entries)


def test_local_run_makes_exactly_the_limit(grpc_backend: Backend, tmp_path: Path) -> None:
    server_calls(grpc_backend, reset=True)
    report = tmp_path / "local"
    command = locust_command("--headless", "-u", "7", "-r", "7", "-H", grpc_backend.address)
    result = run_locust(
        [*command, "--iteration-limit", "503", "--json-file", str(report), "-t", "60s"], SHAPES_PACING_S="0"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert server_calls(grpc_backend) == 503
    assert requests_recorded(report.with_suffix(".json")) == 503
    assert "Time limit reached" not in result.stderr  # the limit ended the run, not -t


def test_distributed_run_makes_exactly_the_limit_across_workers(grpc_backend: Backend, tmp_path: Path) -> None:
    """The limit is split over the workers (500 + 501 here), not applied to each of them."""
    server_calls(grpc_backend, reset=True)
    port = free_port()
    report = tmp_path / "distributed"
    master = locust_command(
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--expect-workers",
        "2",
        "--headless",
        "-u",
        "6",
        "-r",
        "6",
        "-t",
        "60s",
        "-H",
        grpc_backend.address,
        "--iteration-limit",
        "1001",
        "--json-file",
        str(report),
    )
    worker = locust_command(
        "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "-H", grpc_backend.address
    )
    env = {"SHAPES_PACING_S": "0"}
    with (
        started(master, grpc_backend, **env) as head,
        started(worker, grpc_backend, **env),
        started(worker, grpc_backend, **env),
    ):
        _, stderr = head.communicate(timeout=RUN_TIMEOUT_S)
    assert head.returncode == 0, stderr[-2000:]
    assert "Every worker has finished its share of the iterations" in stderr
    assert server_calls(grpc_backend) == 1001
    assert requests_recorded(report.with_suffix(".json")) == 1001


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--iteration-limit", "many"], "error: --iteration-limit: 'many' is not a whole number"),
        (["--iteration-limit", "-5"], "error: --iteration-limit: -5 is negative (0 turns the limit off)"),
    ],
)
def test_bad_limit_exits_2_before_load(flags: list[str], message: str) -> None:
    result = run_locust(locust_command("--headless", "-H", "127.0.0.1:1", *flags))
    assert result.returncode == 2
    assert message in result.stderr.splitlines()
