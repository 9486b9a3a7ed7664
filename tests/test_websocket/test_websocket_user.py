"""WebSocketUser sessions against the reference WebSocket backend over loopback: correlation, pushes,
timeouts, drops and reconnects, close codes, binary frames, TLS, and Locust's counts against the server's."""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any, ClassVar

import gevent
import locust  # noqa: F401 - patches the standard library before sockets are made
import pytest
from locust import constant, task
from locust.env import Environment

from backends.kit import running_backend
from locust_ext import WebSocketUser, local_ips
from locust_ext.statsd.naming import error_class
from locust_ext.testing import Backend, free_port
from locust_ext.websocket import WebSocketConfigError, WebSocketFailure, WebSocketSession
from locust_ext.websocket.gauges import counts_for
from locust_ext.websocket.preflight import FdBudget, preflight_messages
from tests.tls_certs import make_pki
from tests.ws_sessions import (
    QUICK_RECONNECT,
    EchoUser,
    Recorder,
    open_session,
    server_stats,
    session_greenlets,
    wait_for,
)


def test_a_fast_reply_overtakes_a_slow_one_on_the_same_connection(ws: WebSocketSession, recorder: Recorder) -> None:
    finished: list[str] = []

    def call(message: dict[str, Any], name: str) -> dict[str, Any]:
        reply = ws.request(message, name=name)
        finished.append(name)
        return reply

    slow = gevent.spawn(call, {"type": "compute", "n": 1, "fault": {"delay_ms": 300}}, "slow")
    gevent.sleep(0.01)
    fast = call({"type": "echo", "payload": "quick"}, "fast")
    slow_reply = slow.get(timeout=5)
    assert finished == ["fast", "slow"]
    assert fast["payload"] == "quick" and slow_reply["type"] == "compute"
    assert [(name, failure) for name, failure, _ in recorder.events[-2:]] == [("fast", None), ("slow", None)]


def test_pushes_interleave_with_requests_and_reach_their_handler(ws: WebSocketSession, recorder: Recorder) -> None:
    seen: list[int] = []
    ws.on("stream", lambda message: seen.append(message["seq"]))
    ws.send({"type": "stream", "count": 30, "interval_ms": 5, "id": "feed"}, name="stream")
    echoes = [ws.request({"type": "echo", "n": n})["n"] for n in range(10)]
    deadline_polls = 500
    while len(seen) < 30 and deadline_polls:
        gevent.sleep(0.01)
        deadline_polls -= 1
    assert echoes == list(range(10))
    assert seen == list(range(30))
    pushes = recorder.named("push stream")
    assert len(pushes) == 30 and all(failure is None and length > 0 for _, failure, length in pushes)
    assert recorder.named("stream") == [("stream", None, recorder.named("stream")[0][2])]


def test_no_reply_in_time_is_a_timeout_failure_and_the_session_goes_on(
    ws: WebSocketSession, recorder: Recorder
) -> None:
    with pytest.raises(WebSocketFailure, match=r"^timeout: no reply within 0.1 s$"):
        ws.request({"type": "echo", "fault": {"delay_ms": 400}}, name="late", timeout=0.1)
    assert ws.request({"type": "echo", "payload": "next"})["payload"] == "next"
    assert recorder.named("late") == [("late", "timeout: no reply within 0.1 s", 0)]


def test_a_reply_after_its_request_timed_out_is_a_late_failure_never_a_success(
    ws: WebSocketSession, ws_backend: Backend, recorder: Recorder
) -> None:
    server_stats(ws_backend, reset=True)
    with pytest.raises(WebSocketFailure, match=r"^timeout: "):
        ws.request({"type": "echo", "fault": {"delay_ms": 300}}, name="slow", timeout=0.05)
    wait_for(lambda: recorder.named("late reply"))
    assert ws.request({"type": "echo", "payload": "on time"}, name="next")["payload"] == "on time"

    assert recorder.named("slow") == [("slow", "timeout: no reply within 0.05 s", 0)]
    [(_, late, length)] = recorder.named("late reply")
    assert late == "late: reply after its request gave up" and length > 0
    successes = [name for name, failure, _ in recorder.events if failure is None and name != "connect"]
    assert successes == ["next"]
    assert server_stats(ws_backend)["sent_text"] == 2  # the late reply and the one on time


