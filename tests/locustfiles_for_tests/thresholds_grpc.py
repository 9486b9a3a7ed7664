"""A bounded GrpcUser for the thresholds gate tests.

Target from env THRESHOLDS_PROBE_TARGET (``127.0.0.1:port``). Faults for SayHello come from
THRESHOLDS_FAULT_STATUS / THRESHOLDS_FAULT_RATE / THRESHOLDS_FAULT_DELAY_MS and travel as the reference
backend's x-fault-* metadata, so errors and latency are real server behaviour.
"""

from __future__ import annotations

import os

from _bounded_probe import BoundedProbe
from locust import constant, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

MAX_CALLS_PER_USER = 2000


def _fault_metadata() -> tuple[tuple[str, str], ...]:
    pairs = {
        "x-fault-status": os.environ.get("THRESHOLDS_FAULT_STATUS"),
        "x-fault-rate": os.environ.get("THRESHOLDS_FAULT_RATE"),
        "x-fault-delay-ms": os.environ.get("THRESHOLDS_FAULT_DELAY_MS"),
    }
    return tuple((key, value) for key, value in pairs.items() if value)


class ThresholdsProbe(BoundedProbe):
    host = os.environ.get("THRESHOLDS_PROBE_TARGET")
    wait_time = constant(0.01)
    max_calls = MAX_CALLS_PER_USER

    def on_start(self) -> None:
        super().on_start()
        self.hello = pb_grpc.HelloStub(self.channel)
        self.compute = pb_grpc.ComputeStub(self.channel)
        self.hello_metadata = _fault_metadata()

    @task(3)
    def say_hello(self) -> None:
        self.count_call()
        self.hello.SayHello(pb.HelloRequest(name="gate"), metadata=self.hello_metadata)

    @task(1)
    def hash(self) -> None:
        self.count_call()
        self.compute.Hash(pb.ComputeRequest(rounds=100, seed=b"gate"))
