"""A session's connection over its life: opened, lost, reopened after a drop, shut down when the session closes.

Each attempt is recorded as a ``connect`` event (TCP connect + TLS handshake + HTTP upgrade, performed by
websocket-client); failed attempts are retried, and a dropped connection is reopened, after the backoff of
the :class:`~locust_ext.websocket.reconnect.ReconnectPolicy` (None: one attempt, no reconnect), on a
greenlet that lives only while connecting or backing off. When the connection drops, a ``disconnect``
failure is recorded and every request still waiting on it fails at once. Every open connection holds one
open-file descriptor of the process's :class:`~locust_ext.websocket.preflight.FdBudget`.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.event import Event
from websocket import WebSocket

from locust_ext import local_ips
from locust_ext.recording import Recorder
from locust_ext.websocket.correlation import Correlator
from locust_ext.websocket.errors import WebSocketFailure, connect_failure
from locust_ext.websocket.events import DISCONNECT_TYPE
from locust_ext.websocket.frames import OP_CLOSE
from locust_ext.websocket.gauges import ConnectionCounts
from locust_ext.websocket.keepalive import Keepalive
from locust_ext.websocket.lifetimes import SESSION, SESSION_TYPE, session_floor
from locust_ext.websocket.link import Link
from locust_ext.websocket.options import ConnectOptions
from locust_ext.websocket.preflight import FdBudget
from locust_ext.websocket.read_turn import ReadTurn
from locust_ext.websocket.reconnect import ReconnectPolicy
from locust_ext.websocket.waiter import Waiter

__all__ = ["Connector"]


class Connector:
    """Connects per ``options`` and ``policy``; each connection made is read by :attr:`read_turn`, whose
    ``on_frame`` handles the frames; the connection's end is :meth:`lost`."""

    def __init__(
        self,
        options: ConnectOptions,
        policy: ReconnectPolicy | None,
        *,
        budget: FdBudget,
        recorder: Recorder,
        counts: ConnectionCounts,
        correlator: Correlator[Waiter],
        keepalive: Keepalive,
        on_frame: Callable[[Link, int, bytes], str | None],
    ) -> None:
        self._options = options
        self._policy = policy
        self._budget = budget
        self._recorder = recorder
        self._counts = counts
        self._correlator = correlator
        self._keepalive = keepalive
        #: Who reads the connection (``read_turn.holder``) and the connection itself (``read_turn.link``).
        self.read_turn = ReadTurn(correlator, keepalive, on_frame, self.lost)
        self._greenlet: gevent.Greenlet | None = None
        #: Set while connected, and for good once connecting has stopped (so waiters wake either way).
        self._ready = Event()
        self._started = False
        #: Connecting is over for good.
        self._stopped = False
        #: Set when the session closes: no more attempts, and the end of the connection is no drop.
        self.closing = False
        self._connected_at = 0.0

    def start(self) -> None:
        """Start connecting on a greenlet of its own (the first call only)."""
        if not self._started:
            self._started = True
            self._greenlet = gevent.spawn(self._connect_loop, False)

    def wait_connected(self, timeout: float | None) -> bool:
        """Block until connected (True), connecting gave up or ``timeout`` passed (False)."""
        self._ready.wait(timeout)
        return self.read_turn.link is not None

    def link(self, deadline: float | None) -> Link:
        """The open connection, waiting for one until ``deadline``; raises the failure to record otherwise."""
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

    def shutdown(self) -> None:
        """Stop connecting and close the connection (close code 1000); call it once ``closing`` is set."""
        greenlet = self._greenlet
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill()
        link = self.read_turn.link
        if link is not None:
            try:
                link.send_control(OP_CLOSE, struct.pack("!H", 1000))
            finally:  # even when killed meanwhile: the connection must not outlive its session
                self.lost(link, None)
        self._connecting_ended()

    def lost(self, link: Link, detail: str | None) -> None:
        """The connection ended (``detail`` None: closed by the client): count it, record an unexpected end,
        fail its waiters, then reconnect."""
        if self.read_turn.link is not link:
            return
        self.read_turn.close()
        self._ready.clear()
        self._counts.open -= 1
        self._keepalive.stop()
        link.close()
        self._budget.release()
        failure = WebSocketFailure("disconnect", detail or "closed by the client")
        dropped = detail is not None and not self.closing
        if dropped:
            self._counts.drops += 1
            self._recorder.fire("disconnect", self._connected_at, 0, failure, DISCONNECT_TYPE)
        lifetime_s = time.perf_counter() - self._connected_at
        self._recorder.fire(SESSION, self._connected_at, 0, session_floor.failure(lifetime_s, dropped), SESSION_TYPE)
        for waiter in self._correlator.drop():
            waiter.set(failure)
        if self.closing:
            return
        if self._policy is None:
            self._connecting_ended()
        else:
            self._greenlet = gevent.spawn(self._connect_loop, True)

    def _connecting_ended(self) -> None:
        self._stopped = True
        self._ready.set()

    def _connect_loop(self, after_drop: bool) -> None:
        policy = self._policy
        attempt = 0
        if after_drop:
            assert policy is not None
            gevent.sleep(policy.delay(attempt))
            attempt += 1
        while not self.closing:
            link = self._attempt()
            if link is not None:
                self._opened(link, after_drop)
                return
            if policy is None or policy.gives_up(attempt):
                break
            gevent.sleep(policy.delay(attempt))
            attempt += 1
        self._connecting_ended()

    def _opened(self, link: Link, after_drop: bool) -> None:
        self._connected_at = time.perf_counter()
        self._counts.open += 1
        if after_drop:
            self._counts.reconnects += 1
        self.read_turn.open(link)
        self._keepalive.start(link)
        self._ready.set()

    def _attempt(self) -> Link | None:
        """One attempt, recorded as a ``connect`` event; the open connection, or None."""
        options = self._options
        with self._recorder.start("connect", "closed while connecting", tracked=False) as operation:
            if not self._budget.acquire():
                limit, reserve = self._budget.limit, self._budget.reserve
                detail = f"open-file limit {limit} reached ({reserve} kept for Locust)"
                operation.failure = WebSocketFailure("connect", detail)
                return None
            ws = WebSocket(skip_utf8_validation=True)  # handed a socket already connected (and TLS-wrapped)
            sock = None
            try:
                sock = _open_socket(options)
                ws.connect(
                    options.url,
                    timeout=options.connect_timeout,
                    header=list(options.headers),
                    origin=options.origin,
                    host=options.host_header,
                    subprotocols=list(options.subprotocols) or None,
                    socket=sock if isinstance(sock, ssl.SSLSocket) else _HeaderReading(sock),
                )
            except Exception as exc:
                self._budget.release()
                if sock is not None:
                    sock.close()
                if local_ips.port_exhaustion(exc):
                    named = isinstance(exc, local_ips.NoFreeLocalPort) and exc.strerror
                    operation.failure = WebSocketFailure("connect", named or "no free local port")
                else:
                    operation.failure = connect_failure(exc)
                return None
            except BaseException:  # GreenletExit: closed while connecting
                self._budget.release()
                ws.shutdown()
                if sock is not None:
                    sock.close()
                raise
        sock.settimeout(None)  # reads happen when the socket is readable; sends are bounded per request
        return Link(sock, ws.getsubprotocol())


