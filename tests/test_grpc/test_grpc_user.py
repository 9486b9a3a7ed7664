"""GrpcUser against the real reference backend, in-process: one event per call, accounting, streams, TLS, faults."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import grpc
import pytest
from locust import constant, task
from locust.env import Environment

from locust_ext import GrpcCallError, GrpcUser
from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.recording import FIRST_MESSAGE, MESSAGE_LATENCY, MESSAGE_ROUND_TRIP

from loadtest.v1 import loadtest_pb2 as pb  # isort: skip
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc  # isort: skip
from backends.kit import grpc_counters, running_backend
from locust_ext.testing import Backend, locust_command, run_locust
from tests.tls_certs import make_pki

HELLO = "/loadtest.v1.Hello/SayHello"
SUBSCRIBE = "/loadtest.v1.Stream/Subscribe"


@dataclass
class Recorded:
    """Every request event an Environment saw, in order."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **event: Any) -> None:
        self.events.append(event)

    def of(self, request_type: str = "grpc", name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["request_type"] == request_type and (name is None or e["name"] == name)]


def environment_for(*user_classes: type[GrpcUser], host: str) -> tuple[Environment, Recorded]:
    env = Environment(user_classes=list(user_classes), host=host)
    recorded = Recorded()
    env.events.request.add_listener(recorded)
    return env, recorded


def one_user(user_class: type[GrpcUser], backend: Backend) -> tuple[GrpcUser, Recorded]:
    env, recorded = environment_for(user_class, host=backend.address)
    return user_class(env), recorded


@contextmanager
def local_run(env: Environment, users: int) -> Iterator[None]:
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    try:
        yield
    finally:
        runner.quit()


class Hello(GrpcUser):
    stub_class = pb_grpc.HelloStub
    wait_time = constant(0)

    @task
    def hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="t"))


class Streams(GrpcUser):
    stub_class = pb_grpc.StreamStub


class Echoes(GrpcUser):
    stub_class = pb_grpc.EchoStub


@pytest.fixture(autouse=True)
def fresh_counters(grpc_backend: Backend) -> None:
    grpc_counters(grpc_backend, reset=True)


def test_unary_call_records_one_event_with_sub_ms_time_and_length(grpc_backend: Backend) -> None:
    user, recorded = one_user(Hello, grpc_backend)
    reply = user.stub.SayHello(pb.HelloRequest(name="x"))
    assert reply.message == "Hello, x!"
    (event,) = recorded.events
    assert event["request_type"] == "grpc" and event["name"] == HELLO and event["exception"] is None
    assert event["response_length"] == reply.ByteSize()
    assert isinstance(event["response_time"], float) and event["response_time"] > 0
    user._close()


def test_with_call_and_name_override(grpc_backend: Backend) -> None:
    user, recorded = one_user(Hello, grpc_backend)
    with user.call_name("greeting"):
        reply, call = user.stub.SayHello.with_call(pb.HelloRequest(name="y"))
    assert reply.message == "Hello, y!" and call.code() is grpc.StatusCode.OK
    assert [e["name"] for e in recorded.events] == ["greeting"]
    user._close()


def test_failure_is_recorded_with_status_name_first_and_raised(grpc_backend: Backend) -> None:
    user, recorded = one_user(Hello, grpc_backend)
    with pytest.raises(GrpcCallError) as caught:
        user.stub.SayHello(pb.HelloRequest(), metadata=[("x-fault-status", "UNAVAILABLE"), ("x-fault-message", "down")])
    assert isinstance(caught.value, grpc.RpcError)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE and caught.value.details() == "down"
    (event,) = recorded.events
    assert str(event["exception"]) == "UNAVAILABLE: down" and repr(event["exception"]) == "UNAVAILABLE: down"
    user._close()


def test_default_deadline_and_per_call_override(grpc_backend: Backend) -> None:
    class Impatient(Hello):
        timeout = 0.05

    user, recorded = one_user(Impatient, grpc_backend)
    slow = [("x-fault-delay-ms", "300")]
    with pytest.raises(GrpcCallError) as caught:
        user.stub.SayHello(pb.HelloRequest(), metadata=slow)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    user.stub.SayHello(pb.HelloRequest(), metadata=slow, timeout=5)
    outcomes = [str(e["exception"]).split(":")[0] if e["exception"] else "OK" for e in recorded.events]
    assert outcomes == ["DEADLINE_EXCEEDED", "OK"]
    user._close()


