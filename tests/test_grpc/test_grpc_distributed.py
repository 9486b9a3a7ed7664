"""GrpcUser in real Locust processes: --processes (workers forked from the master) and --worker, counted exactly."""

from __future__ import annotations

from pathlib import Path

from backends.kit import grpc_counters
from locust_ext.testing import Backend, free_port, json_stats, locust_command, run_locust

HELLO = "/loadtest.v1.Hello/SayHello"


def test_processes_mode_counts_every_call_once(grpc_backend: Backend, tmp_path: Path) -> None:
    """Sub-millisecond bucket keys crossing from --processes workers to the master are proven with known response
    times in tests/test_core/test_final_reports.py (a real call's speed depends on the machine's load)."""
    grpc_counters(grpc_backend, reset=True)
    report = tmp_path / "run"
    # Not Locust's default 5557: another run on the machine may hold it, and its forked workers would join ours.
    port = str(free_port())
    command = locust_command(
        "locustfiles/grpc.py", "GrpcHelloUser",
        "--headless", "-u", "8", "-r", "8", "-t", "3s", "--processes", "2", "--stop-timeout", "2",
        "--master-bind-port", port, "--master-port", port,
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
