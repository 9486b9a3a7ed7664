"""A bounded gRPC user for the thresholds gate tests: plain grpcio stub, fires its own request events.

Target from env THRESHOLDS_PROBE_TARGET (``127.0.0.1:port``). Faults for SayHello come from
THRESHOLDS_FAULT_STATUS / THRESHOLDS_FAULT_RATE / THRESHOLDS_FAULT_DELAY_MS and travel as the reference
backend's x-fault-* metadata, so errors and latency are real server behaviour.
"""

from __future__ import annotations

import os
import time

import grpc
import grpc.experimental.gevent
from locust import User, constant, task
from locust.exception import StopUser

import locust_ext  # noqa: F401  (registers the --thresholds* flags)
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

grpc.experimental.gevent.init_gevent()

MAX_CALLS_PER_USER = 2000
HELLO = "/loadtest.v1.Hello/SayHello"
HASH = "/loadtest.v1.Compute/Hash"


def _fault_metadata() -> tuple[tuple[str, str], ...]:
    pairs = {
        "x-fault-status": os.environ.get("THRESHOLDS_FAULT_STATUS"),
        "x-fault-rate": os.environ.get("THRESHOLDS_FAULT_RATE"),
        "x-fault-delay-ms": os.environ.get("THRESHOLDS_FAULT_DELAY_MS"),
    }
    return tuple((key, value) for key, value in pairs.items() if value)


class RpcFailure(Exception):
    """A failed call, named the suite's way: ``CODE: details``."""


class ThresholdsProbe(User):
    wait_time = constant(0.01)

    def on_start(self) -> None:
        self.channel = grpc.insecure_channel(os.environ["THRESHOLDS_PROBE_TARGET"])
        self.hello = pb_grpc.HelloStub(self.channel)
        self.compute = pb_grpc.ComputeStub(self.channel)
        self.hello_metadata = _fault_metadata()
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
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )

    @task(3)
    def say_hello(self) -> None:
        self._call(HELLO, self.hello.SayHello, pb.HelloRequest(name="gate"), self.hello_metadata)

    @task(1)
    def hash(self) -> None:
        self._call(HASH, self.compute.Hash, pb.ComputeRequest(rounds=100, seed=b"gate"))
