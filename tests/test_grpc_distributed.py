"""GrpcUser in real Locust processes: --processes (workers forked from the master) and --worker, counted exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import Backend

ROOT = Path(__file__).resolve().parent.parent
HELLO = "/loadtest.v1.Hello/SayHello"


def admin(backend: Backend, reset: bool = False) -> pb.Counters:
    with grpc.insecure_channel(backend.address) as channel:
        stub = pb_grpc.AdminStub(channel)
        return stub.ResetCounters(pb.ResetCountersRequest()) if reset else stub.GetCounters(pb.GetCountersRequest())


def test_processes_mode_counts_every_call_once_with_sub_ms_buckets(grpc_backend: Backend, tmp_path: Path) -> None:
    admin(grpc_backend, reset=True)
    report = tmp_path / "run"
    command = [
        sys.executable, "-m", "locust", "-f", "locustfiles/grpc.py", "HelloUser",
        "--headless", "-u", "8", "-r", "8", "-t", "3s", "--processes", "2", "--stop-timeout", "2",
        "--host", grpc_backend.address, "--json-file", str(report), "--skip-log-setup",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode in (0, 1), result.stderr[-2000:]
    (entry,) = [e for e in json.loads(report.with_suffix(".json").read_text()) if e["name"] == HELLO]
    server = admin(grpc_backend)
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
