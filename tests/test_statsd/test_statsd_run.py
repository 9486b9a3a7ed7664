"""Headless Locust runs against the reference gRPC backend, mirrored to a loopback UDP capture."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from locust_ext.statsd.sender import MAX_DATAGRAM_BYTES
from locust_ext.testing import Backend, free_port, locust_command, request_counts, run_distributed, run_locust
from tests.statsd_support import UdpCapture, udp_capture
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "statsd_grpc.py"
RUN = ("--headless", "-u", "4", "-r", "4", "-t", "4s", "--exit-code-on-error", "0", "--skip-log-setup")
#: SayHello is fast (best grade); Echo fails half its calls (poor); the glob grades both rows (the worst shows);
#: /nope matches nothing (no grade gauge).
GATE = """\
grades: [excellent, good, acceptable]
live_interval: 0.5
rules:
  - name: /loadtest.v1.Hello/SayHello
    type: grpc
    response_time: {stat: p95, excellent: 10000}
  - name: /loadtest.v1.Echo/Echo
    error_rate: {excellent: 0.1, good: 1, acceptable: 5}
  - match: "/loadtest.v1.*"
    error_rate: {excellent: 0.1, good: 1, acceptable: 5}
  - name: /nope
    error_rate: {acceptable: 1}
"""
NAMES = {"/loadtest.v1.Hello/SayHello": "loadtest_v1_Hello_SayHello", "/loadtest.v1.Echo/Echo": "loadtest_v1_Echo_Echo"}


def probe_env(grpc_backend: Backend) -> dict[str, str]:
    return {"GRPC_PROBE_TARGET": grpc_backend.address}


def mirrored_run(grpc_backend: Backend, tmp_path: Path, *flags: str) -> tuple[UdpCapture, Path]:
    stem = tmp_path / "stats"
    with udp_capture() as capture:
        command = locust_command(LOCUSTFILE, *RUN, "--json-file", str(stem), "--statsd-host", "127.0.0.1")
        done = run_locust([*command, "--statsd-port", str(capture.port), *flags], env=probe_env(grpc_backend))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return capture, stem


def test_every_request_counted_once_in_small_datagrams(grpc_backend: Backend, tmp_path: Path) -> None:
    capture, stem = mirrored_run(grpc_backend, tmp_path)
    requests, failures = request_counts(stem)
    assert all(len(payload) <= MAX_DATAGRAM_BYTES for payload, _ in capture.datagrams)
    lines = capture.lines()
    assert failures["/loadtest.v1.Echo/Echo"] > 0 and requests["/loadtest.v1.Hello/SayHello"] > 0
    for name, segment in NAMES.items():
        base = f"locust.requests.grpc.{segment}"
        timers = [line for line in lines if line.name == f"{base}.response_time"]
        assert len(timers) == requests[name] and all(line.type == "ms" for line in timers)
        successes = sum(line.value for line in lines if line.name == f"{base}.success")
        assert successes == requests[name] - failures[name]
        assert sum(line.value for line in lines if line.name == f"{base}.failure") == failures[name]
        by_class = [line for line in lines if line.name.startswith(f"locust.errors.grpc.{segment}.")]
        assert sum(line.value for line in by_class) == failures[name]
    classes = {line.name.rsplit(".", 1)[1] for line in lines if line.name.startswith("locust.errors.")}
    assert classes == {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}
    gauges = {line.name for line in lines if line.type == "g"}
    assert {"locust.run.users", "locust.run.rps", "locust.run.fail_ratio"} <= gauges


@pytest.mark.parametrize("style", ["dogstatsd", "graphite"])
def test_tags_replace_name_segments(grpc_backend: Backend, tmp_path: Path, style: str) -> None:
    capture, stem = mirrored_run(grpc_backend, tmp_path, "--statsd-tags", style, "--statsd-prefix", "team.lt")
    requests, failures = request_counts(stem)
    lines = capture.lines()
    timers = Counter(line.tag("name") for line in lines if line.base == "team.lt.requests.response_time")
    assert timers == {name: requests[name] for name in NAMES}
    errors = [line for line in lines if line.base == "team.lt.errors"]
    assert {line.tag("error") for line in errors} == {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}
    assert sum(line.value for line in errors) == sum(failures.values())
    assert all((line.tags != ()) == (style == "dogstatsd") for line in lines if line.type != "g")


def test_sample_rate_marks_lines_and_thins_them(grpc_backend: Backend, tmp_path: Path) -> None:
    capture, stem = mirrored_run(grpc_backend, tmp_path, "--statsd-sample-rate", "0.5")
    requests, _ = request_counts(stem)
    timers = [line for line in capture.lines() if line.type == "ms"]
    assert all(line.rate == 0.5 for line in timers)
    assert 0 < len(timers) < sum(requests.values())


@pytest.mark.parametrize("host", ["nohost.invalid", "127.0.0.1"])
def test_unreachable_statsd_leaves_run_unaffected(grpc_backend: Backend, tmp_path: Path, host: str) -> None:
    stem = tmp_path / "stats"
    command = locust_command(LOCUSTFILE, *RUN, "--json-file", str(stem))
    flags = ["--statsd-host", host, "--statsd-port", str(free_port("udp"))]
    done = run_locust([*command, *flags], env=probe_env(grpc_backend))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    requests, _ = request_counts(stem)
    assert sum(requests.values()) > 0
    if host == "nohost.invalid":
        assert done.stderr.count("StatsD mirror off") == 1 and "nohost.invalid" in done.stderr


def test_bad_flag_values_exit_before_load(grpc_backend: Backend) -> None:
    for flags in (["--statsd-port", "0"], ["--statsd-sample-rate", "1.5"], ["--statsd-tags", "influx"]):
        command = locust_command(LOCUSTFILE, *RUN, "--statsd-host", "127.0.0.1", *flags)
        done = run_locust(command, env=probe_env(grpc_backend))
        assert done.returncode == 2 and flags[0] in done.stderr.splitlines()[-1], done.stderr


def test_distributed_run_counts_nothing_twice(grpc_backend: Backend, tmp_path: Path) -> None:
    stem = tmp_path / "stats"
    with udp_capture() as capture:
        statsd = ["--statsd-host", "127.0.0.1", "--statsd-port", str(capture.port)]
        master = run_distributed(
            LOCUSTFILE, [*RUN, *statsd, "--json-file", str(stem)], worker_args=statsd, env=probe_env(grpc_backend)
        )
    assert master.returncode == 0, master.stderr
    requests, failures = request_counts(stem)
    by_sender = capture.lines_by_sender()
    timer_senders = {sender for sender, lines in by_sender.items() if any(line.type == "ms" for line in lines)}
    gauge_senders = {sender for sender, lines in by_sender.items() if any(line.type == "g" for line in lines)}
    assert len(timer_senders) == 2 and len(gauge_senders) == 1 and not timer_senders & gauge_senders
    lines = capture.lines()
    assert Counter(line.name for line in lines if line.type == "ms") == {
        f"locust.requests.grpc.{segment}.response_time": requests[name] for name, segment in NAMES.items()
    }
    assert sum(line.value for line in lines if line.name.endswith(".failure")) == sum(failures.values())
    assert {line.name for line in lines if line.type == "g"} >= {"locust.run.workers", "locust.run.users"}
    assert max(line.value for line in lines if line.name == "locust.run.workers") == 2


def test_threshold_grades_are_sent_as_gauges_matching_the_report(grpc_backend: Backend, tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE)
    report = tmp_path / "gate.json"
    with udp_capture() as capture:
        command = locust_command(LOCUSTFILE, *RUN, "--statsd-host", "127.0.0.1", "--statsd-port", str(capture.port))
        done = run_locust(
            [*command, "--thresholds", str(gate), "--thresholds-report", str(report)], env=probe_env(grpc_backend)
        )
    assert done.returncode == 3, done.stderr[-2000:]  # Echo's error rate fails the gate
    document = json.loads(report.read_text())
    grade_index = {(r["rule"], r["entry"], r["metric"]): r["grade_index"] for r in document["results"]}
    hello, echo = "grpc /loadtest.v1.Hello/SayHello", "grpc /loadtest.v1.Echo/Echo"
    last: dict[str, float] = {}
    for line in capture.lines():
        if line.type == "g" and line.name.startswith("locust.thresholds."):
            last[line.name] = line.value
    assert last == {
        "locust.thresholds.grpc_loadtest_v1_Hello_SayHello.response_time_p95.grade": grade_index[
            ("/loadtest.v1.Hello/SayHello", hello, "response_time")
        ],
        "locust.thresholds.loadtest_v1_Echo_Echo.error_rate.grade": grade_index[
            ("/loadtest.v1.Echo/Echo", echo, "error_rate")
        ],
        "locust.thresholds.loadtest_v1.error_rate.grade": max(
            grade_index[("/loadtest.v1.*", entry, "error_rate")] for entry in (hello, echo)
        ),
        "locust.thresholds.failing": document["summary"]["fail"],
    }
    assert last["locust.thresholds.grpc_loadtest_v1_Hello_SayHello.response_time_p95.grade"] == 0
    assert last["locust.thresholds.loadtest_v1_Echo_Echo.error_rate.grade"] == len(document["grades"]) - 1
    assert document["summary"]["fail"] >= 2
