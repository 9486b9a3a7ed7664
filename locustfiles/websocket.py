"""The four WebSocket test types against the reference backend: echo, compute, stream, ping.

    make backends
    locust -f locustfiles/websocket.py --headless -u 40 -r 20 -t 30s             # all four, weighted
    locust -f locustfiles/websocket.py --headless -u 40 -r 20 -t 30s WsEchoUser    # one type alone (or --tags echo)

Host defaults to ws://127.0.0.1:8080 (``--host`` or ``LOCUST_HOST`` override it; ``wss://`` for TLS).
Every request is a ``websocket`` event named after its type; stream messages before the last one are
recorded as ``push stream`` with their delivery latency, and each connection as ``connect``.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import _unshadow  # noqa: F401  (first: Locust imports this file under the name "websocket"; see _unshadow.py)
from locust import between, tag, task

from locust_ext import WebSocketUser

DEFAULT_HOST = os.environ.get("LOADTEST_WS_HOST", "ws://127.0.0.1:8080")
STREAM_COUNT = 10


class WsEchoUser(WebSocketUser):
    """A 64-byte payload echoed back: the cheapest round trip."""

    host = DEFAULT_HOST
    weight = 4
    wait_time = between(0.05, 0.15)

    @tag("echo")
    @task
    def echo(self) -> None:
        self.ws.request({"type": "echo", "payload": "e" * 64}, name="echo")


class WsComputeUser(WebSocketUser):
    """CPU-bound work on the server: 200 rounds of SHA-256 per request."""

    host = DEFAULT_HOST
    weight = 2
    wait_time = between(0.05, 0.15)

    @tag("compute")
    @task
    def compute(self) -> None:
        self.ws.request({"type": "compute", "n": 200, "seed": "locust"}, name="compute")


class WsStreamUser(WebSocketUser):
    """Ten 64-byte messages per request; the request completes with the last one, the others are pushes."""

    host = DEFAULT_HOST
    weight = 1
    wait_time = between(0.1, 0.3)

    def on_start(self) -> None:
        super().on_start()
        self.stream_ids = itertools.count(1)

    @tag("stream")
    @task
    def stream(self) -> None:
        stream_id = f"s{next(self.stream_ids)}"

        def last_message(message: Any) -> bool:
            return (
                isinstance(message, dict) and message.get("id") == stream_id and message.get("seq") == STREAM_COUNT - 1
            )

        request = {"type": "stream", "id": stream_id, "count": STREAM_COUNT, "interval_ms": 0, "size": 64}
        self.ws.request(request, name="stream", match=last_message)


class WsPingUser(WebSocketUser):
    """Application-level ping (a JSON ping answered by a pong) and a protocol-level ping frame."""

    host = DEFAULT_HOST
    weight = 2
    wait_time = between(0.05, 0.15)

    @tag("ping")
    @task(3)
    def ping(self) -> None:
        self.ws.request({"type": "ping", "ts": time.time()}, name="ping")

    @tag("ping")
    @task
    def ping_frame(self) -> None:
        self.ws.ping(name="ping frame")
