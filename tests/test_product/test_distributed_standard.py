"""Distributed and multi-process runs started exactly as Locust's documentation starts them.

Workers get only ``-f LOCUSTFILE --worker --master-host 127.0.0.1 --master-port N``: the host is given once, on
the master, and reaches the workers in its spawn message. ``--processes 2`` forks workers from a process given
``--host``. Both the example locustfiles (whose classes have a default host that points nowhere in these tests)
and user classes that set no host at all; every count is checked against the reference backend's own counters,
and the thresholds gate grades on the master.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.kit import grpc_counters
from locust_ext.testing import Backend, free_port, json_stats, locust_command, run_distributed, run_locust
from tests.support import FOR_TESTS, REPO_ROOT
from tests.test_product.counted import check_counts, made, served

USERS = 6
RUN_TIMEOUT_S = 90.0
#: One rule on every request either protocol makes; loose limits, so the verdict is about the counting, not speed.
GATE = """\
grades: [excellent, good, acceptable]
fail_at: poor
rules:
  - name: Aggregated
    type: [grpc, websocket]
    exclude: [connect, disconnect, keepalive, "push *", late reply, ping frame]
    min_requests: 20
    error_rate: {excellent: 0.1, good: 0.5, acceptable: 1.0}
    response_time: {stat: p95, excellent: 1000, good: 2000, acceptable: 5000}
"""
LOCUSTFILES = {
    "grpc-example": ("grpc", REPO_ROOT / "locustfiles" / "grpc.py"),
    "websocket-example": ("websocket", REPO_ROOT / "locustfiles" / "websocket.py"),
    "grpc-no-host": ("grpc", FOR_TESTS / "no_host_grpc.py"),
    "websocket-no-host": ("websocket", FOR_TESTS / "no_host_ws.py"),
}


def host_of(backend: Backend) -> str:
    """What a user passes to ``--host``: ``host:port`` for gRPC, ``ws://host:port`` for WebSocket."""
    return backend.address if backend.kind == "grpc" else backend.url


def connections(backend: Backend) -> int:
    """Connections the backend saw since its last reset: distinct TCP peers (gRPC), opened WebSockets."""
    if backend.kind == "grpc":
        return int(grpc_counters(backend).distinct_peers)
    return served(backend)["connect"]


@pytest.fixture
def backend(case: str, grpc_backend: Backend, ws_backend: Backend) -> Backend:
    """The backend of the case's protocol, its counters reset."""
    chosen = grpc_backend if LOCUSTFILES[case][0] == "grpc" else ws_backend
    served(chosen, reset=True)
    return chosen


@pytest.mark.parametrize("case", LOCUSTFILES)
def test_workers_started_with_only_the_master_address(backend: Backend, case: str, tmp_path: Path) -> None:
    _, locustfile = LOCUSTFILES[case]
    gate, stats, verdict_path = tmp_path / "gate.yaml", tmp_path / "stats", tmp_path / "verdict.json"
    gate.write_text(GATE)
    master_args = [
        "--headless", "-u", str(USERS), "-r", str(USERS), "-t", "4s", "--stop-timeout", "5",
        "--host", host_of(backend), "--expect-workers-max-wait", "30",
        "--thresholds", str(gate), "--thresholds-report", str(verdict_path), "--json-file", str(stats),
    ]  # fmt: skip
    done = run_distributed(locustfile, master_args, workers=2, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    entries = json_stats(stats)
    assert check_counts(backend, entries) > 0, done.stderr[-3000:]  # a worker that left at start makes none
    requests, failures = made(backend.kind, entries)
    assert failures.total() == 0
    assert connections(backend) == USERS
    verdict = json.loads(verdict_path.read_text())
    assert verdict["passed"] and verdict["final"]
    assert (verdict["run"]["mode"], verdict["run"]["workers"], verdict["run"]["host"]) == (
        "master", 2, host_of(backend),
    )  # fmt: skip
    [graded] = {result["requests"] for result in verdict["results"] if result["rule"] == "Aggregated"}
    assert graded == requests.total() - requests["connect"] >= 20  # the gate leaves connections out


@pytest.mark.parametrize("case", [case for case in LOCUSTFILES if case.endswith("no-host")])
def test_processes_with_a_user_class_that_sets_no_host(backend: Backend, case: str, tmp_path: Path) -> None:
    _, locustfile = LOCUSTFILES[case]
    stats = tmp_path / "stats"
    port = str(free_port())  # not Locust's default 5557: another run's forked workers would join this master
    command = locust_command(
        locustfile, "--headless", "-u", "4", "-r", "4", "-t", "60s", "--iteration-limit", "200", "--stop-timeout", "5",
        "--processes", "2", "--master-bind-port", port, "--master-port", port,
        "--host", host_of(backend), "--json-file", str(stats),
    )  # fmt: skip
    done = run_locust(command, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    entries = json_stats(stats)
    assert check_counts(backend, entries) > 0
    requests, failures = made(backend.kind, entries)
    assert failures.total() == 0
    # Bounded by iterations, not by a time a loaded machine may spend starting up: exactly 200 calls.
    assert requests.total() - requests["connect"] == 200
    assert connections(backend) == 4