def test_metadata_on_every_call_reaches_the_server(grpc_backend: Backend) -> None:
    class Tagged(Hello):
        # The backend acts on these keys, which proves they arrived.
        metadata = (("x-fault-status", "PERMISSION_DENIED"), ("x-fault-message", "token seen"))

    user, recorded = one_user(Tagged, grpc_backend)
    for _ in range(3):
        with pytest.raises(GrpcCallError):
            user.stub.SayHello(pb.HelloRequest())
    assert {str(e["exception"]) for e in recorded.events} == {"PERMISSION_DENIED: token seen"}
    assert grpc_counters(grpc_backend).methods[HELLO].failed == 3
    user._close()


def test_server_stream_records_whole_call_first_message_and_message_latency(grpc_backend: Backend) -> None:
    user, recorded = one_user(Streams, grpc_backend)
    messages = list(user.stub.Subscribe(pb.StreamRequest(count=5, interval_ms=5, payload_size=10)))
    assert [m.seq for m in messages] == list(range(5))
    (whole,) = recorded.of("grpc")
    assert whole["exception"] is None and whole["context"]["messages"] == 5
    assert whole["context"]["messages_per_second"] > 0
    assert whole["response_length"] == sum(m.ByteSize() for m in messages)
    assert len(recorded.of(FIRST_MESSAGE, SUBSCRIBE)) == 1
    assert len(recorded.of(MESSAGE_LATENCY, SUBSCRIBE)) == 5
    user._close()


def test_stream_failing_midway_is_one_failure(grpc_backend: Backend) -> None:
    user, recorded = one_user(Streams, grpc_backend)
    seen = []
    with pytest.raises(GrpcCallError) as caught:
        for message in user.stub.Subscribe(pb.StreamRequest(count=10), metadata=[("x-fault-after", "4")]):
            seen.append(message.seq)
    assert seen == [0, 1, 2, 3] and caught.value.code() is grpc.StatusCode.ABORTED
    (whole,) = recorded.of("grpc")
    assert str(whole["exception"]).startswith("ABORTED") and whole["context"]["messages"] == 4
    user._close()


def test_half_read_stream_is_cancelled_and_recorded_as_such(grpc_backend: Backend) -> None:
    user, recorded = one_user(Streams, grpc_backend)

    def read_two() -> None:
        stream = user.stub.Subscribe(pb.StreamRequest(count=100, interval_ms=10))
        next(stream)
        next(stream)
        # The task returns with the stream half-read.

    read_two()
    (whole,) = recorded.of("grpc")
    assert str(whole["exception"]).startswith("CANCELLED") and "half-read" in str(whole["exception"])
    assert whole["context"]["messages"] == 2
    deadline = time.monotonic() + 5
    while grpc_counters(grpc_backend).methods[SUBSCRIBE].cancelled != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert grpc_counters(grpc_backend).methods[SUBSCRIBE].cancelled == 1
    user._close()


def test_client_stream_consumes_requests_lazily(grpc_backend: Backend) -> None:
    user, recorded = one_user(Echoes, grpc_backend)
    produced: list[int] = []

    def requests() -> Iterator[pb.EchoRequest]:
        for index in range(4):
            produced.append(index)
            yield pb.EchoRequest(payload=b"ab")

    generator = requests()
    assert produced == []  # nothing is pulled before the call
    summary = user.stub.EchoClientStream(generator)
    assert (summary.message_count, summary.total_bytes) == (4, 8) and produced == [0, 1, 2, 3]
    (event,) = recorded.of("grpc")
    assert event["name"] == "/loadtest.v1.Echo/EchoClientStream" and event["exception"] is None
    user._close()


def test_exception_in_the_users_iterator_is_not_a_server_failure(grpc_backend: Backend) -> None:
    user, recorded = one_user(Echoes, grpc_backend)

    def broken() -> Iterator[pb.EchoRequest]:
        yield pb.EchoRequest(payload=b"a")
        raise ValueError("bad test data")

    with pytest.raises(ValueError, match="bad test data"):
        user.stub.EchoClientStream(broken())
    (event,) = recorded.of("grpc")
    assert str(event["exception"]) == "CANCELLED: request iterator raised ValueError: bad test data"
    user._close()


