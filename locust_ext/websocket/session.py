"""One user's WebSocket connection (``self.ws``): correlated requests, sends, pushes, pings, reconnects.

:class:`WebSocketSession` is a façade over small pieces, the way the ``websockets`` library puts thin I/O
layers over its sans-I/O ``Protocol``:

- :class:`~locust_ext.websocket.correlation.Correlator`: which request a message answers (no I/O);
- :class:`~locust_ext.websocket.read_turn.ReadTurn`: who reads the connection, the waiting request itself
  or a short-lived reader;
- :class:`~locust_ext.websocket.dispatch.Dispatcher`: what each frame read does (settle a request, record a
  late reply or a push, answer a ping, end the connection on a close frame);
- :class:`~locust_ext.websocket.connector.Connector`: the connection's life (connects, reconnects with
  backoff, drops, the close), and :class:`~locust_ext.websocket.keepalive.Keepalive`: idle-time pings;
- :class:`~locust_ext.websocket.link.Link`: frames on the socket (the codec, ``frames.py``, is sans-I/O).

Every event goes through one :class:`~locust_ext.recording.Recorder` (what each means:
:mod:`locust_ext.websocket.events`). When the connection drops, a ``disconnect`` failure is recorded, every
request still waiting on it fails at once, and the connector reconnects per the ``ReconnectPolicy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from locust.event import EventHook

from locust_ext.recording import USER_DEFAULT
from locust_ext.websocket.connector import Connector
from locust_ext.websocket.correlation import ABANDONED_IDS_KEPT, Correlator
from locust_ext.websocket.deliveries import DeliveryLedger, DeliveryTracking, SessionDeliveries
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
from locust_ext.websocket.frames import OP_PING
from locust_ext.websocket.gauges import ConnectionCounts
from locust_ext.websocket.keepalive import Keepalive
from locust_ext.websocket.link import Link, LinkClosed
from locust_ext.websocket.messages import Message, default_name, encode, type_is
from locust_ext.websocket.preflight import FdBudget, fd_budget
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
        deliveries: DeliveryTracking | None = None,
        ledger: DeliveryLedger | None = None,
    ) -> None:
        self.settings = settings
        self._recorder = recorder = session_recorder(request_event, context)
        #: Requests and pings awaiting their reply; ``WebSocketUser.stop`` waits for them before a kill.
        self.in_flight = recorder.in_flight
        self._correlator: Correlator[Waiter] = Correlator()
        keepalive = Keepalive(settings.ping_interval, settings.ping_timeout, recorder)
        self._dispatcher = Dispatcher(settings, self._correlator, keepalive, recorder)
        self._deliveries = SessionDeliveries(deliveries, ledger or DeliveryLedger(), recorder)
        if deliveries is not None:
            self._dispatcher.deliveries = self._deliveries
        self._connector = connector = Connector(
            settings.connect,
            settings.reconnect,
            budget=budget,
            recorder=recorder,
            counts=counts,
            correlator=self._correlator,
            keepalive=keepalive,
            on_frame=self._dispatcher.frame,
        )
        #: Who reads the connection (``read_turn.holder``) and the connection itself (``read_turn.link``).
        self.read_turn = connector.read_turn

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
        self._connector.start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until connected (True), reconnecting gave up or ``timeout`` passed (False)."""
        return self._connector.wait_connected(timeout)

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
                link = self.read_turn.link or self._connector.link(deadline)
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
            link = self._connector.link(deadline)
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
                link = self._connector.link(deadline)
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

    def expect_deliveries(self, message_id: Any, count: int, name: str = "delivery") -> None:
        """Announce that publication ``message_id`` is due on ``count`` other connections, on the row ``name``
        (the one the recipients' ``DeliveryTracking.name`` gives); what never arrives is recorded as lost."""
        self._deliveries.expect(message_id, count, name)

    def close(self, wait: bool = True) -> None:
        """Close the connection (close code 1000) and stop receiving and reconnecting; safe to call twice."""
        if self._connector.closing:
            return
        self._connector.closing = True
        if wait:
            self._connector.shutdown()
        else:
            gevent.spawn(self._connector.shutdown)

    # Sending (from task greenlets)

    def _send_frame(self, link: Link, payload: bytes, opcode: int, deadline: float | None) -> None:
        try:
            link.send(opcode, payload, deadline)
        except TimeoutError:
            raise WebSocketFailure("timeout", "send did not finish in time") from None
        except LinkClosed as exc:
            raise WebSocketFailure("disconnect", f"send failed: {exc}") from None
