"""What a WebSocket session records: its request types and event names, and its recorder.

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

A failure is a :class:`~locust_ext.websocket.errors.WebSocketFailure`; an operation cut short (the user
killed mid-request) is recorded as ``cancelled: <what>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from locust.event import EventHook

from locust_ext.derived import register_derived
from locust_ext.recording import Recorder
from locust_ext.websocket.errors import WebSocketFailure

__all__ = [
    "DERIVED_REQUEST_TYPES",
    "DISCONNECT_TYPE",
    "KEEPALIVE",
    "KEEPALIVE_TYPE",
    "LATE_REPLY",
    "LATE_REPLY_TYPE",
    "PUSH_TYPE",
    "REQUEST_TYPE",
    "session_recorder",
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


def _cancelled(cut_short: str) -> WebSocketFailure:
    return WebSocketFailure("cancelled", cut_short)


def session_recorder(request_event: EventHook, context: Callable[[], dict[str, Any]] = dict) -> Recorder:
    """A session's recorder: ``websocket`` events, :class:`WebSocketFailure` failures, ``cancelled`` kills."""
    return Recorder(request_event, REQUEST_TYPE, failure_type=WebSocketFailure, cancelled=_cancelled, context=context)