def test_bidi_records_round_trip_per_reply(grpc_backend: Backend) -> None:
    user, recorded = one_user(Echoes, grpc_backend)
    replies = list(user.stub.EchoBidi(pb.EchoRequest(payload=bytes([n])) for n in range(6)))
    assert [r.seq for r in replies] == list(range(6))
    assert len(recorded.of("grpc")) == 1 and recorded.of("grpc")[0]["context"]["messages"] == 6
    assert len(recorded.of(MESSAGE_ROUND_TRIP)) == 6
    user._close()


def test_tls_and_mtls_users(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    server_tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]

    class Tls(Hello):
        root_certificates = str(pki.ca_cert)

    class Mtls(Tls):
        client_certificate = str(pki.client_cert)
        client_key = str(pki.client_key)

    with running_backend("grpc", server_tls) as backend:
        env, _recorded = environment_for(Tls, host=f"grpcs://{backend.address}")
        user = Tls(env)
        assert user.stub.SayHello(pb.HelloRequest(name="tls")).message == "Hello, tls!"
        user._close()
    with running_backend("grpc", [*server_tls, "--tls-client-ca", str(pki.ca_cert)]) as backend:
        env, _recorded = environment_for(Mtls, Tls, host=f"grpcs://{backend.address}")
        user = Mtls(env)
        assert user.stub.SayHello(pb.HelloRequest(name="m")).message == "Hello, m!"
        anonymous = Tls(env)
        with pytest.raises(GrpcCallError) as caught:
            anonymous.stub.SayHello(pb.HelloRequest())
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        user._close()
        anonymous._close()


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (None, "no host"),
        ("localhost", "expected host:port"),
        ("http://127.0.0.1:1", "scheme must be grpc:// or grpcs://"),
        ("::1:50051", "brackets"),
    ],
)
def test_bad_host_is_refused_with_a_fix(host: str | None, message: str) -> None:
    with pytest.raises(GrpcConfigError, match=message):
        Hello.check_host(host)


def test_unreadable_tls_file_is_named() -> None:
    class Tls(Hello):
        root_certificates = "/nonexistent/ca.pem"

    with pytest.raises(GrpcConfigError, match=r"Tls.root_certificates = '/nonexistent/ca.pem': cannot read"):
        Tls.check_host("grpcs://127.0.0.1:1")


def test_one_connection_per_user_and_shared_pools(grpc_backend: Backend) -> None:
    env, _ = environment_for(Hello, host=grpc_backend.address)
    users = [Hello(env) for _ in range(12)]
    for user in users:
        user.stub.SayHello(pb.HelloRequest())
    assert grpc_counters(grpc_backend).distinct_peers == 12
    for user in users:
        user._close()

    class Pooled(Hello):
        channel_pool_size = 3

    grpc_counters(grpc_backend, reset=True)
    pooled = [Pooled(env) for _ in range(12)]
    for user in pooled:
        user.stub.SayHello(pb.HelloRequest())
    assert grpc_counters(grpc_backend).distinct_peers == 3
    for user in pooled:
        user._close()


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed while listing
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_channels_close_when_users_stop_no_fd_leak(grpc_backend: Backend) -> None:
    env, _ = environment_for(Hello, host=grpc_backend.address)
    before = open_sockets()
    with local_run(env, users=30):
        gevent.sleep(1.0)
        assert open_sockets() >= 30  # a connection per user while they run
    gevent.sleep(0.5)
    assert open_sockets() <= before


def test_200_users_progress_concurrently_against_a_200ms_backend() -> None:
    with running_backend("grpc", ["--fault-delay-ms", "200"]) as slow:
        env, recorded = environment_for(Hello, host=slow.address)
        with local_run(env, users=200):
            gevent.sleep(2.5)
        done = len([e for e in recorded.of("grpc") if e["exception"] is None])
    # One call at a time would manage ~12 in 2.5 s; 200 concurrent users manage ~1,000/s once spawned.
    assert done > 600, done


