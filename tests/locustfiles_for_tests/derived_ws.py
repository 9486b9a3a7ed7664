"""WebSocket operations and derived events, for the Aggregated-counts-operations tests (run with --iteration-limit).

Each user connects once (an operation) and waits for a keepalive ping's pong (``ping_interval`` is short) before
its first task. One iteration is 4 operations: an echo request, an echo sent without waiting (its reply comes
back as a ``push echo``), a stream request completed by its last message (the ``STREAM_MESSAGES - 1`` before it
are ``push stream``), and a protocol ping.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import gevent
from locust import constant, task

from locust_ext import WebSocketUser

OPERATIONS_PER_ITERATION = 4
STREAM_MESSAGES = 3
KEEPALIVE_WAIT_S = 20.0


class OperationsAndDerived(WebSocketUser):
    wait_time = constant(0)
    ping_interval = 0.05
    ping_timeout = 10.0
    request_timeout = 10.0

    def on_start(self) -> None:
        super().on_start()
        self.ids = itertools.count(1)
        keepalives = self.environment.stats.get("keepalive", "websocket-keepalive")
        deadline = time.monotonic() + KEEPALIVE_WAIT_S
        while keepalives.num_requests == 0 and time.monotonic() < deadline:
            gevent.sleep(0.01)

    @task
    def operations(self) -> None:
        self.ws.request({"type": "echo", "payload": "e"}, name="echo")
        self.ws.send({"type": "echo", "payload": "s", "id": f"send-{next(self.ids)}"}, name="send echo")
        stream_id = f"stream-{next(self.ids)}"

        def last(message: Any) -> bool:
            return (
                isinstance(message, dict)
                and message.get("id") == stream_id
                and message.get("seq") == STREAM_MESSAGES - 1
            )

        stream = {"type": "stream", "id": stream_id, "count": STREAM_MESSAGES, "interval_ms": 0, "size": 8}
        self.ws.request(stream, name="stream", match=last)
        self.ws.ping(name="ping frame")
