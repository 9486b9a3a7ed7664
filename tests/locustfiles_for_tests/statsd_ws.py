"""A bounded WebSocket user and gauge publishers for the monitoring tests; pairs with statsd_grpc.py.

The user holds one websocket-client connection to the reference WebSocket backend (env WS_PROBE_URL) and
records ``connect`` and ``echo`` request events of type ``websocket``; 30 % of echoes get an injected
error reply. Workers report their open connections with Locust's worker reports; the master sums them
and publishes the gauge, as the publish_gauge contract asks.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import websocket
from locust import User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser

from locust_ext import publish_gauge

MAX_ECHOES_PER_USER = 100
open_connections = 0


class ProbeError(Exception):
    """An error reply, named the suite's way (``error: <text>``)."""


class WebSocketProbe(User):
    wait_time = constant(0.01)

    def _fire(self, name: str, started: float, length: int, exception: Exception | None = None) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.environment.events.request.fire(
            request_type="websocket",
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=exception,
            context={},
        )

    def on_start(self) -> None:
        global open_connections
        started = time.perf_counter()
        self.connection = websocket.create_connection(os.environ["WS_PROBE_URL"], timeout=5)
        self._fire("connect", started, 0)
        open_connections += 1
        self.echoes = 0

    def on_stop(self) -> None:
        global open_connections
        self.connection.close()
        open_connections -= 1

    @task
    def echo(self) -> None:
        if self.echoes >= MAX_ECHOES_PER_USER:
            raise StopUser()
        self.echoes += 1
        started = time.perf_counter()
        fault = {"error": "overloaded", "rate": 0.3}
        self.connection.send(json.dumps({"type": "echo", "id": self.echoes, "payload": "probe", "fault": fault}))
        reply = str(self.connection.recv())
        error = json.loads(reply).get("error")
        self._fire("echo", started, len(reply), ProbeError(f"error: {error}") if error else None)


worker_connections: dict[str, int] = {}
environments: list[Environment] = []


@events.init.add_listener
def remember_environment(environment: Environment, **_: Any) -> None:
    environments.append(environment)


@events.report_to_master.add_listener
def report_open_connections(data: dict[str, Any], **_: Any) -> None:
    data["probe_open_connections"] = open_connections


@events.worker_report.add_listener
def sum_open_connections(client_id: str, data: dict[str, Any], **_: Any) -> None:
    worker_connections[client_id] = data.get("probe_open_connections", 0)
    for environment in environments:
        publish_gauge(environment, "websocket.open_connections", sum(worker_connections.values()))
