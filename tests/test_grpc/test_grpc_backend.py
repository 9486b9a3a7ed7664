"""The reference gRPC backend over real loopback sockets: every RPC, faults, counters, health, reflection.

Every test runs against one server process and against ``--workers 2`` (two processes sharing the port and
the counters), so exact counts, cancellations and distinct peers hold across processes too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from backends.kit import running_backend
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import Backend

HELLO = "/loadtest.v1.Hello/SayHello"


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "two-workers"])
def grpc_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with running_backend("grpc", ["--workers", str(request.param)]) as backend:
        yield backend


@pytest.fixture
def channel(grpc_backend: Backend) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(grpc_backend.address) as channel:
        pb_grpc.AdminStub(channel).ResetCounters(pb.ResetCountersRequest())
        yield channel


def counters(channel: grpc.Channel) -> pb.Counters:
    return pb_grpc.AdminStub(channel).GetCounters(pb.GetCountersRequest())


def test_hello_and_counters_match_calls(channel: grpc.Channel) -> None:
    stub = pb_grpc.HelloStub(channel)
    for i in range(25):
        assert stub.SayHello(pb.HelloRequest(name=f"n{i}")).message == f"Hello, n{i}!"
    seen = counters(channel).methods[HELLO]
    assert (seen.received, seen.completed, seen.failed, seen.cancelled) == (25, 25, 0, 0)


def test_compute_hashes_rounds(channel: grpc.Channel) -> None:
    import hashlib

    reply = pb_grpc.ComputeStub(channel).Hash(pb.ComputeRequest(rounds=3, seed=b"s"))
    expected = hashlib.sha256(hashlib.sha256(hashlib.sha256(b"s").digest()).digest()).digest()
    assert reply.digest == expected and reply.rounds == 3


@pytest.mark.parametrize("size", [0, 64, 1024, 64 * 1024, 4 * 1024 * 1024 + 1])
def test_echo_any_size(channel: grpc.Channel, size: int, grpc_backend: Backend) -> None:
    big = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    with grpc.insecure_channel(grpc_backend.address, options=big) as wide:
        payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        assert pb_grpc.EchoStub(wide).Echo(pb.EchoRequest(payload=payload)).payload == payload


def test_client_stream_and_bidi(channel: grpc.Channel) -> None:
    stub = pb_grpc.EchoStub(channel)
    summary = stub.EchoClientStream(iter([pb.EchoRequest(payload=b"a" * n) for n in (1, 2, 3)]))
    assert (summary.message_count, summary.total_bytes) == (3, 6)
    replies = list(stub.EchoBidi(iter([pb.EchoRequest(payload=str(n).encode()) for n in range(5)])))
    assert [(r.seq, r.payload) for r in replies] == [(n, str(n).encode()) for n in range(5)]
    seen = counters(channel).methods
    assert seen["/loadtest.v1.Echo/EchoClientStream"].messages_received == 3
    assert seen["/loadtest.v1.Echo/EchoBidi"].messages_received == 5
    assert seen["/loadtest.v1.Echo/EchoBidi"].messages_sent == 5
    assert seen["/loadtest.v1.Echo/EchoBidi"].completed == 1


def test_server_stream_sequence_timestamps_and_interval(channel: grpc.Channel) -> None:
    before = time.time_ns()
    started = time.perf_counter()
    messages = list(pb_grpc.StreamStub(channel).Subscribe(pb.StreamRequest(count=5, interval_ms=20, payload_size=7)))
    elapsed = time.perf_counter() - started
    assert [m.seq for m in messages] == list(range(5))
    assert all(len(m.payload) == 7 for m in messages)
    stamps = [m.sent_at_unix_nanos for m in messages]
    assert before <= stamps[0] <= stamps[-1] <= time.time_ns()
    assert elapsed >= 0.08  # four gaps of 20 ms
    assert counters(channel).methods["/loadtest.v1.Stream/Subscribe"].messages_sent == 5


def test_fault_status_by_metadata(channel: grpc.Channel) -> None:
    stub = pb_grpc.HelloStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.SayHello(pb.HelloRequest(), metadata=[("x-fault-status", "RESOURCE_EXHAUSTED")])
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as caught:
        stub.SayHello(pb.HelloRequest(), metadata=[("x-fault-status", "14"), ("x-fault-message", "down")])
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE and caught.value.details() == "down"
    seen = counters(channel).methods[HELLO]
    assert (seen.received, seen.failed, seen.completed) == (2, 2, 0)


def test_fault_rate_is_honoured(channel: grpc.Channel) -> None:
    stub = pb_grpc.HelloStub(channel)
    failures = 0
    for _ in range(400):
        try:
            stub.SayHello(pb.HelloRequest(), metadata=[("x-fault-status", "INTERNAL"), ("x-fault-rate", "0.25")])
        except grpc.RpcError:
            failures += 1
    assert 50 <= failures <= 150  # 100 expected; binomial sd ~8.7
    seen = counters(channel).methods[HELLO]
    assert (seen.failed, seen.completed) == (failures, 400 - failures)


def test_bad_fault_metadata_is_invalid_argument(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        pb_grpc.HelloStub(channel).SayHello(pb.HelloRequest(), metadata=[("x-fault-status", "NOPE")])
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "x-fault-status" in (caught.value.details() or "")


def test_delay_and_deadline_counts_cancelled(channel: grpc.Channel) -> None:
    stub = pb_grpc.HelloStub(channel)
    started = time.perf_counter()
    stub.SayHello(pb.HelloRequest(), metadata=[("x-fault-delay-ms", "50")])
    assert time.perf_counter() - started >= 0.05
    with pytest.raises(grpc.RpcError) as caught:
        stub.SayHello(pb.HelloRequest(), metadata=[("x-fault-delay-ms", "500")], timeout=0.05)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = counters(channel).methods[HELLO]
        if seen.cancelled == 1:
            break
        time.sleep(0.05)
    assert (seen.received, seen.completed, seen.cancelled) == (2, 1, 1)


def test_stream_fails_midway(channel: grpc.Channel) -> None:
    call = pb_grpc.StreamStub(channel).Subscribe(
        pb.StreamRequest(count=10), metadata=[("x-fault-after", "3"), ("x-fault-status", "DATA_LOSS")]
    )
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for message in call:
            received.append(message.seq)
    assert received == [0, 1, 2] and caught.value.code() is grpc.StatusCode.DATA_LOSS
    seen = counters(channel).methods["/loadtest.v1.Stream/Subscribe"]
    assert (seen.failed, seen.messages_sent) == (1, 3)


def test_client_stream_fails_after_n_requests(channel: grpc.Channel) -> None:
    requests = iter([pb.EchoRequest(payload=b"x")] * 10)
    with pytest.raises(grpc.RpcError) as caught:
        pb_grpc.EchoStub(channel).EchoClientStream(requests, metadata=[("x-fault-after", "4")])
    assert caught.value.code() is grpc.StatusCode.ABORTED


def test_cancelled_stream_is_counted_cancelled(channel: grpc.Channel) -> None:
    call = pb_grpc.StreamStub(channel).Subscribe(pb.StreamRequest(count=1000, interval_ms=10))
    next(call)
    call.cancel()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and counters(channel).methods["/loadtest.v1.Stream/Subscribe"].cancelled != 1:
        time.sleep(0.05)
    seen = counters(channel).methods["/loadtest.v1.Stream/Subscribe"]
    assert (seen.received, seen.cancelled, seen.completed) == (1, 1, 0)


def test_distinct_peers_count_connections(grpc_backend: Backend, channel: grpc.Channel) -> None:
    for index in range(3):
        # A distinct channel arg forces a separate subchannel (and TCP connection) per channel.
        with grpc.insecure_channel(grpc_backend.address, options=[("loadtest.test-channel", index)]) as own:
            pb_grpc.HelloStub(own).SayHello(pb.HelloRequest())
    assert counters(channel).distinct_peers == 3


def test_admin_calls_are_not_counted(channel: grpc.Channel) -> None:
    counters(channel)
    assert "/loadtest.v1.Admin/GetCounters" not in counters(channel).methods


def test_health_reports_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "loadtest.v1.Hello", "loadtest.v1.Stream"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="loadtest.v1.Echo"),
    ]
    listed, described = list(stub.ServerReflectionInfo(iter(requests)))
    names = {service.name for service in listed.list_services_response.service}
    assert {"loadtest.v1.Hello", "loadtest.v1.Echo", "grpc.health.v1.Health"} <= names
    assert described.file_descriptor_response.file_descriptor_proto