def test_a_reply_after_its_request_was_cancelled_is_a_late_failure(ws: WebSocketSession, recorder: Recorder) -> None:
    waiting = gevent.spawn(ws.request, {"type": "echo", "fault": {"delay_ms": 200}}, name="cancelled")
    gevent.sleep(0.05)
    waiting.kill()
    wait_for(lambda: recorder.named("late reply"))
    assert recorder.named("cancelled") == [("cancelled", "cancelled: user stopped mid-request", 0)]
    assert [failure for _, failure, _ in recorder.named("late reply")] == ["late: reply after its request gave up"]


def test_an_error_reply_nobody_awaits_is_a_failed_push(ws: WebSocketSession, recorder: Recorder) -> None:
    ws.send({"type": "echo", "id": "nobody-waits", "fault": {"error": "overloaded"}}, name="fire")
    wait_for(lambda: recorder.named("push error"))
    assert [failure for _, failure, _ in recorder.named("push error")] == ["error: overloaded"]


def test_error_replies_are_failures_named_by_their_text(ws: WebSocketSession, recorder: Recorder) -> None:
    with pytest.raises(WebSocketFailure, match=r"^error: overloaded$"):
        ws.request({"type": "echo", "fault": {"error": "overloaded"}}, name="faulty")
    assert recorder.named("faulty")[0][1] == "error: overloaded"


def test_a_drop_fails_waiting_requests_at_once_records_disconnect_and_reconnects(
    environment: Environment, ws: WebSocketSession, recorder: Recorder
) -> None:
    waiting = gevent.spawn(ws.request, {"type": "echo", "fault": {"delay_ms": 30_000}}, name="waiting", timeout=60)
    gevent.sleep(0.05)
    with pytest.raises(WebSocketFailure, match=r"^disconnect: 1006 connection lost$") as dropped:
        ws.request({"type": "echo", "fault": {"drop": True}}, name="dropper")
    assert error_class(dropped.value) == "disconnect_1006"  # the StatsD mirror's class keeps the close code
    with pytest.raises(WebSocketFailure, match=r"^disconnect: 1006"):
        waiting.get(timeout=5)  # long before its 60 s timeout
    assert ws.wait_connected(10)
    assert ws.request({"type": "echo", "payload": "back"})["payload"] == "back"
    assert recorder.named("disconnect") == [("disconnect", "disconnect: 1006 connection lost", 0)]
    assert [failure for _, failure, _ in recorder.named("connect")] == [None, None]
    counts = counts_for(environment)
    assert (counts.drops, counts.reconnects) == (1, 1)


def test_server_down_at_start_records_refused_connects_until_it_comes_up(
    environment: Environment, recorder: Recorder
) -> None:
    port = free_port()
    session = open_session(environment, f"ws://127.0.0.1:{port}", wait=False)
    try:
        polls = 500
        while len(recorder.named("connect")) < 2 and polls:
            gevent.sleep(0.01)
            polls -= 1
        assert not session.connected
        assert {failure for _, failure, _ in recorder.named("connect")} == {"connect: refused"}
        with running_backend("websocket", ["--port", str(port)]):
            assert session.wait_connected(10)
            assert session.request({"type": "echo", "payload": 1})["payload"] == 1
            assert recorder.named("connect")[-1][1] is None
    finally:
        session.close()


