"""A GrpcUser that sets no host: the host comes from ``--host``, the web UI's form or the master's spawn message.

Each user makes at most ``MAX_CALLS`` SayHello calls, then stops.
"""

from __future__ import annotations

from locust import constant, task
from locust.exception import StopUser

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser

MAX_CALLS = 5000


class NoHostHelloUser(GrpcUser):
    stub_class = pb_grpc.HelloStub
    wait_time = constant(0.02)

    def on_start(self) -> None:
        self.calls = 0

    @task
    def say_hello(self) -> None:
        if self.calls >= MAX_CALLS:
            raise StopUser()
        self.calls += 1
        self.stub.SayHello(pb.HelloRequest(name="no-host"))
