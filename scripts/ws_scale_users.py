"""The users of scripts/ws_scale.py: many idle WebSocket connections held open with keepalive pings, and a share
of them exchanging messages (an echo round trip every few seconds, its latency recorded as ``echo``).

Settings come from the environment the script gives every Locust process: ``WS_SCALE_MESSAGE_SHARE`` (0-1,
the share of users that send), ``WS_SCALE_MESSAGE_INTERVAL`` (seconds between one sender's messages) and
``WS_SCALE_PING_INTERVAL`` (seconds of silence before a keepalive ping).
"""

from __future__ import annotations

import itertools
import os

from locust import task

from locust_ext import WebSocketUser

MESSAGE_SHARE = float(os.environ.get("WS_SCALE_MESSAGE_SHARE", "0.02"))
MESSAGE_INTERVAL = float(os.environ.get("WS_SCALE_MESSAGE_INTERVAL", "5"))
#: Every n-th user of a process sends (0: none).
_EVERY = round(1 / MESSAGE_SHARE) if MESSAGE_SHARE > 0 else 0
_numbers = itertools.count()


class ScaleUser(WebSocketUser):
    """One connection; a sender echoes a small message every ``MESSAGE_INTERVAL`` seconds, the rest stay idle."""

    connect_timeout = 30.0
    request_timeout = 30.0
    ping_interval = float(os.environ.get("WS_SCALE_PING_INTERVAL", "30"))
    ping_timeout = 30.0

    def on_start(self) -> None:
        super().on_start()
        self.sender = _EVERY > 0 and next(_numbers) % _EVERY == 0

    def wait_time(self) -> float:
        return MESSAGE_INTERVAL if self.sender else 3600.0

    @task
    def talk(self) -> None:
        if self.sender:
            self.ws.request({"type": "echo", "payload": "hello"}, name="echo")
