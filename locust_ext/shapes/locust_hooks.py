"""Shapes from the command line: ``--stages`` and ``--shape NAME:key=value,...`` (also web UI parameters).

The shape is built and checked at ``init`` (a bad value ends the process with exit code 2 before any
user starts) and installed as the run's shape on the master or local runner. When a run starts, the flags
are read again, so a value edited among the web UI's custom parameters applies to the next run.
"""

from __future__ import annotations

import logging
from typing import Any

from locust.env import Environment

from locust_ext.cli import exit_invalid
from locust_ext.roles import is_worker
from locust_ext.shapes.classes import SHAPES_BY_NAME, ShapeError, SuiteShape, shape_from_options
from locust_ext.web_ui import show_in_web_ui

__all__ = ["CommandLineShape", "add_arguments", "on_init"]

log = logging.getLogger(__name__)


def add_arguments(parser: Any, **_: Any) -> None:
    """``--stages`` and ``--shape``, in their own group, each with an env var, shown in the web UI."""
    group = parser.add_argument_group("Load shapes", "drive the user count over time (replaces -u/-r/-t)")
    stages = group.add_argument(
        "--stages",
        default="",
        env_var="LOCUST_STAGES",
        help="k6-style duration:users stages, linear between them, e.g. 30s:100,1m:100,30s:0 (0s jumps)",
    )
    shape = group.add_argument(
        "--shape",
        default="",
        env_var="LOCUST_SHAPE",
        help="NAME:key=value,... with NAME one of "
        + ", ".join(SHAPES_BY_NAME)
        + "; e.g. spike:base=10,peak=100,spike_at=1m,spike_time=30s,run_time=3m",
    )
    show_in_web_ui(stages, shape)


class CommandLineShape(SuiteShape):
    """The run's shape as the flags describe it; rebuilt from the flags whenever a run starts."""

    abstract = True

    def __init__(self, environment: Environment, shape: SuiteShape) -> None:
        self.environment = environment
        self.current = shape
        super().__init__()

    def reset_time(self) -> None:
        options = self.environment.parsed_options
        try:
            rebuilt = shape_from_options(getattr(options, "stages", ""), getattr(options, "shape", ""))
        except ShapeError as exc:
            log.error("%s; keeping the previous shape", exc)
        else:
            if rebuilt is not None:
                self.current = rebuilt
        super().reset_time()

    def users_at(self, t: float) -> float | None:
        return self.current.users_at(t)

    def tick_at(self, t: float) -> tuple[int, float] | None:
        return self.current.tick_at(t)


def on_init(environment: Environment, **_: Any) -> None:
    """Check the flags and install the shape they describe (master or local runner only)."""
    options = environment.parsed_options
    if options is None or is_worker(environment):
        return
    try:
        shape = shape_from_options(getattr(options, "stages", ""), getattr(options, "shape", ""))
    except ShapeError as exc:
        exit_invalid(str(exc))
    if shape is None:
        return
    if environment.shape_class is not None:
        exit_invalid(
            f"--stages/--shape: the locustfile already defines the shape {type(environment.shape_class).__name__};"
            " use one or the other"
        )
    command_line_shape = CommandLineShape(environment, shape)
    command_line_shape.runner = environment.runner
    environment.shape_class = command_line_shape
