"""A WebSocketUser for the --local-ips tests: connects once (no reconnect), echoes now and then, stays connected."""

from __future__ import annotations

from locust import constant, task

from locust_ext import WebSocketUser


class LocalIpsWs(WebSocketUser):
    wait_time = constant(0.5)
    reconnect = None

    @task
    def echo(self) -> None:
        self.ws.request({"type": "echo", "payload": "x"}, name="echo")
