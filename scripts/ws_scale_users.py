"""The users of scripts/ws_scale.py: many idle WebSocket connections held open with keepalive pings, and a share
of them exchanging messages (an echo round trip every few seconds, its latency recorded as ``echo``).

Settings come from the environment the script gives every Locust process: ``WS_SCALE_MESSAGE_SHARE`` (0-1,
the share of users that send), ``WS_SCALE_MESSAGE_INTERVAL`` (seconds between one sender's messages) and
``WS_SCALE_PING_INTERVAL`` (seconds of silence before a keepalive ping); the shape from ``WS_SCALE_USERS``,
``WS_SCALE_RATE`` (users/s up), ``WS_SCALE_HOLD`` and ``WS_SCALE_DOWN`` (seconds).

The shape asks for all users at once at the ramp rate and holds from the first tick after the master has
dispatched them (its spawn call returns only then), so the hold is a full hold even when the machine ramps
slower than asked; then it ramps down to 0 over ``WS_SCALE_DOWN`` seconds.
"""

from __future__ import annotations

import itertools
import os

import locust.runners
from locust import LoadTestShape, task

from locust_ext import WebSocketUser

#: A worker busy opening thousands of connections on a loaded machine can miss Locust's 3 one-second heartbeats;
#: the master would then mark it missing and hand its users to the others (one worker got 61,600 of 100,000 in a
#: first 100k run). 30 s of silence is tolerated instead; a worker that really died is still noticed.
locust.runners.HEARTBEAT_LIVENESS = 30

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


class ScaleShape(LoadTestShape):
    """Up to ``WS_SCALE_USERS`` at ``WS_SCALE_RATE``/s, hold ``WS_SCALE_HOLD`` s there, then down to 0."""

    users = int(os.environ.get("WS_SCALE_USERS", "0"))
    rate = float(os.environ.get("WS_SCALE_RATE", "1500"))
    hold = float(os.environ.get("WS_SCALE_HOLD", "60"))
    down = float(os.environ.get("WS_SCALE_DOWN", "30"))

    def __init__(self) -> None:
        super().__init__()
        self._ticks = 0
        self._peak_at: float | None = None

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()
        self._ticks += 1
        if self._ticks == 1:
            return self.users, self.rate
        if self._peak_at is None:
            self._peak_at = now  # the master's spawn call for the first tick has returned: every user dispatched
        if now < self._peak_at + self.hold:
            return self.users, self.rate
        if now < self._peak_at + self.hold + self.down:
            return 0, max(1.0, self.users / max(1.0, self.down))
        return None
