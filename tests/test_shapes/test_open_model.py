"""The open model: the arrival schedule itself, the intended-start correction on request events, and real runs
against the reference gRPC backend — a 1 s server stall (SIGSTOP) shows in p99 under the open model and
hides in the closed model; a ramping rate past the in-flight cap drops and counts iterations exactly; the
schedule replaces users' wait_time without touching their class."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import gevent
import pytest
from locust import User, constant, task
from locust.argument_parser import parse_options
from locust.env import Environment
from locust.stats import calculate_response_time_percentile

from backends.kit import running_backend
from locust_ext.iterations import arrival_offsets, begin_iteration, correct_request_events, end_iteration
from locust_ext.iterations import locust_hooks as iteration_hooks
from locust_ext.iterations.plan import IterationPlan
from locust_ext.shapes import parse_stages
from locust_ext.testing import (
    Backend,
    json_stats,
    locust_command,
    request_counts,
    run_distributed,
    run_locust,
)
from tests.support import FOR_TESTS, REPO_ROOT, server_calls

LOCUSTFILE = FOR_TESTS / "shapes_grpc.py"
RUN_TIMEOUT_S = 90
STALL_S = 1.0
SUMMARY = re.compile(r"Open model: (\d+) iterations started on schedule, (\d+) dropped at the in-flight cap")


def first(offsets: Any, count: int) -> list[float]:
    return [next(offsets) for _ in range(count)]


def test_constant_rate_is_evenly_spaced_and_endless() -> None:
    stages, start_rate = IterationPlan(rate=4).arrival_stages()
    offsets = arrival_offsets(stages, start_rate=start_rate)
    assert first(offsets, 5) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert first(offsets, 1000)[-1] == pytest.approx(1004 / 4)  # the 1005th falls due at 1004 / rate


def test_ramping_rate_follows_the_area_under_the_rate() -> None:
    """Rate 0 -> 10/s over 2 s: N(t) = 2.5 t^2 arrivals, so the k-th falls due at sqrt(k / 2.5); 10 in all."""
    offsets = list(arrival_offsets(parse_stages("2s:10")))
    assert offsets == pytest.approx([math.sqrt(k / 2.5) for k in range(10)])


def test_workers_shares_interleave_into_the_whole_schedule() -> None:
    stages = parse_stages("2s:10,2s:10,1s:0")
    whole = list(arrival_offsets(stages))
    parts = [list(arrival_offsets(stages, fraction=1 / 3, phase=index / 3)) for index in range(3)]
    assert sum(len(part) for part in parts) == len(whole) == 35
    assert sorted(offset for part in parts for offset in part) == pytest.approx(whole)


def test_request_events_fired_in_a_late_iteration_carry_its_lateness() -> None:
    class Quiet(User):
        abstract = True

    environment = Environment(user_classes=[Quiet])
    seen: list[float] = []
    environment.events.request.add_listener(lambda response_time, **_: seen.append(response_time))
    correct_request_events(environment)
    correct_request_events(environment)  # idempotent: the lateness is added once
    fire = environment.events.request.fire
    fire(request_type="grpc", name="before", response_time=5.0, response_length=0, exception=None, context={})
    begin_iteration(time.perf_counter() - 0.25)
    with environment.events.request.measure("grpc", "measured"):
        pass
    fire(request_type="grpc", name="late", response_time=5.0, response_length=0, exception=None, context={})
    end_iteration()
    fire(request_type="grpc", name="after", response_time=5.0, response_length=0, exception=None, context={})
    assert seen[0] == 5.0 and seen[3] == 5.0
    assert 250.0 <= seen[1] < seen[2] - 5.0 + 1.0  # measure() goes through the same correction
    assert 255.0 <= seen[2] < 255.0 + 100.0  # lateness taken at begin_iteration, generous for a busy machine


def test_an_open_model_run_paces_users_without_changing_their_class() -> None:
    """In the closed model these users would wait 60 s between iterations; the schedule starts 20/s instead,
    and once the run is over the class's wait_time is still its own (a web UI restart would find it)."""
    ran: list[str] = []

    class Patient(User):
        wait_time = constant(60)

        @task
        def iterate(self) -> None:
            ran.append("iteration")

    own_wait_time = Patient.wait_time
    environment = Environment(user_classes=[Patient], parsed_options=parse_options(args=["--arrival-rate", "20"]))
    runner = environment.create_local_runner()
    iteration_hooks.on_init(environment)
    try:
        runner.start(2, spawn_rate=2)
        for _ in range(100):  # at most 10 s; 6 iterations take about 0.3 s at 20/s
            if len(ran) >= 6:
                break
            gevent.sleep(0.1)
        runner.stop()
    finally:
        runner.quit()
    assert len(ran) >= 6  # two users, each with a 60 s wait_time, ran more than once each
    assert Patient.wait_time is own_wait_time


