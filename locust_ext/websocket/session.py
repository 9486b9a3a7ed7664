"""One user's WebSocket connection (``self.ws``): correlated requests, sends, pushes, pings, reconnects.

:class:`WebSocketSession` is a façade over small pieces, the way the ``websockets`` library puts thin I/O
layers over its sans-I/O ``Protocol``:

- :class:`~locust_ext.websocket.correlation.Correlator`: which request a message answers (no I/O);
- :class:`~locust_ext.websocket.read_turn.ReadTurn`: who reads the connection, the waiting request itself
  or a short-lived reader;
- :class:`~locust_ext.websocket.dispatch.Dispatcher`: what each frame read does (settle a request, record a
  late reply or a push, answer a ping, end the connection on a close frame);
- :class:`~locust_ext.websocket.connector.Connector` and :class:`~locust_ext.websocket.keepalive.Keepalive`:
  connects and reconnects, idle-time pings;
- :class:`~locust_ext.websocket.link.Link`: frames on the socket (the codec, ``frames.py``, is sans-I/O).

Every event goes through one :class:`~locust_ext.recording.Recorder` (what each means:
:mod:`locust_ext.websocket.events`). When the connection drops, a ``disconnect`` failure is recorded, every
request still waiting on it fails at once, and the connector reconnects per the ``ReconnectPolicy``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from locust.event import EventHook

from locust_ext.recording import USER_DEFAULT
from locust_ext.websocket.connector import Connector
from locust_ext.websocket.correlation import ABANDONED_IDS_KEPT, Correlator
from locust_ext.websocket.dispatch import Dispatcher
from locust_ext.websocket.errors import WebSocketFailure
from locust_ext.websocket.events import (
    DERIVED_REQUEST_TYPES,
    DISCONNECT_TYPE,
    KEEPALIVE_TYPE,
    LATE_REPLY,
    LATE_REPLY_TYPE,
    PUSH_TYPE,
    REQUEST_TYPE,
    session_recorder,
)
from locust_ext.websocket.frames import OP_CLOSE, OP_PING
from locust_ext.websocket.gauges import ConnectionCounts
from locust_ext.websocket.keepalive import Keepalive
from locust_ext.websocket.link import Link, LinkClosed
from locust_ext.websocket.messages import Message, default_name, encode, type_is
from locust_ext.websocket.preflight import FdBudget, fd_budget
from locust_ext.websocket.read_turn import ReadTurn
from locust_ext.websocket.settings import DEFAULT_RECONNECT, SessionSettings
from locust_ext.websocket.waiter import Waiter

__all__ = [
    "ABANDONED_IDS_KEPT",
    "DEFAULT_RECONNECT",
    "DERIVED_REQUEST_TYPES",
    "DISCONNECT_TYPE",
    "KEEPALIVE_TYPE",
    "LATE_REPLY",
    "LATE_REPLY_TYPE",
    "PUSH_TYPE",
    "REQUEST_TYPE",
    "SessionSettings",
    "WebSocketSession",
]


class WebSocketSession:
    """``self.ws`` of a WebSocketUser. Every public method records its own Locust event.

    A failure is recorded, then raised into the task as :class:`WebSocketFailure` (a Locust
    ``RescheduleTask``: left unhandled it ends the task quietly). An operation cut short because the user
    stops is recorded as a ``cancelled`` failure before the stop goes on.
    """

    def __init__(
        self,
        settings: SessionSettings,
        request_event: EventHook,
        counts: ConnectionCounts,
        *,
        context: Callable[[], dict[str, Any]] = dict,
        budget: FdBudget = fd_budget,
    ) -> None:
        self.settings = settings
        self._counts = counts
        self._recorder = recorder = session_recorder(request_event, context)
        #: Requests and pings awaiting their reply; ``WebSocketUser.stop`` waits for them before a kill.
        self.in_flight = recorder.in_flight
        self._correlator: Correlator[Waiter] = Correlator()
        self._keepalive = Keepalive(settings.ping_interval, settings.ping_timeout, recorder)
        self._dispatcher = Dispatcher(settings, self._correlator, self._keepalive, recorder, self._lost)
        #: Who reads the connection (``read_turn.holder``) and the connection itself (``read_turn.link``).
        self.read_turn = ReadTurn(self._correlator, self._keepalive, self._dispatcher.frame, self._lost)
        self._connector = Connector(
            settings.connect, settings.reconnect, budget, recorder, self._opened, self._connecting_ended
        )
        #: Set while connected, and for good once connecting has stopped (so waiters wake either way).
        self._ready = Event()
        self._started = False
        #: Connecting and reconnecting are over for good.
        self._stopped = False
        self._connected_at = 0.0

    # Public API

    @property
    def connected(self) -> bool:
        return self.read_turn.link is not None

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, while connected."""
        link = self.read_turn.link
        return link.subprotocol if link is not None else None

    def start(self) -> None:
        """Start connecting (and receiving) on the session's own greenlet; returns at once."""
        if not self._started:
            self._started = True
            self._connector.start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until connected (True), reconnecting gave up or ``timeout`` passed (False)."""
        self._ready.wait(timeout)
        return self.read_turn.link is not None

    def request(
        self,
        message: Message,
        name: str | None = None,
        match: Callable[[Message], bool] | None = None,
        timeout: float | None = USER_DEFAULT,
    ) -> Message:
        """Send ``message`` and return the reply that ``match`` picks, recording one event for the round trip.

        Without ``match`` the message must be a dict: it gets a unique ``id`` unless it has one (in the JSON
        sent; the caller's dict is left unchanged), and the reply is the JSON object carrying the same ``id``.
        An error reply (``reply_error``) is a failure ``error: <text>``; no reply within ``timeout`` seconds is
        a failure ``timeout``. ``name`` defaults to the message's ``type``.
        """
        correlator = self._correlator
        payload, opcode, key = correlator.outgoing(message, match)
        timeout = self.settings.request_timeout if timeout is USER_DEFAULT else timeout
        waiter = Waiter()
        with self._recorder.start(name or default_name(message, "request"), "user stopped mid-request") as operation:
            started = operation.started
            deadline = None if timeout is None else started + timeout
            try:
                link = self.read_turn.link or self._await_connection(deadline)
                correlator.expect(waiter, key, match)
                self._send_frame(link, payload, opcode, deadline)
                outcome = self.read_turn.await_outcome(waiter, deadline)
            finally:
                correlator.give_up(waiter, key, started)
            if outcome is None:
                raise WebSocketFailure("timeout", f"no reply within {timeout:g} s")
            if isinstance(outcome, BaseException):
                raise outcome  # the failure a drop set
            reply, operation.length = outcome
            error = self.settings.reply_error(reply)
            if error is not None:
                raise WebSocketFailure("error", error)
        return reply

    def send(self, message: Message, name: str | None = None) -> None:
        """Send without waiting for anything; the event times the hand-over to the socket."""
        timeout = self.settings.request_timeout
        with self._recorder.start(name or default_name(message, "send"), "user stopped mid-send", tracked=False) as op:
            deadline = None if timeout is None else op.started + timeout
            link = self._await_connection(deadline)
            payload, opcode = encode(message)
            self._send_frame(link, payload, opcode, deadline)
            op.length = len(payload)

    def ping(self, name: str = "ping", timeout: float | None = USER_DEFAULT) -> float:
        """A protocol-level ping (RFC 6455 control frame); returns and records the round trip in ms."""
        token = self._correlator.next_token()
        timeout = self.settings.request_timeout if timeout is USER_DEFAULT else timeout
        waiter = Waiter()
        with self._recorder.start(name, "user stopped mid-ping") as operation:
            deadline = None if timeout is None else operation.started + timeout
            try:
                link = self._await_connection(deadline)
                self._correlator.expect_pong(token, waiter)
                self._send_frame(link, token, OP_PING, deadline)
                outcome = self.read_turn.await_outcome(waiter, deadline)
            finally:
                self._correlator.give_up_pong(token)
            if outcome is None:
                raise WebSocketFailure("timeout", f"no pong within {timeout:g} s")
            if isinstance(outcome, BaseException):
                raise outcome
            return operation.finish(None, len(token))

    def on(self, predicate_or_type: str | Callable[[Message], bool], handler: Callable[[Message], Any]) -> None:
        """Call ``handler(message)`` for every push (a message no request is waiting for) that matches.

        A string matches JSON objects whose ``type`` equals it. Handlers run in the receive loop (on whichever
        greenlet holds the read turn), so they must not block: a handler may ``send``, but a request made from
        one should run on a greenlet of its own (``gevent.spawn``). Every push is recorded as an event whether
        or not a handler takes it; as a failure when it is an error reply (``reply_error``), when a handler
        raises, or when the greenlet running the handler is killed.
        """
        predicate = type_is(predicate_or_type) if isinstance(predicate_or_type, str) else predicate_or_type
        self._dispatcher.handlers.append((predicate, handler))

    def close(self, wait: bool = True) -> None:
        """Close the connection (close code 1000) and stop receiving and reconnecting; safe to call twice."""
        if self._connector.closing:
            return
        self._connector.closing = True
        if wait:
            self._shutdown()
        else:
            gevent.spawn(self._shutdown)

    # Sending (from task greenlets)

    def _await_connection(self, deadline: float | None) -> Link:
        link = self.read_turn.link
        if link is not None:
            return link
        if not self._started or self._stopped:
            raise WebSocketFailure("disconnect", "not connected")
        self._ready.wait(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        link = self.read_turn.link
        if link is not None:
            return link
        if self._stopped:
            raise WebSocketFailure("disconnect", "not connected")
        raise WebSocketFailure("timeout", "not connected in time")

    def _send_frame(self, link: Link, payload: bytes, opcode: int, deadline: float | None) -> None:
        try:
            link.send(opcode, payload, deadline)
        except TimeoutError:
            raise WebSocketFailure("timeout", "send did not finish in time") from None
        except LinkClosed as exc:
            raise WebSocketFailure("disconnect", f"send failed: {exc}") from None

    # The connection's life: opened by the connector, lost when it ends, shut down by close()

    def _opened(self, link: Link, after_drop: bool) -> None:
        self._connected_at = time.perf_counter()
        self._counts.open += 1
        if after_drop:
            self._counts.reconnects += 1
        self.read_turn.open(link)
        self._keepalive.start(link)
        self._ready.set()

    def _lost(self, link: Link, detail: str | None) -> None:
        """The connection ended: count it, record an unexpected end, fail its waiters, then reconnect."""
        if self.read_turn.link is not link:
            return
        self.read_turn.close()
        self._ready.clear()
        self._counts.open -= 1
        self._keepalive.stop()
        link.close()
        self._connector.release()
        failure = WebSocketFailure("disconnect", detail or "closed by the client")
        closing = self._connector.closing
        if detail is not None and not closing:
            self._counts.drops += 1
            self._recorder.fire("disconnect", self._connected_at, 0, failure, DISCONNECT_TYPE)
        for waiter in self._correlator.drop():
            waiter.set(failure)
        if closing:
            return
        if self._connector.reconnects:
            self._connector.start(after_drop=True)
        else:
            self._connecting_ended()

    def _connecting_ended(self) -> None:
        self._stopped = True
        self._ready.set()

    def _shutdown(self) -> None:
        self._connector.stop()
        link = self.read_turn.link
        if link is not None:
            try:
                link.send_control(OP_CLOSE, struct.pack("!H", 1000))
            finally:  # even when killed meanwhile: the connection must not outlive its session
                self._lost(link, None)
        self._connecting_ended()
