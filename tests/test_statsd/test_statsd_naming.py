"""Names, lines and batching of the StatsD mirror, without Locust: sanitising, error classes, datagram sizes."""

from __future__ import annotations

import socket
import time

import pytest

from locust_ext.statsd.naming import MAX_ERROR_CLASSES, error_class, gauge_lines, request_lines, sanitize_segment
from locust_ext.statsd.sender import MAX_DATAGRAM_BYTES, DatagramBatcher
from locust_ext.thresholds import Observation, evaluate, parse_thresholds
from locust_ext.thresholds.gauges import grade_gauges
from tests.statsd_support import parse_line, udp_capture


def test_sanitize_removes_graphite_and_statsd_syntax() -> None:
    assert sanitize_segment("/pkg.v1.Svc/Call name:a|b#c@d,e;f") == "pkg_v1_Svc_Call_name_a_b_c_d_e_f"
    assert sanitize_segment("...") == "_"


def test_error_class_is_the_leading_status_word_else_the_type() -> None:
    assert error_class(RuntimeError("UNAVAILABLE: connection refused")) == "UNAVAILABLE"
    assert error_class(TimeoutError("timeout")) == "timeout"
    assert error_class(ValueError("no status word here")) == "ValueError"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("disconnect: 1006 connection lost", "disconnect_1006"),
        ("disconnect: 1001", "disconnect_1001"),
        ("disconnect: protocol error: bad frame", "disconnect"),
        ("disconnect: 10060 not a close code", "disconnect"),
        ("disconnect: 999 below the close code range", "disconnect"),
        ("timeout: no reply within 5 s", "timeout"),
        ("connect: upgrade rejected: HTTP 403", "connect"),
        # gRPC status words are uppercase: never split by whatever number the detail starts with.
        ("UNAVAILABLE: 1006 connection lost", "UNAVAILABLE"),
        ("DEADLINE_EXCEEDED: 1500 ms", "DEADLINE_EXCEEDED"),
    ],
)
def test_error_class_keeps_a_close_code_after_a_lowercase_word(message: str, expected: str) -> None:
    assert error_class(RuntimeError(message)) == expected


def test_error_classes_are_capped() -> None:
    lines = request_lines("locust", "grpc", "/a.B/C", "none", 1.0)
    names = {parse_line(lines.error(RuntimeError(f"CODE{i}: x"))).name for i in range(MAX_ERROR_CLASSES + 10)}
    assert len(names) == MAX_ERROR_CLASSES + 1 and "locust.errors.grpc.a_B_C.other" in names


def test_timer_keeps_sub_millisecond_precision_and_negative_gauges_reset_first() -> None:
    assert (
        request_lines("locust", "grpc", "x", "none", 0.25).timer(0.3467)
        == "locust.requests.grpc.x.response_time:0.347|ms|@0.25"
    )
    assert gauge_lines("locust.g", -2.5) == ["locust.g:0|g", "locust.g:-2.5|g"]


def test_batcher_fills_datagrams_up_to_the_limit_and_flushes_the_rest() -> None:
    with udp_capture() as capture:
        batcher = DatagramBatcher(socket.AF_INET, ("127.0.0.1", capture.port))
        line = request_lines("locust", "grpc", "/loadtest.v1.Hello/SayHello", "dogstatsd", 1.0).timer(1.5)
        for _ in range(500):
            batcher.add(line)
        batcher.close()
        deadline = time.monotonic() + 5
        while len(capture.lines()) < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
    sizes = [len(payload) for payload, _ in capture.datagrams]
    assert max(sizes) <= MAX_DATAGRAM_BYTES and min(sizes[:-1]) > MAX_DATAGRAM_BYTES - len(line) - 1
    assert len(capture.lines()) == 500 and batcher.send_errors == 0


def _row(name: str, requests: int, failures: int) -> Observation:
    return Observation(
        name=name,
        request_type="grpc",
        num_requests=requests,
        num_failures=failures,
        response_times={1: requests},
        total_response_time=float(requests),
        min_response_time=1.0,
        max_response_time=1.0,
        start_time=0.0,
        end_time=10.0,
    )


def test_grade_gauges_show_the_worst_row_skip_ungraded_pairs_and_count_failures() -> None:
    spec = parse_thresholds(
        "grades: [excellent, good]\nrules:\n"
        "  - match: /svc/*\n    type: grpc\n    error_rate: {excellent: 1, good: 10}\n"
        "    response_time: {stat: max, excellent: 5}\n"
        "  - name: /none\n    error_rate: {good: 1}\n"
        "  - name: /svc/Few\n    min_requests: 100\n    insufficient_data: fail\n    error_rate: {good: 1}\n"
    )
    rows = [_row("/svc/Ok", 100, 0), _row("/svc/Bad", 100, 50), _row("/svc/Few", 10, 0)]
    verdict = evaluate(spec, lambda rule: [row for row in rows if rule.selector.matches(row.name, row.request_type)])
    assert grade_gauges(verdict) == {
        "thresholds.grpc_svc.error_rate.grade": 2.0,  # /svc/Bad is poor; /svc/Ok's excellent does not hide it
        "thresholds.grpc_svc.response_time_max.grade": 0.0,
        "thresholds.failing": 2.0,  # /svc/Bad's error rate, and /svc/Few's insufficient data
    }
