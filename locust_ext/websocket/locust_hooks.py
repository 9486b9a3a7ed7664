"""Locust wiring of WebSocketUser: its flags, connection gauges and delivery accounting bound to an Environment.

``--ws-fd-reserve``: open-file descriptors kept free for Locust itself; ``--session-floor``: connection
lifetimes (:mod:`locust_ext.websocket.lifetimes`); ``--delivery-grace`` and
``--deliveries-json``: delivery accounting (:mod:`locust_ext.websocket.deliveries_reconcile`). Everything
else is configured with typed class attributes on the user (see :class:`~locust_ext.websocket.WebSocketUser`);
the user classes' settings and host are checked by :mod:`locust_ext.locust_hooks` (host checks).
"""

from __future__ import annotations

import logging
import resource
from typing import Any

from locust.env import Environment

from locust_ext import local_ips
from locust_ext.cli import exit_invalid
from locust_ext.stages import parse_stages
from locust_ext.websocket.deliveries_display import DeliveryDisplay
from locust_ext.websocket.deliveries_reconcile import DEFAULT_GRACE, DeliveryAccounting
from locust_ext.websocket.display import ConnectionDisplay
from locust_ext.websocket.gauges import ConnectionGauges
from locust_ext.websocket.lifetimes import session_floor
from locust_ext.websocket.preflight import DEFAULT_FD_RESERVE, capacity_plan, ephemeral_port_range, fd_budget
from locust_ext.websocket.user import WebSocketUser

__all__ = ["add_arguments", "on_init"]

log = logging.getLogger("locust_ext.websocket")


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
        "--strict-capacity",
        env_var="LOCUST_STRICT_CAPACITY",
        action="store_true",
        default=False,
        help="headless: exit 2 before load when the run's WebSocket users do not fit its workers' open files or "
        "its source addresses' ports (default: a warning)",
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
    _check_capacity(environment)
    ConnectionDisplay(environment, ConnectionGauges(environment))
    grace = getattr(options, "delivery_grace", DEFAULT_GRACE)
    accounting = DeliveryAccounting(environment, grace)
    DeliveryDisplay(environment, accounting, getattr(options, "deliveries_json", None))


def _session_floor_at_start(environment: Environment, **_: Any) -> None:
    """A worker learns ``--session-floor`` from the master's spawn message, just before test_start."""
    session_floor.seconds = getattr(environment.parsed_options, "session_floor", 0.0)


def _check_capacity(environment: Environment) -> None:
    """A headless master or local run: do its WebSocket users fit its workers and source addresses? Warn, or exit
    2 with --strict-capacity. (Workers check their own share when they start users: :mod:`.preflight`.)"""
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False) or not getattr(options, "headless", False):
        return
    if not any(isinstance(c, type) and issubclass(c, WebSocketUser) for c in environment.user_classes):
        return
    users = getattr(options, "num_users", None) or 0
    stages = getattr(options, "stages", "") or ""
    if stages:
        try:
            users = max(round(stage.target) for stage in parse_stages(stages))
        except ValueError:
            return  # the shapes feature names the problem
    if users <= 0:
        return
    workers = getattr(options, "expect_workers", 1) if getattr(options, "master", False) else 1
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    ports = ephemeral_port_range()
    problem = capacity_plan(
        users,
        max(1, workers),
        environment.host,
        files=soft,
        reserve=fd_budget.reserve,
        ports=ports[1] - ports[0] + 1 if ports else None,
        sources=max(1, local_ips.pool.count()),
    )
    if problem is None:
        return
    if getattr(options, "strict_capacity", False):
        exit_invalid(problem)
    log.warning(problem)
