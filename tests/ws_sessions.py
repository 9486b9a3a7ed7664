"""What the WebSocketUser tests share: an event recorder, sessions built outside a Locust run, the reference
backend's counters, and test servers built on ``websockets``' sync server."""

from __future__ import annotations

import gc
import json
import selectors
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import gevent
import locust  # noqa: F401 - patches the standard library (threading too) before sockets are made
from locust.env import Environment
from websockets.sync.server import Server

from locust_ext import ReconnectPolicy, WebSocketUser
from locust_ext.testing import Backend
from locust_ext.websocket import WebSocketSession

QUICK_RECONNECT = ReconnectPolicy(initial_delay=0.05, max_delay=0.2)


class Recorder:
    """Every request event fired in one Environment, as (name, failure text or None, response length)."""

    def __init__(self, environment: Environment) -> None:
        self.events: list[tuple[str, str | None, int]] = []
        environment.events.request.add_listener(self.on_request)

    def on_request(self, name: str, exception: BaseException | None, response_length: int, **_: Any) -> None:
        self.events.append((name, None if exception is None else str(exception), response_length))

    def named(self, name: str) -> list[tuple[str, str | None, int]]:
        return [event for event in self.events if event[0] == name]


class EchoUser(WebSocketUser):
    """Settings for sessions built by the tests; the tests drive ``self.ws`` themselves."""

    reconnect = QUICK_RECONNECT
    request_timeout = 5.0


def open_session(
    environment: Environment, url: str, user_class: type[WebSocketUser] = EchoUser, *, wait: bool = True
) -> WebSocketSession:
    environment.host = url
    session = user_class(environment).ws
    session.start()
    if wait:
        assert session.wait_connected(10)
    return session


def server_stats(backend: Backend, reset: bool = False) -> dict[str, Any]:
    path = "/stats/reset" if reset else "/stats"
    with urllib.request.urlopen(f"http://{backend.address}{path}", timeout=5) as response:
        return dict(json.load(response))


def wait_for(condition: Callable[[], object], polls: int = 500) -> None:
    """Yield to the hub until ``condition()`` holds, at most ``polls`` times 10 ms."""
    while not condition() and polls:
        gevent.sleep(0.01)
        polls -= 1


def session_greenlets() -> list[gevent.Greenlet]:
    """Live greenlets running a method of a session's pieces (connecting, reading, pinging, closing)."""
    gc.collect()
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, gevent.Greenlet)
        and not obj.dead
        and type(getattr(getattr(obj, "_run", None), "__self__", None)).__module__.startswith("locust_ext.websocket.")
    ]


@contextmanager
def serving(server: Server) -> Iterator[None]:
    """Run a ``websockets`` sync server on a thread (a greenlet here) for the block; always shut it down.

    serve_forever closes its shutdown socket while still registered with its selector. gevent's selector keeps a
    watcher on every registered file until it fires, so that watcher outlives the file, and libev aborts the
    process once the number is reused. SelectSelector (gevent's select here) keeps no watcher between calls.
    """
    with patch.object(selectors, "DefaultSelector", selectors.SelectSelector):
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            thread.join(10)
