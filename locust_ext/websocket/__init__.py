"""WebSocketUser: correlated round trips, pushes, pings, reconnects and connection gauges for WebSocket load.

``--ws-fd-reserve`` is the one run-wide flag: open-file descriptors kept free for Locust itself.
Everything else is configured with typed class attributes on the user (see :class:`WebSocketUser`).
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext.websocket.display import ConnectionDisplay
from locust_ext.websocket.errors import WebSocketConfigError, WebSocketFailure, WebSocketUserError
from locust_ext.websocket.gauges import ConnectionCounts, ConnectionGauges
from locust_ext.websocket.preflight import DEFAULT_FD_RESERVE, fd_budget
from locust_ext.websocket.reconnect import ReconnectPolicy
from locust_ext.websocket.session import WebSocketSession
from locust_ext.websocket.user import WebSocketUser

__all__ = [
    "ConnectionCounts",
    "ReconnectPolicy",
    "WebSocketConfigError",
    "WebSocketFailure",
    "WebSocketSession",
    "WebSocketUser",
    "WebSocketUserError",
    "add_arguments",
    "on_init",
]


def _fd_reserve(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def add_arguments(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("WebSocket users", "connections of WebSocketUser classes")
    group.add_argument(
        "--ws-fd-reserve",
        env_var="LOCUST_WS_FD_RESERVE",
        type=_fd_reserve,
        default=DEFAULT_FD_RESERVE,
        metavar="N",
        help=f"open-file descriptors kept free for Locust; connects past the limit fail (default {DEFAULT_FD_RESERVE})",
    )


def on_init(environment: Environment, **_: Any) -> None:
    """Set the descriptor reserve, and bind the connection gauges and their display (host checks: host_check)."""
    options = environment.parsed_options
    if options is not None:
        fd_budget.reserve = getattr(options, "ws_fd_reserve", DEFAULT_FD_RESERVE)
    ConnectionDisplay(environment, ConnectionGauges(environment))
