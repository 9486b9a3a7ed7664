"""Names, lines and batching of the StatsD mirror, without Locust: sanitising, error classes, datagram sizes."""

from __future__ import annotations

import socket
import time

from locust_ext.statsd.naming import MAX_ERROR_CLASSES, error_class, gauge_lines, request_lines, sanitize_segment
from locust_ext.statsd.sender import MAX_DATAGRAM_BYTES, DatagramBatcher
from tests.statsd_support import parse_line, udp_capture


def test_sanitize_removes_graphite_and_statsd_syntax() -> None:
    assert sanitize_segment("/pkg.v1.Svc/Call name:a|b#c@d,e;f") == "pkg_v1_Svc_Call_name_a_b_c_d_e_f"
    assert sanitize_segment("...") == "_"


def test_error_class_is_the_leading_status_word_else_the_type() -> None:
    assert error_class(RuntimeError("UNAVAILABLE: connection refused")) == "UNAVAILABLE"
    assert error_class(TimeoutError("timeout")) == "timeout"
    assert error_class(ValueError("no status word here")) == "ValueError"


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