class _HeaderReading:
    """A plain socket (TLS allows no peeking) as websocket-client's handshake sees it. That handshake reads the
    response headers one byte per ``recv`` (a gevent socket call each, a quarter of a connect's CPU); here one
    read takes every header byte that has come, peeked first so that no byte after the headers (a first frame)
    is taken, and each one-byte ``recv`` is served from it. Past the headers, and for everything else, it is
    the socket itself."""

    __slots__ = ("_buffer", "_done", "_tail", "_timeout", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timeout = sock.gettimeout()  # asked before every byte read
        self._buffer = b""
        self._tail = b""  # the last bytes taken, for an end of headers split between two reads
        self._done = False

    def recv(self, size: int) -> bytes:
        if not self._buffer:
            if self._done:
                return self.sock.recv(size)
            head = self.sock.recv(4096, socket.MSG_PEEK)
            seen = self._tail + head
            end = seen.find(b"\r\n\r\n")
            self._done = end >= 0
            self._buffer = self.sock.recv(end + 4 - len(self._tail) if self._done else len(head)) if head else b""
            self._tail = (self._tail + self._buffer)[-3:]
            if not self._buffer:
                return b""
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def gettimeout(self) -> float | None:
        return self._timeout

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _open_socket(options: ConnectOptions) -> Any:
    """The TCP (and TLS) connection for websocket-client's handshake, opened here: from the next ``--local-ips``
    source address when there are any (websocket-client cannot bind one itself), and without a resolver trip
    for a numeric host (:func:`locust_ext.local_ips.connect_tcp`)."""
    parts = urlsplit(options.url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    sock = local_ips.connect_tcp((host, parts.port or (443 if secure else 80)), options.connect_timeout)
    if not secure:
        return sock
    context = options.ssl_context or ssl.create_default_context()
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
