"""Opening a session's connection, and opening it again after a drop, on a greenlet that lives only meanwhile.

Each attempt is recorded as a ``connect`` event (TCP connect + TLS handshake + HTTP upgrade, performed by
websocket-client); failed attempts are retried, and a dropped connection is reopened, after the backoff of
the :class:`~locust_ext.websocket.reconnect.ReconnectPolicy` (None: one attempt, no reconnect). Every open
connection holds one open-file descriptor of the process's :class:`~locust_ext.websocket.preflight.FdBudget`.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
from websocket import WebSocket

from locust_ext.recording import Recorder
from locust_ext.websocket.errors import WebSocketFailure, connect_failure
from locust_ext.websocket.link import Link
from locust_ext.websocket.options import ConnectOptions
from locust_ext.websocket.preflight import FdBudget
from locust_ext.websocket.reconnect import ReconnectPolicy

__all__ = ["Connector"]


class Connector:
    """Connects per ``options`` and ``policy``; ``on_open(link, after_drop)`` takes each connection made,
    ``on_give_up()`` is called when connecting stops for good without one."""

    __slots__ = ("_budget", "_greenlet", "_on_give_up", "_on_open", "_options", "_policy", "_recorder", "closing")

    def __init__(
        self,
        options: ConnectOptions,
        policy: ReconnectPolicy | None,
        budget: FdBudget,
        recorder: Recorder,
        on_open: Callable[[Link, bool], None],
        on_give_up: Callable[[], None],
    ) -> None:
        self._options = options
        self._policy = policy
        self._budget = budget
        self._recorder = recorder
        self._on_open = on_open
        self._on_give_up = on_give_up
        self._greenlet: gevent.Greenlet | None = None
        #: Set when the session closes: no more attempts.
        self.closing = False

    @property
    def reconnects(self) -> bool:
        """Whether a dropped connection is reopened."""
        return self._policy is not None

    def start(self, after_drop: bool = False) -> None:
        """Connect on a greenlet of its own (after a first backoff when reconnecting after a drop)."""
        self._greenlet = gevent.spawn(self._connect_loop, after_drop)

    def stop(self) -> None:
        """Stop connecting (from any greenlet but the connector's own); a connection being made is cancelled."""
        self.closing = True
        greenlet = self._greenlet
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill()

    def release(self) -> None:
        """A connection this connector made has closed: its descriptor is free again."""
        self._budget.release()

    def _connect_loop(self, after_drop: bool) -> None:
        policy = self._policy
        attempt = 0
        if after_drop:
            assert policy is not None
            gevent.sleep(policy.delay(attempt))
            attempt += 1
        while not self.closing:
            link = self.attempt()
            if link is not None:
                self._on_open(link, after_drop)
                return
            if policy is None or policy.gives_up(attempt):
                break
            gevent.sleep(policy.delay(attempt))
            attempt += 1
        self._on_give_up()

    def attempt(self) -> Link | None:
        """One attempt, recorded as a ``connect`` event; the open connection, or None."""
        options = self._options
        with self._recorder.start("connect", "closed while connecting", tracked=False) as operation:
            if not self._budget.acquire():
                limit, reserve = self._budget.limit, self._budget.reserve
                detail = f"open-file limit {limit} reached ({reserve} kept for Locust)"
                operation.failure = WebSocketFailure("connect", detail)
                return None
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
                return None
            except BaseException:  # GreenletExit: closed while connecting
                self._budget.release()
                ws.shutdown()
                raise
        assert ws.sock is not None
        ws.sock.settimeout(None)  # reads happen when the socket is readable; sends are bounded per request
        return Link(ws.sock, ws.getsubprotocol())
