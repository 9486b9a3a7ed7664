"""Locust wiring of generator health: the ``--generator-report`` flag, the sampler and display bound to an
Environment (every process samples itself but the master; the master or a local runner shows the figures)."""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext.health.display import HealthDisplay
from locust_ext.health.monitor import HealthMonitor

__all__ = ["add_arguments", "on_init"]


def add_arguments(parser: Any, **_: Any) -> None:
    """``--generator-report``, in its own group, with an env var."""
    group = parser.add_argument_group("Generator health", "hub lag, CPU, memory, files and greenlets per process")
    group.add_argument(
        "--generator-report",
        metavar="PATH",
        env_var="LOCUST_GENERATOR_REPORT",
        help="write every load-generating process's health figures (JSON) here at the end",
    )


def on_init(environment: Environment, **_: Any) -> None:
    """Bind a :class:`HealthMonitor` (sampling) and its :class:`HealthDisplay` to ``environment``."""
    if environment.runner is None:
        return
    options = environment.parsed_options
    report = getattr(options, "generator_report", None) if options is not None else None
    HealthDisplay(environment, HealthMonitor(environment), report)
