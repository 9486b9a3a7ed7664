"""Every gRPC call kind once per iteration, for the Aggregated-counts-calls tests (run with --iteration-limit).

One iteration is 4 calls: SayHello (unary), Subscribe (server stream, ``SUBSCRIBE_MESSAGES`` messages, each with
a send time), EchoClientStream (``CLIENT_STREAM_MESSAGES`` requests) and EchoBidi (``BIDI_MESSAGES`` round trips).
The streams also record derived rows: a first message per Subscribe and EchoBidi, a latency per Subscribe message,
a round trip per EchoBidi reply.
"""

from __future__ import annotations

from locust import constant, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser

CALLS_PER_ITERATION = 4
SUBSCRIBE_MESSAGES = 5
CLIENT_STREAM_MESSAGES = 3
BIDI_MESSAGES = 4


class EveryCallKind(GrpcUser):
    wait_time = constant(0)
    timeout = 10.0
    unavailable_backoff = None

    def on_start(self) -> None:
        self.hello = pb_grpc.HelloStub(self.channel)
        self.stream = pb_grpc.StreamStub(self.channel)
        self.echo = pb_grpc.EchoStub(self.channel)

    @task
    def every_kind(self) -> None:
        self.hello.SayHello(pb.HelloRequest(name="derived"))
        request = pb.StreamRequest(count=SUBSCRIBE_MESSAGES, interval_ms=0, payload_size=16)
        assert len(list(self.stream.Subscribe(request))) == SUBSCRIBE_MESSAGES
        self.echo.EchoClientStream(pb.EchoRequest(payload=b"c") for _ in range(CLIENT_STREAM_MESSAGES))
        replies = self.echo.EchoBidi(pb.EchoRequest(payload=b"b") for _ in range(BIDI_MESSAGES))
        assert len(list(replies)) == BIDI_MESSAGES
