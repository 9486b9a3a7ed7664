"""A WebSocketUser that sets no host: the host comes from ``--host``, the web UI's form or the master's spawn
message.

Each user makes at most ``MAX_ECHOES`` echo requests, then stops.
"""

from __future__ import annotations

from locust import constant, task
from locust.exception import StopUser

from locust_ext import WebSocketUser

MAX_ECHOES = 5000


class NoHostEchoUser(WebSocketUser):
    wait_time = constant(0.02)

    def on_start(self) -> None:
        super().on_start()
        self.echoes = 0

    @task
    def echo(self) -> None:
        if self.echoes >= MAX_ECHOES:
            raise StopUser()
        self.echoes += 1
        self.ws.request({"type": "echo", "payload": "no-host"}, name="echo")
