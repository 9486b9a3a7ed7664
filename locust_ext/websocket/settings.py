"""A user class's session configuration, checked once and shared by all its users."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from locust_ext.websocket.messages import Message, error_reply, push_name, sent_at_seconds
from locust_ext.websocket.options import ConnectOptions
from locust_ext.websocket.reconnect import ReconnectPolicy

__all__ = ["DEFAULT_RECONNECT", "SessionSettings"]

DEFAULT_RECONNECT = ReconnectPolicy()


@dataclass(frozen=True)
class SessionSettings:
    """What a :class:`~locust_ext.websocket.session.WebSocketSession` needs from its user class."""

    connect: ConnectOptions
    request_timeout: float | None = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float = 10.0
    reconnect: ReconnectPolicy | None = DEFAULT_RECONNECT
    decode_json: bool = True
    reply_error: Callable[[Message], str | None] = error_reply
    push_name: Callable[[Message], str] = push_name
    sent_at: Callable[[Message], float | None] = sent_at_seconds
