"""Whose turn it is to read a session's connection: a waiting request's greenlet, or a short-lived reader.

One greenlet at a time reads the connection and dispatches every frame it completes. While requests wait, the
turn belongs to one of them, which reads until its own reply has come, then hands the turn to another waiting
request; so a user with one request in flight reads its own reply with no switch to a reader greenlet and
back. While nobody waits the connection is only a watcher on the hub (no greenlet, so ten thousand idle
connections stay cheap), and a short-lived greenlet reads what arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

from locust_ext.websocket.correlation import Correlator
from locust_ext.websocket.errors import close_code_text
from locust_ext.websocket.keepalive import Keepalive
from locust_ext.websocket.link import Link, LinkClosed
from locust_ext.websocket.messages import Message
from locust_ext.websocket.waiter import Waiter

__all__ = ["ReadTurn"]


class ReadTurn:
    """The read turn of one session: :attr:`link` is the open connection, :attr:`holder` the greenlet reading it.

    ``on_frame(link, opcode, payload)`` handles each frame read and returns why the connection ends, if it
    does; ``on_lost(link, reason)`` is told when the connection ended or broke. Both run on the greenlet
    holding the turn.
    """

    __slots__ = ("_correlator", "_keepalive", "_on_frame", "_on_lost", "_parked", "holder", "link")

    def __init__(
        self,
        correlator: Correlator[Waiter],
        keepalive: Keepalive,
        on_frame: Callable[[Link, int, bytes], str | None],
        on_lost: Callable[[Link, str | None], None],
    ) -> None:
        self._correlator = correlator
        self._keepalive = keepalive
        self._on_frame = on_frame
        self._on_lost = on_lost
        #: The connection being read, None while disconnected.
        self.link: Link | None = None
        #: The greenlet whose turn it is to read: a waiting request's, an idle reader, or None (the watcher's).
        self.holder: Any = None
        #: Requests asleep until the turn is handed to them (so a turn given up alone wakes nobody, cheaply).
        self._parked = 0

    def open(self, link: Link) -> None:
        """Read a new connection: its watcher holds the turn until a request or a readable socket takes it."""
        self.link = link
        self.holder = None
        link.watcher.start(self._on_readable)
        if link.pending():  # a frame that came in the handshake's TLS record: the socket will not signal it
            self._on_readable()

    def close(self) -> None:
        """The connection ended: nobody reads any more."""
        self.link = None
        self.holder = None

    def await_outcome(self, waiter: Waiter, deadline: float | None) -> tuple[Message, int] | BaseException | None:
        """The waiter's outcome, or None when ``deadline`` passed first.

        Takes the read turn when it is free (or already ours: a push handler's nested request) and reads
        until this waiter is settled; otherwise sleeps until settled or until the turn is handed over.
        """
        me = gevent.getcurrent()
        while waiter.outcome is None:
            remaining = None if deadline is None else deadline - time.perf_counter()
            if remaining is not None and remaining <= 0:
                break
            link = self.link
            if link is not None and (self.holder is None or self.holder is me):
                nested = self.holder is me
                if not nested:
                    self.holder = me
                    link.watcher.stop()
                try:
                    self._read_until_settled(link, waiter, deadline)
                finally:
                    if not nested and self.holder is me:
                        self.pass_on()
                break
            self._parked += 1
            try:
                woken = waiter.wait(remaining)
            finally:
                self._parked -= 1
            if not woken:
                break
        return waiter.outcome

    def _read_until_settled(self, link: Link, waiter: Waiter, deadline: float | None) -> None:
        """Read and dispatch frames until ``waiter`` is settled, the link is gone, or ``deadline`` passed."""
        while waiter.outcome is None and self.link is link:
            if not link.has_input():
                remaining = None if deadline is None else deadline - time.perf_counter()
                if remaining is not None and remaining <= 0:
                    return
                if not waiter.wait(remaining, link.watcher) or waiter.outcome is not None:
                    return
                if self.link is not link:
                    return
            self.receive(link, deadline)

    def pass_on(self) -> None:
        """Give up the read turn: the socket's watcher takes it back, and one waiting request is told it is free.

        Both: the watcher covers a turn handed to a request that is never resumed (its user was killed).
        """
        self.holder = None
        link = self.link
        if link is None:
            return
        if link.has_input():  # left by a reader cut short (killed, or held up in a handler): read on at once
            self.holder = gevent.spawn(self._read_idle, link)
            return
        link.watcher.start(self._on_readable)
        if self._parked:
            for waiter in self._correlator.waiting():
                if waiter.waiting:
                    waiter.nudge()
                    return

    def _on_readable(self) -> None:
        """Runs on the hub while nobody holds the read turn: a reader greenlet takes it to read what came."""
        link = self.link
        if link is None:
            return
        link.watcher.stop()
        self.holder = gevent.spawn(self._read_idle, link)

    def _read_idle(self, link: Link) -> None:
        try:
            self.receive(link)
        finally:
            if self.holder is gevent.getcurrent():
                self.pass_on()

    def receive(self, link: Link, deadline: float | None = None) -> None:
        """Read once (plus what TLS already decrypted) unless frames wait in the inbox, then dispatch the inbox
        in order; an ended or broken link is reported lost."""
        inbox = link.inbox
        if not inbox and link.broken is None:
            try:
                received = link.receive(deadline)
                while link.pending():
                    received += link.receive(deadline)
            except LinkClosed:
                self._on_lost(link, self._keepalive.drop_reason or close_code_text(1006))
                return
            if received:
                self._keepalive.last_received = time.perf_counter()  # any bytes, even of a frame still incomplete
        while inbox and self.link is link:
            opcode, payload = inbox.popleft()
            ended = self._on_frame(link, opcode, payload)
            if ended is not None:
                self._on_lost(link, ended)
        if link.broken is not None and not inbox:
            self._on_lost(link, link.broken)