def test_a_server_shutdown_is_a_disconnect_with_close_code_1001(environment: Environment, recorder: Recorder) -> None:
    with running_backend("websocket") as backend:
        session = open_session(environment, backend.url)
        backend.stop()
        polls = 500
        while not recorder.named("disconnect") and polls:
            gevent.sleep(0.01)
            polls -= 1
        session.close()
    assert recorder.named("disconnect") == [("disconnect", "disconnect: 1001 going away", 0)]


def test_without_reconnect_a_dropped_session_fails_requests_at_once(
    environment: Environment, ws_backend: Backend, recorder: Recorder
) -> None:
    class NoReconnect(WebSocketUser):
        reconnect = None

    session = open_session(environment, ws_backend.url, NoReconnect)
    with pytest.raises(WebSocketFailure, match=r"^disconnect"):
        session.request({"type": "echo", "fault": {"drop": True}})
    with pytest.raises(WebSocketFailure, match=r"^disconnect: not connected$"):
        session.request({"type": "echo"}, name="after")
    assert recorder.named("after") == [("after", "disconnect: not connected", 0)]
    session.close()


@pytest.mark.parametrize("size", [1, 70_000])
def test_binary_frames_round_trip_with_a_custom_match(ws: WebSocketSession, recorder: Recorder, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)
    reply = ws.request(payload, name="binary", match=lambda message: isinstance(message, bytes))
    assert reply == payload
    assert recorder.named("binary") == [("binary", None, size)]


def test_protocol_ping_measures_a_pong(ws: WebSocketSession, recorder: Recorder) -> None:
    assert ws.ping() >= 0
    assert recorder.named("ping")[0][1] is None


def test_idle_connections_are_kept_alive_with_protocol_pings(
    environment: Environment, ws_backend: Backend, recorder: Recorder
) -> None:
    class Pinging(WebSocketUser):
        ping_interval = 0.1

    session = open_session(environment, ws_backend.url, Pinging)
    polls = 500
    while len(recorder.named("keepalive")) < 2 and polls:
        gevent.sleep(0.01)
        polls -= 1
    session.close()
    assert len(recorder.named("keepalive")) >= 2
    assert all(failure is None for _, failure, _ in recorder.named("keepalive"))


def test_upgrade_rejected_names_the_http_status(environment: Environment, ws_backend: Backend) -> None:
    class NotAWebSocket(WebSocketUser):
        reconnect = None

    recorder = Recorder(environment)
    session = open_session(environment, f"{ws_backend.url}/stats", NotAWebSocket, wait=False)
    assert not session.wait_connected(10)
    assert recorder.named("connect") == [("connect", "connect: upgrade rejected: HTTP 200", 0)]


def test_wss_with_a_generated_certificate(environment: Environment, recorder: Recorder, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]

    class Trusting(WebSocketUser):
        tls_ca_file = str(pki.ca_cert)

    class Unverified(WebSocketUser):
        tls_verify = False

    class Distrusting(WebSocketUser):
        reconnect = None

    with running_backend("websocket", tls) as backend:
        url = backend.url.replace("ws://", "wss://") if backend.url.startswith("ws://") else backend.url
        for user_class in (Trusting, Unverified):
            session = open_session(environment, url, user_class)
            assert session.request({"type": "echo", "payload": "tls"})["payload"] == "tls"
            session.close()
        session = open_session(environment, url, Distrusting, wait=False)
        assert not session.wait_connected(10)
    failures = [failure for _, failure, _ in recorder.named("connect")]
    assert failures[:2] == [None, None]
    assert failures[2] is not None and failures[2].startswith("connect: TLS: certificate verify failed (")


