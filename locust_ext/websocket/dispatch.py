"""What each frame a session receives does: answers settle their requests, the rest is recorded as pushes.

A message no request is waiting for is a push, but two kinds of them are failures: an error reply
(``reply_error``, e.g. ``{"type": "error"}``) nobody awaited, recorded under its push name (``push error``) as
``error: <text>``; and the late reply to an id-correlated request that timed out or was cancelled, recorded as
``late reply`` / ``late: reply after its request gave up``. A reply to a request given up longer ago (see
:data:`~locust_ext.websocket.correlation.ABANDONED_IDS_KEPT`), or to a request correlated by ``match=``,
cannot be told apart from a push. A delivery (a user class with ``deliveries``) is recorded by
:mod:`~locust_ext.websocket.deliveries`, not as a push. Server pings are answered, a close frame ends the connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from locust_ext.recording import Recorder
from locust_ext.websocket.correlation import Correlator, LateReply
from locust_ext.websocket.deliveries import SessionDeliveries
from locust_ext.websocket.errors import WebSocketFailure, close_detail
from locust_ext.websocket.events import LATE_REPLY, LATE_REPLY_TYPE, PUSH_TYPE
from locust_ext.websocket.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT
from locust_ext.websocket.keepalive import Keepalive
from locust_ext.websocket.link import Link
from locust_ext.websocket.messages import Message, decode
from locust_ext.websocket.settings import SessionSettings
from locust_ext.websocket.waiter import Waiter

__all__ = ["Dispatcher", "PushHandler"]

PushHandler = tuple[Callable[[Message], bool], Callable[[Message], Any]]


class Dispatcher:
    """Frames to the correlation core, and what it answers to waiters, records and push handlers."""

    __slots__ = ("_correlator", "_keepalive", "_recorder", "_settings", "deliveries", "handlers")

    def __init__(
        self, settings: SessionSettings, correlator: Correlator[Waiter], keepalive: Keepalive, recorder: Recorder
    ) -> None:
        self._settings = settings
        self._correlator = correlator
        self._keepalive = keepalive
        self._recorder = recorder
        #: ``(predicate, handler)`` pairs, in the order they were added.
        self.handlers: list[PushHandler] = []
        #: The connection's delivery tracking (a user class with ``deliveries``): it takes its deliveries.
        self.deliveries: SessionDeliveries | None = None

    def frame(self, link: Link, opcode: int, payload: bytes) -> str | None:
        """Dispatch a message; answer a ping; settle a pong's waiter. Returns why the connection ends, if it
        does: a close frame (its code and reason), a text frame that is not UTF-8."""
        if opcode in (OP_TEXT, OP_BINARY):
            try:
                message = decode(opcode, payload, self._settings.decode_json)
            except UnicodeDecodeError:
                return "protocol error: a text frame that is not UTF-8"
            # To the request waiting for it, else a late reply, else a push.
            found = self._correlator.deliver(message)
            if isinstance(found, Waiter):
                found.set((message, len(payload)))
            elif found is None:
                deliveries = self.deliveries
                if deliveries is None or not deliveries.arrived(message, len(payload)):
                    self._push(message, len(payload))
            elif isinstance(found, LateReply):
                late = WebSocketFailure("late", "reply after its request gave up")
                self._recorder.fire(LATE_REPLY, found.sent_at, len(payload), late, LATE_REPLY_TYPE)
            else:
                found.waiter.set(WebSocketFailure("error", found.detail))
        elif opcode == OP_PONG:
            if not self._keepalive.pong(payload):
                waiter = self._correlator.pong(payload)
                if waiter is not None:
                    waiter.set((None, 0))
        elif opcode == OP_PING:
            link.send_control(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            link.send_control(OP_CLOSE, payload[:2])
            return close_detail(payload)
        return None

    def _push(self, message: Message, length: int) -> None:
        hooks = self._settings
        sent_at = hooks.sent_at(message)
        age = max(0.0, time.time() - sent_at) if sent_at is not None else 0.0  # wall clocks: same-host only
        error = hooks.reply_error(message)
        failure = None if error is None else WebSocketFailure("error", error)
        try:
            for predicate, handler in self.handlers:
                try:
                    if predicate(message):
                        handler(message)
                except Exception as exc:
                    failure = WebSocketFailure("error", f"push handler raised {type(exc).__name__}: {exc}"[:100])
        except BaseException:  # the greenlet running the handler was killed: the push came all the same
            failure = WebSocketFailure("cancelled", "push handler cut short")
            raise
        finally:
            self._recorder.fire(hooks.push_name(message), time.perf_counter() - age, length, failure, PUSH_TYPE)
