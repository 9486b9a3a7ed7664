"""User classes that set no host: the host comes from --host, the web UI's form, or the master's spawn message."""

from __future__ import annotations

from locust import constant, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser, WebSocketUser


class NoHostGrpc(GrpcUser):
    stub_class = pb_grpc.HelloStub
    wait_time = constant(0.05)

    @task
    def say_hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="no-host"))


class NoHostWebSocket(WebSocketUser):
    wait_time = constant(0.05)

    @task
    def echo(self) -> None:
        self.ws.request({"type": "echo", "payload": "no-host"})
