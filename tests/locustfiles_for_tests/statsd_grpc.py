"""A bounded gRPC user for the StatsD mirror tests: plain grpcio stub, fires its own request events.

Target from env GRPC_PROBE_TARGET (``127.0.0.1:port``). Half of the Echo calls fail by fault injection
with one of two status codes, so the mirror's failure and error-class counters have work to do.
"""

from __future__ import annotations

import os
import random
import time

import grpc
import grpc.experimental.gevent
from locust import User, constant, task
from locust.exception import StopUser

import locust_ext  # noqa: F401  (registers the --statsd-* flags)
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

grpc.experimental.gevent.init_gevent()

MAX_CALLS_PER_USER = 300
FAULT_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")


class RpcFailure(Exception):
    """A failed call, named the suite's way: ``CODE: details``."""


class GrpcProbe(User):
    wait_time = constant(0.005)

    def on_start(self) -> None:
        self.channel = grpc.insecure_channel(os.environ["GRPC_PROBE_TARGET"])
        self.hello = pb_grpc.HelloStub(self.channel)
        self.echo = pb_grpc.EchoStub(self.channel)
        self.calls = 0

    def on_stop(self) -> None:
        self.channel.close()

    def _call(self, name: str, call: grpc.UnaryUnaryMultiCallable, request: object, metadata: tuple = ()) -> None:
        if self.calls >= MAX_CALLS_PER_USER:
            raise StopUser()
        self.calls += 1
        exception: Exception | None = None
        length = 0
        started = time.perf_counter()
        try:
            length = call(request, metadata=metadata, timeout=5).ByteSize()
        except grpc.RpcError as error:
            exception = RpcFailure(f"{error.code().name}: {error.details()}")
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=exception,
            context={},
        )

    @task(2)
    def say_hello(self) -> None:
        self._call("/loadtest.v1.Hello/SayHello", self.hello.SayHello, pb.HelloRequest(name="probe"))

    @task(1)
    def flaky_echo(self) -> None:
        metadata = (("x-fault-status", random.choice(FAULT_CODES)), ("x-fault-rate", "0.5"))
        self._call("/loadtest.v1.Echo/Echo", self.echo.Echo, pb.EchoRequest(payload=b"x" * 16), metadata)
