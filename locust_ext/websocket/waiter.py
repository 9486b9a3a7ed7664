"""A request (or ping) waiting for its reply: one task greenlet, woken once from the hub."""

from __future__ import annotations

from typing import Any

import gevent
from gevent.hub import get_hub

from locust_ext.websocket.messages import Message

__all__ = ["Waiter"]


class Waiter:
    """A request (or ping) waiting for its reply (what it waits for is the correlation core's business).

    Lighter than an ``AsyncResult``: one task greenlet waits, and the first of its wake-ups (its reply or a
    drop's failure settling it, the deadline timer, the read turn handed to it, the socket turning readable
    while it holds the turn) resumes it with one switch from the hub; later ones do nothing.
    """

    __slots__ = ("_greenlet", "outcome")

    def __init__(self) -> None:
        #: None while waiting; then ``(reply, length)``, or the failure to raise.
        self.outcome: tuple[Message, int] | BaseException | None = None
        self._greenlet: Any = None

    @property
    def waiting(self) -> bool:
        return self._greenlet is not None

    def set(self, outcome: tuple[Message, int] | BaseException) -> None:
        """Settle the waiter (the first outcome wins) and wake the task waiting on it, if any."""
        if self.outcome is None:
            self.outcome = outcome
            self.nudge()

    def nudge(self) -> None:
        """Wake the waiting task without settling it (the connection's read turn is free for it)."""
        if self._greenlet is not None:
            get_hub().loop.run_callback(self._wake, True)

    def wait(self, timeout: float | None, readable: Any = None) -> bool:
        """Sleep until a wake-up, or for ``readable`` (an io watcher) to fire; False when ``timeout`` came first."""
        hub = get_hub()
        timer = None
        if timeout is not None:
            timer = hub.loop.timer(timeout)
            timer.start(self._wake, False)
        if readable is not None:
            readable.start(self._wake, True)
        self._greenlet = gevent.getcurrent()
        try:
            woken: bool = hub.switch()
            return woken
        finally:
            self._greenlet = None  # a wake-up still queued (the user was killed meanwhile) does nothing
            if timer is not None:
                timer.close()
            if readable is not None:
                readable.stop()

    def _wake(self, woken: bool) -> None:
        """Runs on the hub: resume the waiting task once."""
        greenlet = self._greenlet
        if greenlet is not None:
            self._greenlet = None
            greenlet.switch(woken)
