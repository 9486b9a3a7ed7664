"""A bounded GrpcUser for the StatsD mirror tests.

Target from env GRPC_PROBE_TARGET (``127.0.0.1:port``). Half of the Echo calls fail by fault injection
with one of two status codes, so the mirror's failure and error-class counters have work to do.
"""

from __future__ import annotations

import os
import random

from _bounded_probe import BoundedProbe
from locust import constant, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

MAX_CALLS_PER_USER = 300
FAULT_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")


class GrpcProbe(BoundedProbe):
    host = os.environ.get("GRPC_PROBE_TARGET")
    wait_time = constant(0.005)
    max_calls = MAX_CALLS_PER_USER

    def on_start(self) -> None:
        super().on_start()
        self.hello = pb_grpc.HelloStub(self.channel)
        self.echo = pb_grpc.EchoStub(self.channel)

    @task(2)
    def say_hello(self) -> None:
        self.count_call()
        self.hello.SayHello(pb.HelloRequest(name="probe"))

    @task(1)
    def flaky_echo(self) -> None:
        self.count_call()
        metadata = (("x-fault-status", random.choice(FAULT_CODES)), ("x-fault-rate", "0.5"))
        self.echo.Echo(pb.EchoRequest(payload=b"x" * 16), metadata=metadata)
