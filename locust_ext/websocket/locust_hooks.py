"""Locust wiring of WebSocketUser: its flags, connection gauges and delivery accounting bound to an Environment.

``--ws-fd-reserve``: open-file descriptors kept free for Locust itself; ``--session-floor``: connection
lifetimes (:mod:`locust_ext.websocket.lifetimes`); ``--delivery-grace`` and
``--deliveries-json``: delivery accounting (:mod:`locust_ext.websocket.deliveries_reconcile`). Everything
else is configured with typed class attributes on the user (see :class:`~locust_ext.websocket.WebSocketUser`);
the user classes' settings and host are checked by :mod:`locust_ext.locust_hooks` (host checks).
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext.websocket.deliveries_display import DeliveryDisplay
from locust_ext.websocket.deliveries_reconcile import DEFAULT_GRACE, DeliveryAccounting
from locust_ext.websocket.display import ConnectionDisplay
from locust_ext.websocket.gauges import ConnectionGauges
from locust_ext.websocket.lifetimes import session_floor
from locust_ext.websocket.preflight import DEFAULT_FD_RESERVE, fd_budget

__all__ = ["add_arguments", "on_init"]


def _fd_reserve(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _grace(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


def add_arguments(parser: Any, **_: Any) -> None:
    """``--ws-fd-reserve``, ``--delivery-grace``, ``--session-floor``, ``--deliveries-json``, with env vars."""
    group = parser.add_argument_group("WebSocket users", "connections of WebSocketUser classes")
    group.add_argument(
        "--ws-fd-reserve",
        env_var="LOCUST_WS_FD_RESERVE",
        type=_fd_reserve,
        default=DEFAULT_FD_RESERVE,
        metavar="N",
        help=f"open-file descriptors kept free for Locust; connects past the limit fail (default {DEFAULT_FD_RESERVE})",
    )
    group.add_argument(
        "--delivery-grace",
        env_var="LOCUST_DELIVERY_GRACE",
        type=_grace,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"seconds a publication's deliveries may take before missing ones are lost (default {DEFAULT_GRACE:g})",
    )
    group.add_argument(
        "--session-floor",
        env_var="LOCUST_SESSION_FLOOR",
        type=_grace,
        default=0.0,
        metavar="SECONDS",
        help="a connection dropped sooner fails its 'session' row (lifetimes, kept out of the totals; default 0)",
    )
    group.add_argument(
        "--deliveries-json",
        env_var="LOCUST_DELIVERIES_JSON",
        default=None,
        metavar="FILE",
        help="write the delivery summary (published, due, delivered, lost, ...) as JSON when Locust quits",
    )


def on_init(environment: Environment, **_: Any) -> None:
    """Set this process's descriptor reserve, and bind the connection gauges, delivery accounting and displays."""
    options = environment.parsed_options
    if options is not None:
        fd_budget.reserve = getattr(options, "ws_fd_reserve", DEFAULT_FD_RESERVE)
        session_floor.seconds = getattr(options, "session_floor", 0.0)
    environment.events.test_start.add_listener(_session_floor_at_start)
    ConnectionDisplay(environment, ConnectionGauges(environment))
    grace = getattr(options, "delivery_grace", DEFAULT_GRACE)
    accounting = DeliveryAccounting(environment, grace)
    DeliveryDisplay(environment, accounting, getattr(options, "deliveries_json", None))


def _session_floor_at_start(environment: Environment, **_: Any) -> None:
    """A worker learns ``--session-floor`` from the master's spawn message, just before test_start."""
    session_floor.seconds = getattr(environment.parsed_options, "session_floor", 0.0)
