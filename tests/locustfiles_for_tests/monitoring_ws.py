"""A bounded WebSocketUser for the Graphite test (tests/test_monitoring/test_monitoring_graphite.py): echoes against
the reference backend (env WS_PROBE_URL), 30 % answered with an injected error reply, so the mirror sends the
suite's own WebSocket timers, failure and error-class counters and the open-connections gauge; every tenth
request is a three-message stream whose first two messages arrive as pushes (the dashboard's derived row)."""

from __future__ import annotations

import os

from locust import constant, task
from locust.exception import StopUser

from locust_ext import WebSocketUser

MAX_ECHOES_PER_USER = 100


class MonitoredEcho(WebSocketUser):
    host = os.environ.get("WS_PROBE_URL")
    wait_time = constant(0.01)

    def on_start(self) -> None:
        super().on_start()
        self.echoes = 0

    @task
    def echo(self) -> None:
        if self.echoes >= MAX_ECHOES_PER_USER:
            raise StopUser()
        self.echoes += 1
        if self.echoes % 10 == 0:
            stream_id = f"s{self.echoes}"
            request = {"type": "stream", "id": stream_id, "count": 3, "interval_ms": 0, "size": 8}
            self.ws.request(request, name="stream", match=lambda m: m.get("id") == stream_id and m.get("seq") == 2)
            return
        fault = {"error": "overloaded", "rate": 0.3}
        self.ws.request({"type": "echo", "payload": "probe", "fault": fault}, name="echo")
