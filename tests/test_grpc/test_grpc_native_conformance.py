"""The native gRPC transport against three real servers — grpcio's sync server, grpc.aio's, and Node's
@grpc/grpc-js — and grpcio's own client alongside it as the reference: the same calls must come out the same.

All four call kinds; metadata both ways (``-bin`` included); every status code with its details; deadlines and
cancellation (seen by the server); messages from 0 B to several MiB; many concurrent streams on one connection;
gzip-compressed responses; TLS and mTLS; a server restart (GOAWAY, UNAVAILABLE, then recovery).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import grpc
import pytest

from backends.kit import grpc_counters
from locust_ext.testing import Backend, free_port, running_server
from tests.test_grpc.grpc_conformance import SERVER_KINDS, TRANSPORTS, channel, conformance_server
from tests.tls_certs import make_pki

from loadtest.v1 import loadtest_pb2 as pb  # isort: skip
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc  # isort: skip

MIB = 1024 * 1024
BIG = [("grpc.max_receive_message_length", 64 * MIB), ("grpc.max_send_message_length", 64 * MIB)]


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Backend]]:
    with conformance_server(request.param) as backend:
        yield request.param, backend


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def echo(server: tuple[str, Backend], transport: str) -> Iterator[pb_grpc.EchoStub]:
    ch = channel(server[1].address, transport, options=tuple(BIG))
    yield pb_grpc.EchoStub(ch)
    ch.close()


def cancelled_count(address: str) -> int:
    ch = channel(address, "native")
    try:
        return int(pb_grpc.HelloStub(ch).SayHello(pb.HelloRequest(name="cancelled"), timeout=5).message)
    finally:
        ch.close()


def requests(count: int, size: int = 3) -> Iterator[pb.EchoRequest]:
    for i in range(count):
        yield pb.EchoRequest(payload=bytes([i % 256]) * size)


def test_all_four_call_kinds(server: tuple[str, Backend], transport: str, echo: pb_grpc.EchoStub) -> None:
    ch = channel(server[1].address, transport)
    assert pb_grpc.HelloStub(ch).SayHello(pb.HelloRequest(name="n"), timeout=10).message == "Hello, n!"
    assert [m.seq for m in pb_grpc.StreamStub(ch).Subscribe(pb.StreamRequest(count=50, payload_size=10))] == list(
        range(50)
    )
    ch.close()
    summary = echo.EchoClientStream(requests(20), timeout=10)
    assert (summary.message_count, summary.total_bytes) == (20, 60)
    replies = list(echo.EchoBidi(requests(20), timeout=10))
    assert [r.seq for r in replies] == list(range(20)) and replies[5].payload == b"\x05" * 3


def test_metadata_both_ways_with_binary_keys(echo: pb_grpc.EchoStub) -> None:
    sent = (("x-echo-text", "plain value"), ("x-echo-blob-bin", b"\x00\xff\x10 bytes"))
    reply, call = echo.Echo.with_call(pb.EchoRequest(payload=b"m"), metadata=sent, timeout=10)
    assert reply.payload == b"m" and call.code() is grpc.StatusCode.OK
    for received in (call.initial_metadata(), call.trailing_metadata()):
        assert {key: value for key, value in received if key.startswith("x-echo-")} == dict(sent)
    stream = echo.EchoBidi(requests(2), metadata=sent, timeout=10)
    assert [r.seq for r in stream] == [0, 1]
    assert {k: v for k, v in stream.trailing_metadata() if k.startswith("x-echo-")} == dict(sent)


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name)
def test_every_status_code_with_details(echo: pb_grpc.EchoStub, code: grpc.StatusCode) -> None:
    details = f"{code.name.lower()}: 100% sure, see /x?y=z"
    metadata = (("x-status", code.name), ("x-message", details), ("x-echo-why-bin", b"\x01\x02"))
    with pytest.raises(grpc.RpcError) as unary:
        echo.Echo(pb.EchoRequest(), metadata=metadata, timeout=10)
    assert (unary.value.code(), unary.value.details()) == (code, details)
    assert dict(unary.value.trailing_metadata())["x-echo-why-bin"] == b"\x01\x02"
    with pytest.raises(grpc.RpcError) as streamed:
        list(echo.EchoBidi(requests(3), metadata=metadata, timeout=10))
    assert (streamed.value.code(), streamed.value.details()) == (code, details)
    with pytest.raises(grpc.RpcError) as client_stream:
        echo.EchoClientStream(requests(3), metadata=metadata, timeout=10)
    assert (client_stream.value.code(), client_stream.value.details()) == (code, details)


@pytest.mark.parametrize("size", [0, 1, 65_535, 70_000, 3 * MIB, 9 * MIB])
def test_message_sizes_both_ways(echo: pb_grpc.EchoStub, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    assert echo.Echo(pb.EchoRequest(payload=payload), timeout=30).payload == payload
    replies = list(echo.EchoBidi(iter([pb.EchoRequest(payload=payload)] * 2), timeout=30))
    assert [len(r.payload) for r in replies] == [size, size] and replies[1].payload == payload


def test_receive_limit_is_grpcs_default(server: tuple[str, Backend], transport: str) -> None:
    ch = channel(server[1].address, transport)
    with pytest.raises(grpc.RpcError) as caught:
        pb_grpc.EchoStub(ch).Echo(pb.EchoRequest(payload=b"x" * (5 * MIB)), timeout=30)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    ch.close()


def test_deadline_ends_the_call_and_the_connection_stays_usable(echo: pb_grpc.EchoStub) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        echo.Echo(pb.EchoRequest(payload=b"slow"), metadata=(("x-sleep-ms", "3000"),), timeout=0.3)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.5
    stream = echo.EchoBidi(requests(1), metadata=(("x-sleep-ms", "3000"),), timeout=0.3)
    with pytest.raises(grpc.RpcError) as streamed:
        list(stream)
    assert streamed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert echo.Echo(pb.EchoRequest(payload=b"after"), timeout=10).payload == b"after"


def test_cancellation_reaches_the_server(server: tuple[str, Backend], echo: pb_grpc.EchoStub) -> None:
    before = cancelled_count(server[1].address)
    call: Any = echo.EchoBidi(requests(1), metadata=(("x-sleep-ms", "4000"),), timeout=30)
    gevent.sleep(0.3)
    assert call.cancel() is True
    with pytest.raises(grpc.RpcError) as caught:
        next(call)
    assert caught.value.code() is grpc.StatusCode.CANCELLED
    deadline = time.monotonic() + 10
    while cancelled_count(server[1].address) == before and time.monotonic() < deadline:
        gevent.sleep(0.1)
    assert cancelled_count(server[1].address) > before


def test_many_concurrent_streams_on_one_connection(server: tuple[str, Backend], transport: str) -> None:
    ch = channel(server[1].address, transport)
    hello, streams = pb_grpc.HelloStub(ch), pb_grpc.StreamStub(ch)

    def unary(i: int) -> list[str]:
        return [hello.SayHello(pb.HelloRequest(name=f"{i}.{j}"), timeout=30).message for j in range(5)]

    def stream(i: int) -> int:
        return sum(1 for _ in streams.Subscribe(pb.StreamRequest(count=20, interval_ms=5), timeout=30))

    unary_jobs = [gevent.spawn(unary, i) for i in range(150)]
    stream_jobs = [gevent.spawn(stream, i) for i in range(30)]
    gevent.joinall([*unary_jobs, *stream_jobs], timeout=60, raise_error=True)
    assert [job.value for job in unary_jobs] == [[f"Hello, {i}.{j}!" for j in range(5)] for i in range(150)]
    assert [job.value for job in stream_jobs] == [20] * 30
    if transport == "native":
        assert ch._conn.next_id > 2 * (150 * 5 + 30)  # all on its one connection
    ch.close()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_gzip_compressed_requests_and_responses(kind: str, transport: str) -> None:
    """Requests gzip-compressed (channel compression); responses too where the server compresses (grpc-js's
    server does not: it always answers ``grpc-encoding: identity``)."""
    payload = b"compress me " * 20_000
    with conformance_server(kind, "--gzip") as backend:
        ch = channel(backend.address, transport, compression=grpc.Compression.Gzip)
        reply, call = pb_grpc.EchoStub(ch).Echo.with_call(pb.EchoRequest(payload=payload), timeout=10)
        assert reply.payload == payload
        streamed = list(pb_grpc.StreamStub(ch).Subscribe(pb.StreamRequest(count=3, payload_size=50_000), timeout=10))
        assert [len(m.payload) for m in streamed] == [50_000] * 3
        if transport == "native" and kind != "node":
            assert (b"grpc-encoding", b"gzip") in call._headers
        ch.close()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_tls_and_mtls(kind: str, transport: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    roots = {"root_certificates": str(pki.ca_cert)}
    with conformance_server(kind, *tls) as backend:
        ch = channel(f"localhost:{backend.port}", transport, secure=True, **roots)
        assert pb_grpc.HelloStub(ch).SayHello(pb.HelloRequest(name="tls"), timeout=10).message == "Hello, tls!"
        ch.close()
    with conformance_server(kind, *tls, "--tls-client-ca", str(pki.ca_cert)) as backend:
        client = {"client_certificate": str(pki.client_cert), "client_key": str(pki.client_key)}
        ch = channel(f"localhost:{backend.port}", transport, secure=True, **roots, **client)
        assert pb_grpc.HelloStub(ch).SayHello(pb.HelloRequest(name="mtls"), timeout=10).message == "Hello, mtls!"
        ch.close()
        anonymous = channel(f"localhost:{backend.port}", transport, secure=True, **roots)
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.HelloStub(anonymous).SayHello(pb.HelloRequest(name="anon"), timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        anonymous.close()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_server_restart_unavailable_then_recovery(kind: str, transport: str) -> None:
    port = str(free_port())
    with conformance_server(kind, "--port", port) as backend:
        ch = channel(backend.address, transport)
        hello = pb_grpc.HelloStub(ch)
        assert hello.SayHello(pb.HelloRequest(name="before"), timeout=10).message == "Hello, before!"
        in_flight = gevent.spawn(
            pb_grpc.EchoStub(ch).Echo, pb.EchoRequest(), metadata=(("x-sleep-ms", "20000"),), timeout=30
        )
        gevent.sleep(0.3)
    in_flight.join(timeout=15)
    assert isinstance(in_flight.exception, grpc.RpcError)
    assert in_flight.exception.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    with pytest.raises(grpc.RpcError) as down:
        hello.SayHello(pb.HelloRequest(name="down"), timeout=5)
    assert down.value.code() is grpc.StatusCode.UNAVAILABLE
    with conformance_server(kind, "--port", port):
        deadline = time.monotonic() + 20
        while True:
            try:
                assert hello.SayHello(pb.HelloRequest(name="after"), timeout=5).message == "Hello, after!"
                break
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
                gevent.sleep(0.2)
    ch.close()


def test_calls_refused_by_goaway_unary_requests_retried_streamed_requests_unavailable(grpc_backend: Backend) -> None:
    """A first connection refused with GOAWAY(0) before any stream: calls with a unary request (unary, server
    stream) are retried on a new connection and the server sees each once, as grpcio retries them; a call whose
    requests were streamed (bidi) fails UNAVAILABLE naming the GOAWAY."""
    command = [sys.executable, str(Path(__file__).parent / "goaway_proxy.py"), "--upstream", grpc_backend.address]
    grpc_counters(grpc_backend, reset=True)
    with running_server(command, kind="goaway-proxy") as front:
        ch = channel(front.address, "native")
        assert pb_grpc.HelloStub(ch).SayHello(pb.HelloRequest(name="again"), timeout=10).message == "Hello, again!"
        ch.close()
    with running_server(command, kind="goaway-proxy") as front:
        ch = channel(front.address, "native")
        assert [m.seq for m in pb_grpc.StreamStub(ch).Subscribe(pb.StreamRequest(count=2), timeout=10)] == [0, 1]
        ch.close()
    with running_server(command, kind="goaway-proxy") as front:
        ch = channel(front.address, "native")
        with pytest.raises(grpc.RpcError) as refused:
            list(pb_grpc.EchoStub(ch).EchoBidi(requests(2), timeout=10))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE and "GOAWAY" in refused.value.details()
        assert len(list(pb_grpc.EchoStub(ch).EchoBidi(requests(2), timeout=10))) == 2
        ch.close()
    served = grpc_counters(grpc_backend).methods
    assert served["/loadtest.v1.Hello/SayHello"].received == served["/loadtest.v1.Stream/Subscribe"].received == 1
    assert served["/loadtest.v1.Echo/EchoBidi"].received == 1


def test_small_receive_window_is_topped_up_with_window_updates(server: tuple[str, Backend]) -> None:
    """With grpc's minimum 64 KiB windows instead of 1 GiB, several MiB only arrive if the native client keeps
    sending WINDOW_UPDATE for the connection and the stream as it reads."""
    from locust_ext.grpc.native import NativeChannel

    ch = NativeChannel(server[1].address, options=BIG, receive_window=65_535)
    payload = b"w" * (6 * MIB)
    echo = pb_grpc.EchoStub(ch)
    assert echo.Echo(pb.EchoRequest(payload=payload), timeout=30).payload == payload
    assert [len(r.payload) for r in echo.EchoBidi(iter([pb.EchoRequest(payload=payload)] * 2), timeout=30)] == [
        6 * MIB
    ] * 2
    ch.close()