def test_stop_waits_for_calls_in_flight_so_counts_match_the_server_exactly() -> None:
    # 50 ms per call: at the stop, nearly every one of the 20 users is in the middle of a call.
    with running_backend("grpc", ["--fault-delay-ms", "50"]) as slow:
        env, recorded = environment_for(Hello, host=slow.address)
        before = open_sockets()
        with local_run(env, users=20):
            gevent.sleep(1.5)
        gevent.sleep(0.3)
        events = recorded.of("grpc", HELLO)
        server = grpc_counters(slow).methods[HELLO]
    assert env.stats.get(HELLO, "grpc").num_requests == len(events)
    assert all(e["exception"] is None for e in events)
    # Every call the server saw was recorded, and every recorded success was completed by the server.
    assert (server.received, server.completed, server.cancelled) == (len(events), len(events), 0)
    assert open_sockets() <= before


def test_a_user_killed_mid_call_records_it_as_cancelled() -> None:
    # A kill that bypasses GrpcUser.stop (Locust does this after --stop-timeout) still leaves a record.
    with running_backend("grpc", ["--fault-delay-ms", "300"]) as slow:
        env, recorded = environment_for(Hello, host=slow.address)
        user = Hello(env)
        greenlet = gevent.spawn(user.stub.SayHello, pb.HelloRequest())
        gevent.sleep(0.1)
        greenlet.kill()
        user._close()
    (event,) = recorded.of("grpc", HELLO)
    assert str(event["exception"]) == "CANCELLED: call cut short: the user stopped mid-call"


def test_server_restart_mid_run_failures_bounded_then_recovery(tmp_path: Path) -> None:
    class Patient(Hello):
        timeout = 1.0

    with running_backend("grpc") as first:
        port = first.port
        env, recorded = environment_for(Patient, host=first.address)
        runner = env.create_local_runner()
        runner.start(5, spawn_rate=5)
        gevent.sleep(0.5)
        first.stop()
        gevent.sleep(1.5)
        down_events = len(recorded.events)
        with running_backend("grpc", ["--port", str(port)]) as second:
            assert second.port == port
            recovered_at = len(recorded.events)
            gevent.sleep(2.0)
            runner.quit()
    outage = recorded.events[:down_events]
    failures = [e for e in outage if e["exception"] is not None]
    assert failures and all(str(e["exception"]).startswith(("UNAVAILABLE", "CANCELLED")) for e in failures)
    # No hot loop: failures during the 1.5 s outage stay bounded (grpc backs off reconnects).
    assert len(failures) < 200, len(failures)
    after = [e for e in recorded.events[recovered_at:] if e["exception"] is None]
    assert len(after) > 50


class Dynamic(GrpcUser):
    """No stub_class: everything goes through reflection."""


def test_reflection_calls_all_four_kinds_recorded_like_stub_calls(grpc_backend: Backend) -> None:
    from google.protobuf.json_format import MessageToDict

    user, recorded = one_user(Dynamic, grpc_backend)
    reply = user.client.call("loadtest.v1.Hello/SayHello", {"name": "dyn"})
    assert MessageToDict(reply) == {"message": "Hello, dyn!"}
    assert user.client.call("/loadtest.v1.Hello/SayHello", '{"name": "json"}').message == "Hello, json!"
    stream = user.client.stream("loadtest.v1.Stream.Subscribe", {"count": 3})
    assert [m.seq for m in stream] == [0, 1, 2]
    summary = user.client.call("loadtest.v1.Echo/EchoClientStream", [{"payload": "YWI="}] * 2)
    assert (summary.message_count, summary.total_bytes) == (2, 4)
    echoed = [m.payload for m in user.client.stream("loadtest.v1.Echo/EchoBidi", [{"payload": "eA=="}] * 3)]
    assert echoed == [b"x"] * 3
    names = [e["name"] for e in recorded.of("grpc")]
    assert names == [
        HELLO,
        HELLO,
        SUBSCRIBE,
        "/loadtest.v1.Echo/EchoClientStream",
        "/loadtest.v1.Echo/EchoBidi",
    ]
    assert all(e["exception"] is None for e in recorded.of("grpc"))
    with pytest.raises(GrpcCallError) as caught:
        user.client.call("loadtest.v1.Hello/SayHello", {}, metadata=[("x-fault-status", "NOT_FOUND")])
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    user._close()


