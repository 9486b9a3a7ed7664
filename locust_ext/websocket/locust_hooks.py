"""Locust wiring of WebSocketUser: the ``--ws-fd-reserve`` flag, and connection gauges bound to an Environment.

``--ws-fd-reserve`` is the one run-wide flag: open-file descriptors kept free for Locust itself. Everything
else is configured with typed class attributes on the user (see :class:`~locust_ext.websocket.WebSocketUser`);
the user classes' settings and host are checked by :mod:`locust_ext.locust_hooks` (host checks).
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext.websocket.display import ConnectionDisplay
from locust_ext.websocket.gauges import ConnectionGauges
from locust_ext.websocket.preflight import DEFAULT_FD_RESERVE, fd_budget

__all__ = ["add_arguments", "on_init"]


def _fd_reserve(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def add_arguments(parser: Any, **_: Any) -> None:
    """``--ws-fd-reserve``, in its own group, with an env var."""
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
    """Set this process's descriptor reserve, and bind the connection gauges and their display."""
    options = environment.parsed_options
    if options is not None:
        fd_budget.reserve = getattr(options, "ws_fd_reserve", DEFAULT_FD_RESERVE)
    ConnectionDisplay(environment, ConnectionGauges(environment))