def test_wss_from_a_source_address(environment: Environment, recorder: Recorder, tmp_path: Path) -> None:
    """``--local-ips`` with ``wss://``: the TLS socket opened from the source address goes to the handshake as it
    is (the buffered header reader peeks, which TLS does not allow)."""
    pki = make_pki(tmp_path)

    class Trusting(WebSocketUser):
        tls_ca_file = str(pki.ca_cert)

    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    with running_backend("websocket", tls) as backend:
        url = backend.url.replace("ws://", "wss://") if backend.url.startswith("ws://") else backend.url
        local_ips.pool.configure("127.0.0.6")
        try:
            session = open_session(environment, url, Trusting)
            assert session.request({"type": "echo", "payload": "tls"})["payload"] == "tls"
            session.close()
        finally:
            local_ips.pool.configure(None)
    assert [failure for _, failure, _ in recorder.named("connect")] == [None]


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        (None, "no host"),
        ("http://127.0.0.1:8080", "scheme must be ws:// or wss://"),
        ("ws://:8080", "no host name"),
        ("ws://127.0.0.1:99999", "bad port"),
    ],
)
def test_bad_hosts_are_rejected_when_the_user_is_built(host: str | None, problem: str) -> None:
    with pytest.raises(WebSocketConfigError, match=problem):
        EchoUser(Environment(user_classes=[EchoUser], host=host))


def test_a_missing_ca_file_is_named() -> None:
    class MissingCa(WebSocketUser):
        tls_ca_file = "/nonexistent/ca.pem"

    with pytest.raises(WebSocketConfigError, match=r"tls_ca_file /nonexistent/ca.pem: no such file"):
        MissingCa(Environment(user_classes=[MissingCa], host="wss://127.0.0.1:1"))


def test_a_header_the_handshake_sets_itself_is_refused() -> None:
    class Offering(WebSocketUser):
        headers: ClassVar[dict[str, str]] = {"Sec-WebSocket-Protocol": "chat"}

    with pytest.raises(WebSocketConfigError, match=r"set by the handshake; use the subprotocols attribute"):
        Offering(Environment(user_classes=[Offering], host="ws://127.0.0.1:1"))


def test_preflight_says_what_to_raise_when_users_exceed_the_open_file_limit() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    messages = preflight_messages(soft + 1, "ws://127.0.0.1:8080", FdBudget(reserve=10))
    assert any("open-file limit" in message and "ulimit -n" in message for message in messages)
    assert preflight_messages(1, "ws://127.0.0.1:8080", FdBudget(reserve=10)) == []


class CountedEcho(WebSocketUser):
    """Echo requests, a quarter answered with an injected error; no wait, so stops land mid-request."""

    wait_time = constant(0)
    reconnect = QUICK_RECONNECT

    @task
    def echo(self) -> None:
        self.ws.request({"type": "echo", "payload": "x", "fault": {"error": "injected", "rate": 0.25}}, name="echo")


def test_locust_counts_equal_the_server_counters_and_nothing_leaks(ws_backend: Backend) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    server_stats(ws_backend, reset=True)
    environment = Environment(user_classes=[CountedEcho], host=ws_backend.url)
    recorder = Recorder(environment)
    runner = environment.create_local_runner()
    runner.start(20, spawn_rate=20)
    gevent.sleep(1.5)
    runner.quit()  # the stop waits for requests in flight (WebSocketUser.stop), so none is cut short
    gevent.sleep(0.5)
    served = server_stats(ws_backend)

    echoes = recorder.named("echo")
    answered_ok = sum(1 for _, failure, _ in echoes if failure is None)
    error_replies = sum(1 for _, failure, _ in echoes if failure == "error: injected")
    assert answered_ok > 100
    assert answered_ok + error_replies == len(echoes)  # nothing else went wrong, nothing was cut short
    assert served["requests"].get("echo", 0) == len(echoes)  # every request sent was recorded once
    assert served["injected_errors"] == error_replies
    assert served["sent_text"] == answered_ok + error_replies  # every reply the server sent was recorded
    stats = environment.stats.get("echo", "websocket")
    assert stats.num_requests == len(echoes)
    assert served["connections_opened"] == 20 and served["connections_open"] == 0

    assert counts_for(environment).open == 0
    assert session_greenlets() == []
    assert len(os.listdir("/proc/self/fd")) <= fds_before
