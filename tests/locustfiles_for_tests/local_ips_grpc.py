"""GrpcUsers for the --local-ips tests, one connection each: ``LocalIpsGrpc`` on the native transport (binds),
``LocalIpsGrpcio`` on grpcio (refused with --local-ips); the run picks one by class name."""

from __future__ import annotations

from locust import constant, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser


class LocalIpsGrpc(GrpcUser):
    stub_class = pb_grpc.HelloStub
    transport = "native"
    wait_time = constant(0.5)

    @task
    def say_hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="local-ips"))


class LocalIpsGrpcio(GrpcUser):
    stub_class = pb_grpc.HelloStub
    transport = "grpcio"
    wait_time = constant(0.5)

    @task
    def say_hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="local-ips"))
