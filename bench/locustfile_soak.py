"""Users for bench/soak.py: WebSocket users (echo, stream, ping) and gRPC users (unary, client-streaming,
server-streaming, bidi), churned by the soak's ``--shape churn`` (users leave and new ones connect).

Targets from the environment: ``SOAK_WS_HOST`` (ws://127.0.0.1:8080) and ``SOAK_GRPC_HOST`` (127.0.0.1:50051).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from locust import between, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser, WebSocketUser

WS_HOST = os.environ.get("SOAK_WS_HOST", "ws://127.0.0.1:8080")
GRPC_HOST = os.environ.get("SOAK_GRPC_HOST", "127.0.0.1:50051")
PAYLOAD = b"s" * 512


class SoakWsUser(WebSocketUser):
    """Connects when it starts, disconnects when the churn stops it; echo, a 5-message stream, pings."""

    host = WS_HOST
    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        super().on_start()
        self.stream_ids = itertools.count(1)

    @task(4)
    def echo(self) -> None:
        self.ws.request({"type": "echo", "payload": "e" * 256}, name="echo")

    @task
    def stream(self) -> None:
        stream_id = f"s{next(self.stream_ids)}"

        def last(message: Any) -> bool:
            return isinstance(message, dict) and message.get("id") == stream_id and message.get("seq") == 4

        self.ws.request({"type": "stream", "id": stream_id, "count": 5, "interval_ms": 0, "size": 64}, match=last,
                        name="stream")  # fmt: skip

    @task
    def ping(self) -> None:
        self.ws.ping()


class SoakGrpcUser(GrpcUser):
    """Every call kind on one channel: unary hello and echo, client-streaming, server-streaming, bidi."""

    host = GRPC_HOST
    stub_class = pb_grpc.EchoStub
    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        self.hello = pb_grpc.HelloStub(self.channel)
        self.streams = pb_grpc.StreamStub(self.channel)

    @task(3)
    def unary(self) -> None:
        self.hello.SayHello(pb.HelloRequest(name="soak"))
        self.stub.Echo(pb.EchoRequest(payload=PAYLOAD))

    @task
    def client_stream(self) -> None:
        self.stub.EchoClientStream(pb.EchoRequest(payload=PAYLOAD) for _ in range(5))

    @task
    def bidi(self) -> None:
        for _reply in self.stub.EchoBidi(pb.EchoRequest(payload=PAYLOAD) for _ in range(5)):
            pass

    @task
    def server_stream(self) -> None:
        for _message in self.streams.Subscribe(pb.StreamRequest(count=5, interval_ms=5, payload_size=256)):
            pass
