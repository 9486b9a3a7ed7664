"""Locust's totals count operations, not derived measurements (locust_ext.derived).

Rows of derived request types (stream first messages, per-message latency and round trips, pushes, keepalives,
drops, late replies) stay in Locust's table; its total (Aggregated, requests/s, failure ratio, the per-second
history) leaves them out. Checked on Locust's own stats, then end to end with real locust processes (alone, and
master + two workers) against the reference backends, whose counters must agree with the Aggregated row.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from locust.env import Environment
from locust.stats import RequestStats

import locust_ext
from backends.kit import grpc_counters
from locust_ext.derived import derived_request_types, is_derived, register_derived
from locust_ext.testing import Backend, locust_command, run_distributed, run_locust
from tests.locustfiles_for_tests import derived_grpc, derived_ws
from tests.statsd_support import udp_capture
from tests.support import FOR_TESTS
from tests.ws_sessions import EchoUser, open_session, server_stats, wait_for

RUN_TIMEOUT_S = 120
GRPC_LOCUSTFILE = FOR_TESTS / "derived_grpc.py"
WS_LOCUSTFILE = FOR_TESTS / "derived_ws.py"
SUBSCRIBE = "/loadtest.v1.Stream/Subscribe"
BIDI = "/loadtest.v1.Echo/EchoBidi"
#: The request types the suite's users record derived measurements under (public names: thresholds and
#: dashboards select them).
GRPC_DERIVED = {"grpc-first-message", "grpc-message-latency", "grpc-message-rtt"}
WS_DERIVED = {"websocket-push", "websocket-keepalive", "websocket-disconnect", "websocket-late-reply"}
PUSH_TYPE = "websocket-push"
GRPC_METHODS = ("/loadtest.v1.Hello/SayHello", SUBSCRIBE, "/loadtest.v1.Echo/EchoClientStream", BIDI)

# One row of Locust's closing summary: type (empty for Aggregated), name, requests, failures.
_SUMMARY_ROW = re.compile(r"^(?P<type>\S*)\s+(?P<name>\S.*?)\s+(?P<requests>\d+)\s+(?P<failures>\d+)\(\d+\.\d+%\)\s+\|")

Rows = dict[tuple[str, str], tuple[int, int]]


def summary_rows(stderr: str) -> Rows:
    """(requests, failures) per (type, name) from the stats table Locust prints when it exits (after the last
    worker report, unlike --csv); the total row is ("", "Aggregated")."""
    rows: Rows = {}
    for line in stderr.splitlines():
        match = _SUMMARY_ROW.match(line)
        if match:
            key = (match["type"], match["name"])
            assert key not in rows, f"two summary tables in the output: {line}"
            rows[key] = (int(match["requests"]), int(match["failures"]))
    assert ("", "Aggregated") in rows, stderr[-3000:]
    return rows


def operations_sum(rows: Rows) -> int:
    return sum(
        requests
        for (request_type, name), (requests, _) in rows.items()
        if request_type and not is_derived(request_type)
    )


# Locust's own stats


def test_the_suites_derived_types_are_registered_and_installed_on_import() -> None:
    assert derived_request_types() >= GRPC_DERIVED | WS_DERIVED
    assert not is_derived("grpc") and not is_derived("websocket")
    assert RequestStats.log_request.__module__ == "locust_ext.derived"
    wrapped = RequestStats.log_request, RequestStats.log_error
    register_derived("grpc-first-message")  # again: wrapped once, not twice
    assert (RequestStats.log_request, RequestStats.log_error) == wrapped
    assert locust_ext.register_derived is register_derived


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_request_type_must_be_a_non_empty_string(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a non-empty string"):
        register_derived(bad)  # type: ignore[arg-type]


def test_derived_rows_stay_and_the_total_counts_operations_only() -> None:
    register_derived("my-derived")
    stats = RequestStats()
    stats.log_request("grpc", "/svc/Call", 10, 5)
    stats.log_request("grpc", "/svc/Call", 20, 5)
    stats.log_error("grpc", "/svc/Call", "UNAVAILABLE: gone")
    for _ in range(7):
        stats.log_request("my-derived", "/svc/Call", 1, 1)
    stats.log_error("my-derived", "/svc/Call", "error: pushed")

    assert (stats.total.num_requests, stats.total.num_failures) == (2, 1)
    assert stats.total.fail_ratio == 0.5
    assert sum(stats.total.num_reqs_per_sec.values()) == 2  # the charts' per-second history
    assert sum(stats.total.num_fail_per_sec.values()) == 1
    assert stats.total.total_response_time == 30
    assert stats.total.max_response_time == 20 and stats.total.min_response_time == 10
    derived = stats.get("/svc/Call", "my-derived")
    assert (derived.num_requests, derived.num_failures) == (7, 1)
    # the derived failure is in the failures table (so --exit-code-on-error still sees it), under its own type
    assert sorted((error.method, error.occurrences) for error in stats.errors.values()) == [
        ("grpc", 1),
        ("my-derived", 1),
    ]


def test_a_derived_event_moves_the_totals_clock_without_counting() -> None:
    """Locust takes ``last_request_timestamp`` as "now" for every row's current requests/s: an idle connection
    that only keeps alive must not freeze it at the last request."""
    register_derived("my-derived")
    stats = RequestStats()
    stats.log_request("grpc", "/svc/Call", 10, 5)
    before = stats.total.last_request_timestamp
    assert before is not None
    while int(time.time()) == int(before):  # into the next second, so the response-time snapshot is taken
        time.sleep(0.01)
    stats.log_request("my-derived", "/svc/Call", 1, 1)
    assert stats.total.last_request_timestamp is not None and stats.total.last_request_timestamp > before
    assert stats.total.num_requests == 1
    # the per-second response-time snapshot Locust takes when the second changes (for current percentiles)
    cache = stats.total.response_times_cache
    assert cache is not None and int(stats.total.last_request_timestamp) - 1 in cache


def test_websocket_push_errors_keep_their_row_and_stay_out_of_the_failure_ratio(ws_backend: Backend) -> None:
    environment = Environment(user_classes=[EchoUser])
    environment.create_local_runner()
    server_stats(ws_backend, reset=True)
    session = open_session(environment, ws_backend.url)
    try:
        session.request({"type": "echo", "payload": "x"}, name="echo")
        session.send({"type": "no-such-type"}, name="bad send")  # the server's error reply nobody waits for
        wait_for(lambda: environment.stats.get("push error", PUSH_TYPE).num_requests)
    finally:
        session.close()
    stats = environment.stats
    assert stats.get("push error", PUSH_TYPE).num_failures == 1
    assert server_stats(ws_backend)["errors"] == 1
    assert (stats.total.num_requests, stats.total.num_failures) == (3, 0)  # connect, echo, bad send
    assert [error.name for error in stats.errors.values()] == ["push error"]


# End to end: every gRPC call kind


@pytest.fixture
def counted_grpc(grpc_backend: Backend) -> Iterator[Backend]:
    grpc_counters(grpc_backend, reset=True)
    yield grpc_backend


def check_grpc_run(stderr: str, backend: Backend, iterations: int) -> None:
    rows = summary_rows(stderr)
    calls = iterations * derived_grpc.CALLS_PER_ITERATION
    counters = grpc_counters(backend).methods
    assert {method: counters[method].received for method in GRPC_METHODS} == dict.fromkeys(GRPC_METHODS, iterations)
    assert rows[("", "Aggregated")] == (calls, 0)
    assert operations_sum(rows) == calls
    assert {("grpc", method): rows[("grpc", method)][0] for method in GRPC_METHODS} == {
        ("grpc", method): iterations for method in GRPC_METHODS
    }
    # the derived rows are all there, with their exact counts
    assert rows[("grpc-first-message", SUBSCRIBE)][0] == iterations
    assert rows[("grpc-first-message", BIDI)][0] == iterations
    assert rows[("grpc-message-latency", SUBSCRIBE)][0] == iterations * derived_grpc.SUBSCRIBE_MESSAGES
    assert rows[("grpc-message-rtt", BIDI)][0] == iterations * derived_grpc.BIDI_MESSAGES


def test_local_grpc_run_aggregated_counts_calls_of_every_kind(counted_grpc: Backend, tmp_path: Path) -> None:
    """Also what reads Locust's total: the gate's plain Aggregated rule, and the StatsD mirror, whose request
    counters for derived rows go under ``<prefix>.derived`` so that a sum over ``<prefix>.requests`` is the calls."""
    iterations = 61
    calls = iterations * derived_grpc.CALLS_PER_ITERATION
    gate = tmp_path / "gate.yaml"
    gate.write_text("grades: [acceptable]\nrules:\n  - name: Aggregated\n    error_rate: {acceptable: 0}\n")
    report = tmp_path / "verdict.json"
    command = locust_command(GRPC_LOCUSTFILE, "--headless", "-u", "3", "-r", "3", "-t", "90s", "--only-summary")
    command += ["-H", counted_grpc.address, "--iteration-limit", str(iterations)]
    command += ["--thresholds", str(gate), "--thresholds-report", str(report)]
    with udp_capture() as capture:
        command += ["--statsd-host", "127.0.0.1", "--statsd-port", str(capture.port)]
        done = run_locust(command, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    check_grpc_run(done.stderr, counted_grpc, iterations)
    [aggregated] = [result for result in json.loads(report.read_text())["results"] if result["rule"] == "Aggregated"]
    assert aggregated["requests"] == calls
    counters: Counter[str] = Counter()
    for line in capture.lines():
        if line.type == "c":
            counters[line.name] += int(line.value)
    assert (
        sum(count for name, count in counters.items() if re.fullmatch(r"locust\.requests\..*\.success", name)) == calls
    )
    derived = {name: count for name, count in counters.items() if name.startswith("locust.derived.")}
    assert derived == {
        "locust.derived.grpc-first-message.loadtest_v1_Stream_Subscribe.success": iterations,
        "locust.derived.grpc-first-message.loadtest_v1_Echo_EchoBidi.success": iterations,
        "locust.derived.grpc-message-latency.loadtest_v1_Stream_Subscribe.success": iterations
        * derived_grpc.SUBSCRIBE_MESSAGES,
        "locust.derived.grpc-message-rtt.loadtest_v1_Echo_EchoBidi.success": iterations * derived_grpc.BIDI_MESSAGES,
    }


def test_distributed_grpc_run_aggregated_counts_calls_of_every_kind(counted_grpc: Backend) -> None:
    """Master + 2 workers started with only --worker --master-host/--master-port: the master's total is built
    from the workers' totals, which leave the derived rows out."""
    iterations = 101
    master_args = ["--headless", "-u", "4", "-r", "4", "-t", "90s", "--only-summary", "-H", counted_grpc.address]
    master_args += ["--iteration-limit", str(iterations)]
    done = run_distributed(GRPC_LOCUSTFILE, master_args, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    check_grpc_run(done.stderr, counted_grpc, iterations)


# End to end: WebSocket operations with pushes and keepalives


def check_ws_run(stderr: str, backend: Backend, iterations: int, users: int) -> None:
    rows = summary_rows(stderr)
    served = server_stats(backend)
    operations = iterations * derived_ws.OPERATIONS_PER_ITERATION + users  # + one connect per user
    assert rows[("", "Aggregated")] == (operations, 0)
    assert operations_sum(rows) == operations
    assert rows[("websocket", "connect")] == (users, 0) and served["connections_opened"] == users
    for name in ("echo", "send echo", "stream", "ping frame"):
        assert rows[("websocket", name)] == (iterations, 0), name
    assert served["requests"] == {"echo": 2 * iterations, "stream": iterations}  # request + send; stream
    assert served["received_text"] == 3 * iterations
    # derived rows: every stream message but the last is a push, read before the request's own reply
    assert rows[("websocket-push", "push stream")] == (iterations * (derived_ws.STREAM_MESSAGES - 1), 0)
    # a send's reply is a push too; a user's last one may still be on its way when the user stops
    assert iterations - users <= rows[("websocket-push", "push echo")][0] <= iterations
    assert rows[("websocket-keepalive", "keepalive")][0] >= 1


def html_rows(report: Path) -> Rows:
    """(requests, failures) per (type, name) from the statistics Locust's HTML report embeds."""
    text = report.read_text()
    marker = "window.templateArgs = "
    arguments, _ = json.JSONDecoder().raw_decode(text, text.index(marker) + len(marker))
    return {
        (row["method"], row["name"]): (row["num_requests"], row["num_failures"])
        for row in arguments["requests_statistics"]
    }


def test_local_websocket_run_aggregated_counts_operations(ws_backend: Backend, tmp_path: Path) -> None:
    """Also the HTML report: its Aggregated row (the headline figures) counts operations."""
    iterations, users = 73, 3
    server_stats(ws_backend, reset=True)
    report = tmp_path / "report.html"
    command = locust_command(WS_LOCUSTFILE, "--headless", "-u", str(users), "-r", str(users), "-t", "90s")
    command += ["--only-summary", "-H", ws_backend.url, "--iteration-limit", str(iterations), "--html", str(report)]
    done = run_locust(command, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    check_ws_run(done.stderr, ws_backend, iterations, users)
    assert html_rows(report) == summary_rows(done.stderr)


def test_distributed_websocket_run_aggregated_counts_operations(ws_backend: Backend) -> None:
    iterations, users = 99, 4
    server_stats(ws_backend, reset=True)
    master_args = ["--headless", "-u", str(users), "-r", str(users), "-t", "90s", "--only-summary"]
    master_args += ["-H", ws_backend.url, "--iteration-limit", str(iterations)]
    done = run_distributed(WS_LOCUSTFILE, master_args, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    check_ws_run(done.stderr, ws_backend, iterations, users)
