"""Headless Locust runs against the reference gRPC backend, mirrored to a loopback UDP capture."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from locust_ext.statsd.sender import MAX_DATAGRAM_BYTES
from locust_ext.testing import Backend, free_port, locust_command, request_counts, run_distributed, run_locust
from tests.statsd_support import UdpCapture, udp_capture
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "statsd_grpc.py"
RUN = ("--headless", "-u", "4", "-r", "4", "-t", "4s", "--exit-code-on-error", "0", "--skip-log-setup")
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
