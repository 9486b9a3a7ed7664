"""One user's WebSocket connection (``self.ws``): correlated requests, sends, pushes, pings, reconnects.

One receive loop per connection, and one greenlet at a time runs it (whoever holds the connection's read
turn): every frame goes through the same dispatch, to the request waiting for it or to the push handlers.
While requests wait, the turn belongs to one of them, which reads and dispatches until its own reply has
come, then hands the turn to another waiting request; so a user with one request in flight reads its own
reply with no switch to a reader greenlet and back. While nobody waits the connection is only a watcher on
the hub (no greenlet, so ten thousand idle connections stay cheap), and a short-lived greenlet reads what
arrives. A keepalive timer sends a protocol ping after ``ping_interval`` seconds of silence. When the
connection drops, the reader records a ``disconnect`` failure, fails every request still waiting on it at
once, and a short-lived greenlet reconnects per the :class:`ReconnectPolicy` (each attempt recorded as a
``connect`` event). Frames are read and written by :class:`~locust_ext.websocket.link.Link`.

Only answers are successes. A message no request is waiting for is a push, but two kinds of them are
failures: an error reply (``reply_error``, e.g. ``{"type": "error"}``) nobody awaited, recorded under its
push name (``push error``) as ``error: <text>``; and the late reply to an id-correlated request that timed
out or was cancelled, recorded as ``late reply`` / ``late: reply after its request gave up``. For that,
each connection remembers the ids of the last :data:`ABANDONED_IDS_KEPT` requests it gave up on; a reply
to an older one, or to a request correlated by ``match=``, cannot be told apart from a push.

Operations the user made have ``request_type="websocket"``; what each one's ``response_time`` means:

``connect``     TCP connect + TLS handshake + HTTP upgrade (reconnects too: each is a round trip the server
                serves, and a refused server must show in the failure ratio)
``<request>``   from handing the message to the socket until the matched reply arrived
``<send>``      handing one message to the socket (the kernel's send buffer), not its delivery
``ping``        ``self.ws.ping()``: a protocol ping (RFC 6455) until its pong

Derived measurements have request types of their own (``DERIVED_REQUEST_TYPES``, registered with
:mod:`locust_ext.derived`): their rows stay in Locust's table, its total (Aggregated, requests/s, failure
ratio) leaves them out.

``websocket-push``       ``push <type>``: the message's age (now minus its ``sent_at``) when it carries one, else 0
``websocket-keepalive``  ``keepalive``: an idle-time protocol ping the session sent itself, until its pong
``websocket-disconnect`` ``disconnect``: how long the connection had been open when it dropped
``websocket-late-reply`` ``late reply``: from sending the request that gave up until its reply came after all
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from locust.event import EventHook
from websocket import WebSocket

from locust_ext.derived import register_derived
from locust_ext.recording import USER_DEFAULT, Recorder
from locust_ext.websocket.errors import WebSocketFailure, close_code_text, close_detail, connect_failure
from locust_ext.websocket.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT
from locust_ext.websocket.gauges import ConnectionCounts
from locust_ext.websocket.link import Link, LinkClosed
from locust_ext.websocket.messages import (
    Message,
    compact_json,
    decode,
    default_name,
    encode,
    error_reply,
    push_name,
    sent_at_seconds,
    type_is,
)
from locust_ext.websocket.options import ConnectOptions
from locust_ext.websocket.preflight import FdBudget, fd_budget
from locust_ext.websocket.reconnect import ReconnectPolicy
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

REQUEST_TYPE = "websocket"
#: Messages no request was waiting for, named by ``push_name`` (default ``push <type>``).
PUSH_TYPE = "websocket-push"
#: Idle-time pings the session sends itself, named ``keepalive``.
KEEPALIVE_TYPE = "websocket-keepalive"
#: Connections that dropped, named ``disconnect``.
DISCONNECT_TYPE = "websocket-disconnect"
#: Replies that came after their request gave up (already recorded as its failure), named ``late reply``.
LATE_REPLY_TYPE = "websocket-late-reply"
#: Not operations: their rows stay, Locust's total leaves them out.
DERIVED_REQUEST_TYPES = (PUSH_TYPE, KEEPALIVE_TYPE, DISCONNECT_TYPE, LATE_REPLY_TYPE)
register_derived(*DERIVED_REQUEST_TYPES)
KEEPALIVE = "keepalive"
LATE_REPLY = "late reply"
#: Ids of given-up requests each connection remembers, newest kept, to recognise their late replies.
ABANDONED_IDS_KEPT = 4096
_KEEPALIVE_TOKEN = b"keepalive"
#: How long a control frame (a close, a pong, a keepalive ping) may wait to leave.
CONTROL_SEND_TIMEOUT_S = 1.0

DEFAULT_RECONNECT = ReconnectPolicy()


def _cancelled(cut_short: str) -> WebSocketFailure:
    return WebSocketFailure("cancelled", cut_short)


@dataclass(frozen=True)
class SessionSettings:
    """A user class's session configuration, checked once and shared by all its users."""

    connect: ConnectOptions
    request_timeout: float | None = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float = 10.0
    reconnect: ReconnectPolicy | None = DEFAULT_RECONNECT
    decode_json: bool = True
    reply_error: Callable[[Message], str | None] = error_reply
    push_name: Callable[[Message], str] = push_name
    sent_at: Callable[[Message], float | None] = sent_at_seconds


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
        self._recorder = Recorder(
            request_event, REQUEST_TYPE, failure_type=WebSocketFailure, cancelled=_cancelled, context=context
        )
        self._fire = self._recorder.fire
        self._counts = counts
        self._budget = budget
        self._link: Link | None = None
        self._connected_at = 0.0
        #: Set while connected, and for good once reconnecting has stopped (so waiters wake either way).
        self._ready = Event()
        self._started = False
        self._closing = False
        self._connector: gevent.Greenlet | None = None
        #: The greenlet whose turn it is to read the connection: a waiting request's, or the idle reader.
        self._reading: Any = None
        self._keepalive: Any = None  # the hub's keepalive timer while connected
        self._last_received = 0.0
        self._pinged_at: float | None = None
        self._drop_reason: str | None = None
        #: The session greenlet has finished: no more connecting or reconnecting.
        self._stopped = False
        self._ids = itertools.count(1)
        self._by_id: dict[Any, Waiter] = {}
        #: Ids of requests given up on this connection, oldest first, with when each was sent.
        self._abandoned: dict[Any, float] = {}
        self._matchers: list[Waiter] = []
        self._pongs: dict[bytes, Waiter] = {}
        self._handlers: list[tuple[Callable[[Message], bool], Callable[[Message], Any]]] = []
        #: Requests and pings awaiting their reply; ``WebSocketUser.stop`` waits for them before a kill.
        self.in_flight = self._recorder.in_flight

    # Public API

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, while connected."""
        return self._link.subprotocol if self._link is not None else None

    def start(self) -> None:
        """Start connecting (and receiving) on the session's own greenlet; returns at once."""
        if not self._started:
            self._started = True
            self._connector = gevent.spawn(self._connect_loop, False)

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until connected (True), reconnecting gave up or ``timeout`` passed (False)."""
        self._ready.wait(timeout)
        return self._link is not None

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
        key: Any = None
        if match is None:
            if not isinstance(message, dict):
                raise TypeError("request() of a non-dict message needs match= to recognise its reply")
            if "id" in message:
                key = message["id"]
                if key in self._by_id:
                    raise ValueError(f"a request with id {key!r} is already waiting on this connection")
                payload, opcode = encode(message)
            else:  # the id goes into the JSON text only: the caller's dict is neither copied nor changed
                key = next(self._ids)
                while key in self._by_id:  # a caller-chosen id took it
                    key = next(self._ids)
                text = compact_json(message)
                payload, opcode = f'{text[:-1]}{"," if message else ""}"id":{key}}}'.encode(), OP_TEXT
        else:
            payload, opcode = encode(message)
        timeout = self.settings.request_timeout if timeout is USER_DEFAULT else timeout
        waiter = Waiter(match)
        with self._recorder.start(name or default_name(message, "request"), "user stopped mid-request") as operation:
            started = operation.started
            deadline = None if timeout is None else started + timeout
            try:
                link = self._link or self._await_connection(deadline)
                if match is None:
                    self._by_id[key] = waiter
                else:
                    self._matchers.append(waiter)
                self._send_frame(link, payload, opcode, deadline)
                outcome = self._await_outcome(waiter, deadline)
            finally:
                self._forget(waiter, key, started)
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
        name = name or default_name(message, "send")
        with self._recorder.start(name, "user stopped mid-send", tracked=False) as operation:
            deadline = None if timeout is None else operation.started + timeout
            operation.length = self._send(self._await_connection(deadline), message, deadline)

    def ping(self, name: str = "ping", timeout: float | None = USER_DEFAULT) -> float:
        """A protocol-level ping (RFC 6455 control frame); returns and records the round trip in ms."""
        token = str(next(self._ids)).encode()
        timeout = self.settings.request_timeout if timeout is USER_DEFAULT else timeout
        waiter = Waiter()
        with self._recorder.start(name, "user stopped mid-ping") as operation:
            deadline = None if timeout is None else operation.started + timeout
            try:
                link = self._await_connection(deadline)
                self._pongs[token] = waiter
                self._send_frame(link, token, OP_PING, deadline)
                outcome = self._await_outcome(waiter, deadline)
            finally:
                self._pongs.pop(token, None)
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
        self._handlers.append((predicate, handler))

    def close(self, wait: bool = True) -> None:
        """Close the connection (close code 1000) and stop receiving and reconnecting; safe to call twice."""
        if self._closing:
            return
        self._closing = True
        if wait:
            self._shutdown()
        else:
            gevent.spawn(self._shutdown)

    # Sending (from task greenlets)

    def _await_connection(self, deadline: float | None) -> Link:
        link = self._link
        if link is not None:
            return link
        if not self._started or self._stopped:
            raise WebSocketFailure("disconnect", "not connected")
        self._ready.wait(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        link = self._link
        if link is not None:
            return link
        if self._stopped:
            raise WebSocketFailure("disconnect", "not connected")
        raise WebSocketFailure("timeout", "not connected in time")

    def _send(self, link: Link, message: Message, deadline: float | None) -> int:
        payload, opcode = encode(message)
        self._send_frame(link, payload, opcode, deadline)
        return len(payload)

    def _send_frame(self, link: Link, payload: bytes, opcode: int, deadline: float | None) -> None:
        try:
            link.send(opcode, payload, deadline)
        except TimeoutError:
            raise WebSocketFailure("timeout", "send did not finish in time") from None
        except LinkClosed as exc:
            raise WebSocketFailure("disconnect", f"send failed: {exc}") from None

    # Waiting: a waiting request reads the connection itself when the read turn is free

    def _await_outcome(self, waiter: Waiter, deadline: float | None) -> tuple[Message, int] | BaseException | None:
        """The waiter's outcome, or None when ``deadline`` passed first.

        Takes the read turn when it is free (or already ours: a push handler's nested request) and reads
        until this waiter is settled; otherwise sleeps until settled or until the turn is handed over.
        """
        me = gevent.getcurrent()
        while waiter.outcome is None:
            remaining = None if deadline is None else deadline - time.perf_counter()
            if remaining is not None and remaining <= 0:
                break
            link = self._link
            if link is not None and (self._reading is None or self._reading is me):
                nested = self._reading is me
                if not nested:
                    self._reading = me
                    link.watcher.stop()
                try:
                    self._read_until_settled(link, waiter, deadline)
                finally:
                    if not nested and self._reading is me:
                        self._pass_read_turn()
                break
            if not waiter.wait(remaining):
                break
        return waiter.outcome

    def _read_until_settled(self, link: Link, waiter: Waiter, deadline: float | None) -> None:
        """Read and dispatch frames until ``waiter`` is settled, the link is gone, or ``deadline`` passed."""
        while waiter.outcome is None and self._link is link:
            if not link.has_input():
                remaining = None if deadline is None else deadline - time.perf_counter()
                if remaining is not None and remaining <= 0:
                    return
                if not waiter.wait(remaining, link.watcher) or waiter.outcome is not None:
                    return
                if self._link is not link:
                    return
            self._receive(link, deadline)

    def _pass_read_turn(self) -> None:
        """Give up the read turn: the socket's watcher takes it back, and one waiting request is told it is free.

        Both: the watcher covers a turn handed to a request that is never resumed (its user was killed).
        """
        self._reading = None
        link = self._link
        if link is None:
            return
        if link.has_input():  # left by a reader cut short (killed, or held up in a handler): read on at once
            self._reading = gevent.spawn(self._read_idle, link)
            return
        link.watcher.start(self._on_readable)
        if self._by_id or self._matchers or self._pongs:
            for waiter in self._waiters():
                if waiter.waiting:
                    waiter.nudge()
                    return

    def _waiters(self) -> Iterator[Waiter]:
        yield from self._by_id.values()
        yield from self._matchers
        yield from self._pongs.values()

    def _forget(self, waiter: Waiter, key: Any, started: float) -> None:
        """Stop waiting; an id-correlated request given up unanswered leaves its id to recognise a late reply."""
        if key is not None and self._by_id.get(key) is waiter:
            del self._by_id[key]
            self._abandoned[key] = started
            if len(self._abandoned) > ABANDONED_IDS_KEPT:
                del self._abandoned[next(iter(self._abandoned))]
        elif waiter.match is not None and waiter in self._matchers:
            self._matchers.remove(waiter)

    # Connecting and reconnecting (on a greenlet that lives only while connecting or backing off)

    def _connect_loop(self, after_drop: bool) -> None:
        policy = self.settings.reconnect
        attempt = 0
        if after_drop:
            assert policy is not None
            gevent.sleep(policy.delay(attempt))
            attempt += 1
        while not self._closing:
            if self._connect():
                if after_drop:
                    self._counts.reconnects += 1
                return
            if policy is None or policy.gives_up(attempt):
                break
            gevent.sleep(policy.delay(attempt))
            attempt += 1
        self._stopped = True
        self._ready.set()

    def _connect(self) -> bool:
        """One attempt, recorded as a ``connect`` event; True once the connection is open and watched."""
        options = self.settings.connect
        with self._recorder.start("connect", "closed while connecting", tracked=False) as operation:
            if not self._budget.acquire():
                limit, reserve = self._budget.limit, self._budget.reserve
                operation.failure = WebSocketFailure(
                    "connect", f"open-file limit {limit} reached ({reserve} kept for Locust)"
                )
                return False
            sslopt = {"context": options.ssl_context} if options.ssl_context is not None else None
            ws = WebSocket(skip_utf8_validation=True, sslopt=sslopt)
            try:
                ws.connect(
                    options.url,
                    timeout=options.connect_timeout,
                    header=list(options.headers),
                    origin=options.origin,
                    host=options.host_header,
                    subprotocols=list(options.subprotocols) or None,
                )
            except Exception as exc:
                self._budget.release()
                operation.failure = connect_failure(exc)
                return False
            except BaseException:  # GreenletExit: closed while connecting
                self._budget.release()
                ws.shutdown()
                raise
        assert ws.sock is not None
        ws.sock.settimeout(None)  # reads happen when the socket is readable; sends are bounded per request
        link = Link(ws.sock, ws.getsubprotocol())
        self._link = link
        self._reading = None
        self._connected_at = self._last_received = time.perf_counter()
        self._pinged_at = None
        self._drop_reason = None
        self._counts.open += 1
        link.watcher.start(self._on_readable)
        if link.pending():  # a frame that came in the handshake's TLS record: the socket will not signal it
            self._on_readable()
        if self.settings.ping_interval is not None:
            self._arm_keepalive(self.settings.ping_interval)
        self._ready.set()
        return True

    def _lost(self, link: Link, detail: str | None) -> None:
        """The connection ended: count it, record an unexpected end, fail its waiters, then reconnect."""
        if self._link is not link:
            return
        self._link = None
        self._reading = None
        self._ready.clear()
        self._counts.open -= 1
        if self._keepalive is not None:
            self._keepalive.close()
            self._keepalive = None
        link.close()
        self._budget.release()
        failure = WebSocketFailure("disconnect", detail or "closed by the client")
        if detail is not None and not self._closing:
            self._counts.drops += 1
            self._fire("disconnect", self._connected_at, 0, failure, DISCONNECT_TYPE)
        waiters = list(self._waiters())
        self._by_id.clear()
        self._abandoned.clear()
        self._matchers.clear()
        self._pongs.clear()
        for waiter in waiters:
            waiter.set(failure)
        if self._closing:
            return
        if self.settings.reconnect is None:
            self._stopped = True
            self._ready.set()
        else:
            self._connector = gevent.spawn(self._connect_loop, True)

    def _shutdown(self) -> None:
        connector = self._connector
        if connector is not None and connector is not gevent.getcurrent():
            connector.kill()
        link = self._link
        if link is not None:
            try:
                self._send_control(link, OP_CLOSE, struct.pack("!H", 1000))
            finally:  # even when killed meanwhile: the connection must not outlive its session
                self._lost(link, None)
        self._stopped = True
        self._ready.set()

    def _send_control(self, link: Link, opcode: int, payload: bytes) -> None:
        """Send a close, pong or keepalive ping; a link too broken to take it is the reader's to record."""
        with contextlib.suppress(LinkClosed, TimeoutError):
            link.send(opcode, payload, time.perf_counter() + CONTROL_SEND_TIMEOUT_S)

    # Receiving: whoever holds the read turn; a short-lived greenlet when the socket turns readable while idle

    def _on_readable(self) -> None:
        """Runs on the hub while nobody holds the read turn: a reader greenlet takes it to read what came."""
        link = self._link
        if link is None:
            return
        link.watcher.stop()
        self._reading = gevent.spawn(self._read_idle, link)

    def _read_idle(self, link: Link) -> None:
        try:
            self._receive(link)
        finally:
            if self._reading is gevent.getcurrent():
                self._pass_read_turn()

    def _receive(self, link: Link, deadline: float | None = None) -> None:
        """Read once (plus what TLS already decrypted) unless frames wait in the inbox, then dispatch the inbox
        in order; an ended or broken link is recorded as lost."""
        inbox = link.inbox
        if not inbox and link.broken is None:
            try:
                received = link.receive(deadline)
                while link.pending():
                    received += link.receive(deadline)
            except LinkClosed:
                self._lost(link, self._drop_reason or close_code_text(1006))
                return
            if received:
                self._last_received = time.perf_counter()  # any bytes, even of a frame still incomplete
        while inbox and self._link is link:
            opcode, payload = inbox.popleft()
            self._handle_frame(link, opcode, payload)
        if link.broken is not None and not inbox:
            self._lost(link, link.broken)

    def _handle_frame(self, link: Link, opcode: int, payload: bytes) -> None:
        """Dispatch a message; answer a ping; settle a pong's waiter; a close frame's code and reason end the link."""
        if opcode in (OP_TEXT, OP_BINARY):
            try:
                message = decode(opcode, payload, self.settings.decode_json)
            except UnicodeDecodeError:
                self._lost(link, "protocol error: a text frame that is not UTF-8")
                return
            self._dispatch(message, len(payload))
        elif opcode == OP_PONG:
            if payload == _KEEPALIVE_TOKEN and self._pinged_at is not None:
                self._fire(KEEPALIVE, self._pinged_at, len(payload), None, KEEPALIVE_TYPE)
                self._pinged_at = None
                assert self.settings.ping_interval is not None
                self._arm_keepalive(self.settings.ping_interval)
            else:
                waiter = self._pongs.pop(payload, None)
                if waiter is not None:
                    waiter.set((None, 0))
        elif opcode == OP_PING:
            self._send_control(link, OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self._send_control(link, OP_CLOSE, payload[:2])
            self._lost(link, close_detail(payload))

    # Keepalive: a timer per connection; a short-lived greenlet sends each ping

    def _arm_keepalive(self, seconds: float) -> None:
        if self._keepalive is not None:
            self._keepalive.close()
        self._keepalive = gevent.get_hub().loop.timer(max(0.0, seconds))
        self._keepalive.start(self._on_keepalive_due)

    def _on_keepalive_due(self) -> None:
        """Runs on the hub: ping after ``ping_interval`` of silence; drop the link when a pong is overdue."""
        link = self._link
        interval = self.settings.ping_interval
        if link is None or interval is None:
            return
        if self._pinged_at is not None:
            self._drop_reason = f"no pong within {self.settings.ping_timeout:g} s"
            link.abort()  # the reader sees the end of the stream and records the drop with this reason
            return
        idle = time.perf_counter() - self._last_received
        if idle < interval:
            self._arm_keepalive(interval - idle)
            return
        self._pinged_at = time.perf_counter()
        gevent.spawn(self._send_control, link, OP_PING, _KEEPALIVE_TOKEN)
        self._arm_keepalive(self.settings.ping_timeout)

    def _dispatch(self, message: Message, length: int) -> None:
        """Hand a message to the request waiting for it, else record a late reply, else a push."""
        if (self._by_id or self._abandoned) and isinstance(message, dict):
            key = message.get("id")
            try:
                waiter = self._by_id.pop(key, None)
                given_up_sent_at = None if waiter is not None else self._abandoned.pop(key, None)
            except TypeError:  # an unhashable id cannot be one of ours
                waiter = given_up_sent_at = None
            if waiter is not None:
                waiter.set((message, length))
                return
            if given_up_sent_at is not None:
                late = WebSocketFailure("late", "reply after its request gave up")
                self._fire(LATE_REPLY, given_up_sent_at, length, late, LATE_REPLY_TYPE)
                return
        for waiter in self._matchers:
            try:
                hit = waiter.match(message)  # type: ignore[misc]
            except Exception as exc:
                self._matchers.remove(waiter)
                waiter.set(WebSocketFailure("error", f"match raised {type(exc).__name__}"))
                return
            if hit:
                self._matchers.remove(waiter)
                waiter.set((message, length))
                return
        self._push(message, length)

    def _push(self, message: Message, length: int) -> None:
        settings = self.settings
        sent_at = settings.sent_at(message)
        age = max(0.0, time.time() - sent_at) if sent_at is not None else 0.0  # wall clocks: same-host only
        error = settings.reply_error(message)
        failure = None if error is None else WebSocketFailure("error", error)
        try:
            for predicate, handler in self._handlers:
                try:
                    if predicate(message):
                        handler(message)
                except Exception as exc:
                    failure = WebSocketFailure("error", f"push handler raised {type(exc).__name__}: {exc}"[:100])
        except BaseException:  # the greenlet running the handler was killed: the push came all the same
            failure = WebSocketFailure("cancelled", "push handler cut short")
            raise
        finally:
            self._fire(settings.push_name(message), time.perf_counter() - age, length, failure, PUSH_TYPE)
