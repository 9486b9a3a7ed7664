"""Users for bench/grpc_user_throughput.py: SayHello in a loop, no wait, recorded two ways.

* ``GrpcUserHello``: the suite's GrpcUser (recording channel, one event per call).
* ``InterceptorHello``: the pattern of the Locust documentation's gRPC example, written out here —
  ``grpc.intercept_channel`` with a client interceptor that fires the request event. Unlike the example,
  each user asks for its own subchannel pool, so both users hold one TCP connection each (like GrpcUser).

    locust -f bench/locustfile_grpc_hello.py --headless -u 50 -r 50 -t 8s --host 127.0.0.1:50051 GrpcUserHello
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from locust import User, constant, task
from locust.env import Environment

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser  # also sets up grpc's gevent integration, as the docs' example does by hand

REQUEST = pb.HelloRequest(name="bench")


class GrpcUserHello(GrpcUser):
    stub_class = pb_grpc.HelloStub
    wait_time = constant(0)

    @task
    def say_hello(self) -> None:
        self.stub.SayHello(REQUEST)


class EventInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Times each unary call and fires one Locust request event for it."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def intercept_unary_unary(
        self, continuation: Callable[[grpc.ClientCallDetails, Any], Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        started = time.perf_counter()
        response = continuation(details, request)
        length, exception = 0, None
        try:
            length = response.result().ByteSize()
        except grpc.RpcError as error:
            exception = error
        self.environment.events.request.fire(
            request_type="grpc",
            name=details.method,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )
        return response


class InterceptorHello(User):
    wait_time = constant(0)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        assert self.host, "pass --host 127.0.0.1:PORT"
        self.channel = grpc.insecure_channel(self.host, options=[("grpc.use_local_subchannel_pool", 1)])
        self.stub = pb_grpc.HelloStub(grpc.intercept_channel(self.channel, EventInterceptor(environment)))

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def say_hello(self) -> None:
        self.stub.SayHello(REQUEST, timeout=30)
