"""Users for the network-fault tests (tests/test_product/test_network_faults.py): echo in a loop with short timeouts,
every request event appended to ``NET_FAULTS_LOG`` as a JSON line (monotonic clock, shared by every process on the
machine), so the test can place each call before, during or after the fault it injects.

``NET_FAULTS_PAYLOAD`` sets the echo payload's size in bytes (large for the server-stops-reading case, where
the client's send buffer must fill).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import constant, events, task

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext import GrpcUser, WebSocketUser
from locust_ext.websocket import ReconnectPolicy

PAYLOAD_BYTES = int(os.environ.get("NET_FAULTS_PAYLOAD", "64"))
#: The deadline of every call (gRPC) and request (WebSocket), in seconds.
CALL_TIMEOUT_S = 1.0
_log = open(os.environ["NET_FAULTS_LOG"], "a", buffering=1) if "NET_FAULTS_LOG" in os.environ else None  # noqa: SIM115


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
    if _log is not None:
        line = {"t": time.monotonic(), "type": request_type, "name": name, "ms": response_time}
        line["error"] = None if exception is None else str(exception)
        _log.write(json.dumps(line) + "\n")


class FaultWsUser(WebSocketUser):
    """Keepalive every idle second, a 1 s request and connect timeout, reconnects within a second."""

    wait_time = constant(0.05)
    connect_timeout = CALL_TIMEOUT_S
    request_timeout = CALL_TIMEOUT_S
    ping_interval = 1.0
    ping_timeout = 1.0
    reconnect = ReconnectPolicy(initial_delay=0.1, multiplier=2, max_delay=1.0, jitter=0.5)

    @task
    def echo(self) -> None:
        self.ws.request({"type": "echo", "payload": "e" * PAYLOAD_BYTES}, name="echo")


class FaultGrpcUser(GrpcUser):
    """A 1 s deadline on every call; grpc's own channel reconnect (its defaults)."""

    wait_time = constant(0.05)
    stub_class = pb_grpc.EchoStub
    timeout = CALL_TIMEOUT_S

    @task
    def echo(self) -> None:
        self.stub.Echo(pb.EchoRequest(payload=b"e" * PAYLOAD_BYTES))