def p99_and_max(json_stem: Path) -> tuple[float, float]:
    (entry,) = json_stats(json_stem)
    histogram = {float(rt): count for rt, count in entry["response_times"].items()}  # sub-ms buckets are floats
    p99 = calculate_response_time_percentile(cast(dict[int, int], histogram), entry["num_requests"], 0.99)
    return p99, entry["max_response_time"]


def _wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    """Poll a process's log file until ``text`` appears (a loaded machine may take seconds to start Locust)."""
    deadline = time.monotonic() + deadline_s
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, f"no {text!r} within {deadline_s} s"
        time.sleep(0.1)


def test_a_server_stall_shows_in_p99_under_the_open_model_only(tmp_path: Path) -> None:
    """Both models offer 100 iterations/s side by side; the backend is frozen for 1 s mid-run."""
    # --stop-timeout: calls in flight at the end finish instead of being recorded as cut short
    common = ["--headless", "-t", "10s", "--stop-timeout", "5"]
    open_args = [*common, "-u", "150", "-r", "150", "--arrival-rate", "100", "--json-file", str(tmp_path / "open")]
    closed_args = [*common, "-u", "2", "-r", "2", "--json-file", str(tmp_path / "closed")]
    with running_backend("grpc") as backend:
        runs = {
            "open": (locust_command(LOCUSTFILE, *open_args, "-H", backend.address), {}),
            "closed": (locust_command(LOCUSTFILE, *closed_args, "-H", backend.address), {"SHAPES_PACING_S": "0.02"}),
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, (command, env) in runs.items():
                with (tmp_path / f"{name}.log").open("wb") as log:
                    processes[name] = subprocess.Popen(
                        command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
                    )
            for name, process in processes.items():
                _wait_for_line(tmp_path / f"{name}.log", "All users spawned", process)
            time.sleep(1.0)  # a second of steady traffic in both before the stall
            os.kill(backend.process.pid, signal.SIGSTOP)
            try:
                time.sleep(STALL_S)
            finally:
                os.kill(backend.process.pid, signal.SIGCONT)
            for process in processes.values():
                process.wait(timeout=RUN_TIMEOUT_S)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    open_stderr, closed_stderr = ((tmp_path / f"{name}.log").read_text(errors="replace") for name in runs)
    # 1: GrpcUser may record a call as cut short when the run ends; anything worse is a crash
    for process, stderr in ((processes["open"], open_stderr), (processes["closed"], closed_stderr)):
        assert process.returncode in (0, 1) and "Traceback" not in stderr, stderr[-2000:]
    stall_ms = STALL_S * 1000
    open_p99, open_max = p99_and_max(tmp_path / "open")
    closed_p99, closed_max = p99_and_max(tmp_path / "closed")
    summary = SUMMARY.search(open_stderr)
    assert summary is not None and int(summary.group(2)) == 0  # the pool never ran dry: nothing dropped
    assert open_p99 >= 0.5 * stall_ms, (open_p99, closed_p99)
    assert min(open_max, closed_max) >= 0.8 * stall_ms  # both models met the stall ...
    assert closed_p99 < 0.5 * stall_ms, (open_p99, closed_p99)  # ... in too few requests to reach its p99


def test_a_ramping_rate_past_the_cap_drops_and_counts_exactly(tmp_path: Path) -> None:
    """150 iterations fall due (0 -> 50/s over 2 s, then 2 s at 50/s); 2 users at 100 ms per call can start
    about 20/s, so the rest are dropped. Started + dropped is the schedule, started is what the server saw."""
    with running_backend("grpc", ["--fault-delay-ms", "100"]) as backend:
        backend_calls_before = server_calls(backend, reset=True)
        assert backend_calls_before == 0
        result = run_stages(backend, tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        summary = SUMMARY.search(result.stderr)
        assert summary is not None, result.stderr[-2000:]
        started, dropped = int(summary.group(1)), int(summary.group(2))
        assert started + dropped == 150
        assert dropped > 0 and started > 0
        assert server_calls(backend) == started
        assert request_counts(tmp_path / "stages")[0].total() == started


def test_a_distributed_open_model_run_starts_the_whole_schedule_once_across_workers(
    grpc_backend: Backend, tmp_path: Path
) -> None:
    """Two workers share one schedule (150 iterations over 4 s): each starts its share, none twice, none lost."""
    server_calls(grpc_backend, reset=True)
    report = tmp_path / "distributed"
    # A pool of 150 users for 150 iterations: none can be dropped at the in-flight cap, however long a call takes on
    # a loaded machine (4 users dropped 32 when calls took over 80 ms).
    master_args = ["--headless", "-u", "150", "-r", "150", "-t", "60s", "-H", grpc_backend.address]
    master_args += ["--arrival-stages", "2s:50,2s:50", "--json-file", str(report)]
    started_at = time.monotonic()
    head = run_distributed(LOCUSTFILE, master_args, timeout=RUN_TIMEOUT_S)
    assert head.returncode == 0, head.stderr[-2000:]
    assert "Every worker has finished its share of the iterations" in head.stderr
    summary = SUMMARY.search(head.stderr)
    assert summary is not None, head.stderr[-2000:]
    assert (int(summary.group(1)), int(summary.group(2))) == (150, 0)
    assert server_calls(grpc_backend) == 150
    assert request_counts(report)[0].total() == 150
    assert time.monotonic() - started_at >= 4.0  # paced by the schedule, not run as fast as possible


def run_stages(backend: Backend, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = ["--headless", "-u", "2", "-r", "2", "-t", "60s", "-H", backend.address]
    args += ["--arrival-stages", "2s:50,2s:50", "--json-file", str(tmp_path / "stages")]
    return run_locust(locust_command(LOCUSTFILE, *args), timeout=RUN_TIMEOUT_S)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--arrival-rate", "fast"], "error: --arrival-rate: 'fast' is not a number"),
        (["--arrival-rate", "-3"], "error: --arrival-rate: -3 must be a positive number of iterations per second"),
        (["--arrival-stages", "10s:0"], "error: --arrival-stages: '10s:0' never starts an iteration"),
        (["--arrival-rate", "5", "--arrival-stages", "1s:5"], "give one of them, not both"),
        (["--iteration-limit", "10", "--arrival-rate", "5"], "--iteration-limit cannot be combined with"),
        (["--iteration-limit", "10", "--arrival-stages", "1s:5"], "--iteration-limit cannot be combined with"),
    ],
)
def test_bad_arrival_flags_exit_2_before_load(flags: list[str], message: str) -> None:
    result = run_locust(locust_command(LOCUSTFILE, "--headless", "-H", "127.0.0.1:1", *flags), timeout=RUN_TIMEOUT_S)
    assert result.returncode == 2
    assert any(message in line for line in result.stderr.splitlines() if line.startswith("error:"))
