"""Users for the streaming rows of bench/grpc_user_throughput.py: GrpcUser on server-streaming and bidi calls.

Each call carries ``BENCH_MESSAGES`` messages (default 100): ``Subscribe(count=N)`` answered with N messages,
or ``EchoBidi`` with N requests sent and N replies read. Per-message measurements are off (no send times, no
round trips), so the users do what the k6 scripts do: read every message, record one event per call.

    locust -f bench/locustfile_grpc_streams.py --headless -u 20 -r 20 -t 8s --host 127.0.0.1:PORT ServerStreamUser
"""

from __future__ import annotations

import os

from locust import constant, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "100"))
SUBSCRIBE = pb.StreamRequest(count=MESSAGES, interval_ms=0, payload_size=0)
ECHO = pb.EchoRequest(payload=b"bench")


class _Streams(GrpcUser):
    abstract = True
    wait_time = constant(0)
    stream_send_time = None
    bidi_round_trips = False


class ServerStreamUser(_Streams):
    stub_class = pb_grpc.StreamStub

    @task
    def subscribe(self) -> None:
        for _ in self.stub.Subscribe(SUBSCRIBE):
            pass


class BidiUser(_Streams):
    stub_class = pb_grpc.EchoStub

    @task
    def bidi(self) -> None:
        for _ in self.stub.EchoBidi(iter([ECHO] * MESSAGES)):
            pass
