"""The four gRPC test types against the reference backend: hello, compute, echo (64 B / 1 KiB / 64 KiB), stream.

    make backends
    locust -f locustfiles/grpc.py --headless -u 50 -r 10 -t 30s            # all four, weighted
    locust -f locustfiles/grpc.py --headless -u 50 -r 10 -t 30s GrpcHelloUser  # one type alone (or --tags echo)

Host defaults to 127.0.0.1:50051 (``--host`` or ``LOCUST_HOST`` override it; ``grpcs://`` for TLS).
"""

from __future__ import annotations

import os

import _unshadow  # noqa: F401  (first: Locust imports this file under the name "grpc"; see _unshadow.py)
from locust import between, tag, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser

DEFAULT_HOST = os.environ.get("LOADTEST_GRPC_HOST", "127.0.0.1:50051")
ECHO_PAYLOADS = {"64B": b"e" * 64, "1KiB": b"e" * 1024, "64KiB": b"e" * 64 * 1024}


class GrpcHelloUser(GrpcUser):
    """Unary greeting: the cheapest round trip."""

    host = DEFAULT_HOST
    stub_class = pb_grpc.HelloStub
    weight = 4
    wait_time = between(0.05, 0.15)

    @tag("hello")
    @task
    def say_hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="locust"))


class GrpcComputeUser(GrpcUser):
    """CPU-bound work on the server: 200 rounds of SHA-256 per call."""

    host = DEFAULT_HOST
    stub_class = pb_grpc.ComputeStub
    weight = 2
    wait_time = between(0.05, 0.15)

    @tag("compute")
    @task
    def hash_rounds(self) -> None:
        self.stub.Hash(pb.ComputeRequest(rounds=200, seed=b"locust"))


class GrpcEchoUser(GrpcUser):
    """Unary echo at three payload sizes, each under its own name, plus client-streaming and bidi echo."""

    host = DEFAULT_HOST
    stub_class = pb_grpc.EchoStub
    weight = 3
    wait_time = between(0.05, 0.15)

    @tag("echo")
    @task(3)
    def echo_sizes(self) -> None:
        for label, payload in ECHO_PAYLOADS.items():
            with self.call_name(f"/loadtest.v1.Echo/Echo [{label}]"):
                self.stub.Echo(pb.EchoRequest(payload=payload))

    @tag("echo")
    @task
    def echo_client_stream(self) -> None:
        self.stub.EchoClientStream(pb.EchoRequest(payload=ECHO_PAYLOADS["1KiB"]) for _ in range(10))

    @tag("echo")
    @task
    def echo_bidi(self) -> None:
        for _reply in self.stub.EchoBidi(pb.EchoRequest(payload=ECHO_PAYLOADS["64B"]) for _ in range(10)):
            pass


class GrpcStreamUser(GrpcUser):
    """Server streaming: 20 messages of 256 B, 10 ms apart; per-message latency from the send timestamps."""

    host = DEFAULT_HOST
    stub_class = pb_grpc.StreamStub
    weight = 1
    wait_time = between(0.1, 0.3)

    @tag("stream")
    @task
    def subscribe(self) -> None:
        for _message in self.stub.Subscribe(pb.StreamRequest(count=20, interval_ms=10, payload_size=256)):
            pass
