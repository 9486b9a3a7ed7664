"""One GrpcUser saying hello to the reference backend (``--host 127.0.0.1:PORT``), for the shape, iteration
limit and open-model runs. Each task is one SayHello call, so one iteration is one server call.

SHAPES_PACING_S (default 0.1): each user starts a task at most this often (closed model pacing).
"""

from __future__ import annotations

import os

from locust import constant_pacing, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser


class HelloUser(GrpcUser):
    stub_class = pb_grpc.HelloStub
    wait_time = constant_pacing(float(os.environ.get("SHAPES_PACING_S", "0.1")))

    @task
    def say_hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="shapes"))
