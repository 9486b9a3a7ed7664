"""End to end through the reference StatsD daemon (npm ``statsd``): its Graphite flushes reflect the run.

The daemon listens on a loopback UDP port and flushes every second with its Graphite backend to a TCP
listener of ours, so the test reads exactly what Graphite would store. Install the daemon with
``npm install --prefix .cache/statsd --no-audit --no-fund statsd@0.9.0``; without it the test skips,
except under CI=true, where it fails.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from locust_ext.testing import Backend, locust_command, request_counts, run_locust
from tests.statsd_support import require_daemon, running_statsd_daemon
from tests.support import FOR_TESTS


class GraphiteSink:
    """A plaintext-protocol TCP listener on loopback: every ``path value timestamp`` line received."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.points: list[tuple[str, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            with connection, connection.makefile("r") as lines:
                for line in lines:
                    path, value, _ = line.split()
                    self.points.append((path, float(value)))

    def totals(self) -> dict[str, float]:
        summed: dict[str, float] = defaultdict(float)
        for path, value in self.points:
            summed[path] += value
        return summed

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def statsd_daemon(tmp_path: Path) -> Iterator[tuple[int, GraphiteSink]]:
    """The npm StatsD daemon on a free loopback UDP port, flushing every second to a GraphiteSink."""
    require_daemon()
    sink = GraphiteSink()
    config = {
        "flushInterval": 1000,
        "backends": ["./backends/graphite"],
        "graphiteHost": "127.0.0.1",
        "graphitePort": sink.port,
        "deleteIdleStats": True,
    }
    try:
        with running_statsd_daemon(config, tmp_path) as port:
            yield port, sink
    finally:
        sink.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.2)


def test_daemon_flushes_reflect_the_run(
    grpc_backend: Backend, tmp_path: Path, statsd_daemon: tuple[int, GraphiteSink]
) -> None:
    port, sink = statsd_daemon
    stem = tmp_path / "stats"
    run = ("--headless", "-u", "4", "-r", "4", "-t", "3s", "--exit-code-on-error", "0", "--json-file", str(stem))
    statsd = ("--statsd-host", "127.0.0.1", "--statsd-port", str(port))
    command = locust_command(FOR_TESTS / "statsd_grpc.py", *run, *statsd, "--skip-log-setup")
    done = run_locust(command, env={"GRPC_PROBE_TARGET": grpc_backend.address})
    assert done.returncode == 0, done.stderr
    requests, failures = request_counts(stem)
    total = sum(requests.values())
    hello = "locust.requests.grpc.loadtest_v1_Hello_SayHello"
    echo = "locust.requests.grpc.loadtest_v1_Echo_Echo"

    hello_timer, echo_timer = f"stats.timers.{hello}.response_time", f"stats.timers.{echo}.response_time"

    def all_counted() -> bool:
        totals = sink.totals()
        return totals[f"{hello_timer}.count"] + totals[f"{echo_timer}.count"] >= total

    wait_for(all_counted)
    totals = sink.totals()
    assert totals[f"{hello_timer}.count"] == requests["/loadtest.v1.Hello/SayHello"]
    assert totals[f"{echo_timer}.count"] == requests["/loadtest.v1.Echo/Echo"]
    assert totals[f"stats_counts.{echo}.failure"] == failures["/loadtest.v1.Echo/Echo"] > 0
    assert totals[f"stats_counts.{hello}.success"] == requests["/loadtest.v1.Hello/SayHello"]
    errors = {path: value for path, value in totals.items() if path.startswith("stats_counts.locust.errors.grpc.")}
    assert sum(errors.values()) == sum(failures.values())
    paths = {path for path, _ in sink.points}
    assert {"stats.gauges.locust.run.users", "stats.gauges.locust.run.rps"} <= paths
    uppers = [value for path, value in sink.points if path == f"{hello_timer}.upper"]
    lowers = [value for path, value in sink.points if path == f"{hello_timer}.lower"]
    assert uppers and all(0 < low <= up for low, up in zip(lowers, uppers, strict=True))