@pytest.mark.parametrize(
    ("method", "message", "expected"),
    [
        ("NoSlash", {}, "expected 'package.Service/Method'"),
        ("loadtest.v1.Nope/SayHello", {}, "does not know loadtest.v1.Nope"),
        ("loadtest.v1.Hello/Nope", {}, "has no method Nope"),
        ("loadtest.v1.Hello/SayHello", {"nam": "x"}, "bad message"),
        ("loadtest.v1.Hello/SayHello", "{not json", "bad JSON"),
    ],
)
def test_reflection_bad_input_names_the_problem(
    grpc_backend: Backend, method: str, message: dict[str, Any] | str, expected: str
) -> None:
    user, recorded = one_user(Dynamic, grpc_backend)
    with pytest.raises(GrpcConfigError, match=expected):
        user.client.call(method, message)
    assert recorded.events == []
    user._close()


class Subscriber(GrpcUser):
    stub_class = pb_grpc.StreamStub
    wait_time = constant(0)

    @task
    def subscribe(self) -> None:
        for _message in self.stub.Subscribe(pb.StreamRequest(count=5, interval_ms=50)):
            pass


def test_stop_lets_streams_in_flight_finish(grpc_backend: Backend) -> None:
    env, recorded = environment_for(Subscriber, host=grpc_backend.address)
    with local_run(env, users=10):
        gevent.sleep(1.0)
    gevent.sleep(0.3)
    streams = recorded.of("grpc", SUBSCRIBE)
    assert streams and all(e["exception"] is None for e in streams)
    server = grpc_counters(grpc_backend).methods[SUBSCRIBE]
    assert (server.received, server.completed, server.cancelled) == (len(streams), len(streams), 0)


def test_channel_options_and_compression_reach_the_channel(grpc_backend: Backend) -> None:
    big = pb.EchoRequest(payload=b"b" * (5 * 1024 * 1024))  # over grpc's default 4 MiB receive limit
    plain, recorded = one_user(Echoes, grpc_backend)
    with pytest.raises(GrpcCallError) as caught:
        plain.stub.Echo(big)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    plain._close()

    class WideEchoes(Echoes):
        channel_options = (("grpc.max_receive_message_length", 16 * 1024 * 1024),)
        compression = grpc.Compression.Gzip

    wide, recorded = one_user(WideEchoes, grpc_backend)
    assert len(wide.stub.Echo(big).payload) == len(big.payload)
    (event,) = recorded.of("grpc")
    assert event["exception"] is None and event["response_length"] > 5 * 1024 * 1024
    wide._close()


def test_server_name_override_checks_the_certificate_against_that_name(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)  # the server certificate names localhost, 127.0.0.1 and ::1

    class Named(Hello):
        root_certificates = str(pki.ca_cert)
        server_name_override = "localhost"

    class Misnamed(Named):
        server_name_override = "not-this-server.test"

    with running_backend("grpc", ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]) as backend:
        env, _recorded = environment_for(Named, Misnamed, host=f"grpcs://{backend.address}")
        named, misnamed = Named(env), Misnamed(env)
        assert named.stub.SayHello(pb.HelloRequest(name="n")).message == "Hello, n!"
        with pytest.raises(GrpcCallError) as caught:
            misnamed.stub.SayHello(pb.HelloRequest(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        named._close()
        misnamed._close()


def test_tls_settings_on_a_plaintext_host_are_refused() -> None:
    class Confused(Hello):
        root_certificates = "/some/ca.pem"

    with pytest.raises(GrpcConfigError, match="plaintext; use grpcs://"):
        Confused.check_host("127.0.0.1:50051")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://127.0.0.1:1", "error: GrpcHelloUser: host 'http://127.0.0.1:1': scheme must be grpc:// or grpcs://"),
        ("127.0.0.1", "error: GrpcHelloUser: host '127.0.0.1': expected host:port"),
    ],
)
def test_bad_host_stops_locust_before_load_with_one_line(host: str, expected: str) -> None:
    command = locust_command("locustfiles/grpc.py", "GrpcHelloUser", "--headless")
    command += ["--host", host, "-u", "1", "-t", "5s", "--skip-log-setup"]
    result = run_locust(command)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in result.stderr and "All users spawned" not in result.stderr
