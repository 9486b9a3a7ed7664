"""Idle-time protocol pings: one hub timer per connection, and the ping sent from the hub: no greenlet.

After ``interval`` seconds with no bytes from the server, a protocol ping (RFC 6455) goes out with a payload
of its own; its pong is recorded as ``keepalive`` (request type ``websocket-keepalive``). A pong overdue by
``timeout`` seconds cuts the connection, and the reader then records the drop with :attr:`Keepalive.drop_reason`.
"""

from __future__ import annotations

import time
from typing import Any

import gevent

from locust_ext.recording import Recorder
from locust_ext.websocket.events import KEEPALIVE, KEEPALIVE_TYPE
from locust_ext.websocket.frames import OP_PING
from locust_ext.websocket.link import Link

__all__ = ["KEEPALIVE_TOKEN", "Keepalive"]

#: The payload of the session's own pings, which tells their pongs from those of ``ping()``.
KEEPALIVE_TOKEN = b"keepalive"


class Keepalive:
    """One session's keepalive; :meth:`start` on each new connection, :meth:`stop` when it ends."""

    __slots__ = ("_link", "_pinged_at", "_recorder", "_timer", "drop_reason", "interval", "last_received", "timeout")

    def __init__(self, interval: float | None, timeout: float, recorder: Recorder) -> None:
        self.interval = interval
        self.timeout = timeout
        self._recorder = recorder
        self._link: Link | None = None
        self._timer: Any = None
        self._pinged_at: float | None = None
        #: ``time.perf_counter()`` of the last bytes received; the reader keeps it current.
        self.last_received = 0.0
        #: Why the keepalive cut the connection, for the reader to record; None otherwise.
        self.drop_reason: str | None = None

    def start(self, link: Link) -> None:
        """Watch a new connection (counting silence from now)."""
        self._link = link
        self.last_received = time.perf_counter()
        self._pinged_at = None
        self.drop_reason = None
        if self.interval is not None:
            self._arm(self.interval)

    def stop(self) -> None:
        self._link = None
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def pong(self, payload: bytes) -> bool:
        """Whether a pong answers the keepalive ping (then recorded, and the next ping scheduled)."""
        if payload != KEEPALIVE_TOKEN or self._pinged_at is None:
            return False
        self._recorder.fire(KEEPALIVE, self._pinged_at, len(payload), None, KEEPALIVE_TYPE)
        self._pinged_at = None
        if self.interval is not None:
            self._arm(self.interval)
        return True

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.close()
        self._timer = gevent.get_hub().loop.timer(max(0.0, seconds))
        self._timer.start(self._due)

    def _due(self) -> None:
        """Runs on the hub: ping after ``interval`` of silence; cut the link when a pong is overdue."""
        link = self._link
        interval = self.interval
        if link is None or interval is None:
            return
        if self._pinged_at is not None:
            self.drop_reason = f"no pong within {self.timeout:g} s"
            link.abort()  # the reader sees the end of the stream and records the drop with this reason
            return
        idle = time.perf_counter() - self.last_received
        if idle < interval:
            self._arm(interval - idle)
            return
        self._pinged_at = time.perf_counter()
        link.send_soon(OP_PING, KEEPALIVE_TOKEN)  # no greenlet (a spawn costs an mmap/munmap pair) unless it must wait
        self._arm(self.timeout)
