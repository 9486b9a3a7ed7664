"""GrpcUser in real Locust processes: --processes (workers forked from the master) and --worker, counted exactly."""

from __future__ import annotations

from pathlib import Path

from backends.kit import grpc_counters
from locust_ext.testing import Backend, json_stats, locust_command, run_locust

HELLO = "/loadtest.v1.Hello/SayHello"


def test_processes_mode_counts_every_call_once_with_sub_ms_buckets(grpc_backend: Backend, tmp_path: Path) -> None:
    grpc_counters(grpc_backend, reset=True)
    report = tmp_path / "run"
    command = locust_command(
        "locustfiles/grpc.py", "GrpcHelloUser",
        "--headless", "-u", "8", "-r", "8", "-t", "3s", "--processes", "2", "--stop-timeout", "2",
        "--host", grpc_backend.address, "--json-file", str(report), "--skip-log-setup",
    )  # fmt: skip
    result = run_locust(command)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    (entry,) = [e for e in json_stats(report) if e["name"] == HELLO]
    server = grpc_counters(grpc_backend)
    counted = server.methods[HELLO]
    # Every call the two worker processes made reached the master's stats exactly once.
    cut_short = entry["num_failures"]
    assert counted.received <= entry["num_requests"] <= counted.received + cut_short
    assert entry["num_requests"] - cut_short <= counted.completed
    # One TCP connection per user across both processes.
    assert server.distinct_peers == 8
    # Sub-millisecond bucket keys survived the trip from the workers to the master.
    keys = [float(key) for key in entry["response_times"]]
    assert any(0 < key < 1 and key != round(key) for key in keys), keys
