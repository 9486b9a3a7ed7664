"""Flags of the iteration features and their wiring: ``--iteration-limit``, ``--arrival-rate``,
``--arrival-stages``. Bad values end the process at ``init`` with exit code 2 and one line naming the flag."""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext.iterations import intended_start, task_hook
from locust_ext.iterations.arrival import OpenModel
from locust_ext.iterations.distributed import RunCoordinator, WorkerShare
from locust_ext.iterations.limit import IterationLimit
from locust_ext.iterations.plan import IterationPlan
from locust_ext.roles import is_master, is_worker
from locust_ext.web_ui import show_in_web_ui

__all__ = ["add_arguments", "on_init"]


def add_arguments(parser: Any, **_: Any) -> None:
    """The iteration flags, in their own group, each with an env var, shown in the web UI."""
    group = parser.add_argument_group(
        "Iterations", "an exact iteration count, or the open model (iterations started at an arrival rate)"
    )
    limit = group.add_argument(
        "--iteration-limit",
        type=str,
        default="0",
        env_var="LOCUST_ITERATION_LIMIT",
        help="end the run after exactly this many iterations (task runs) across all workers; 0: no limit; "
        "not with --arrival-rate/--arrival-stages, and at least one user per worker",
    )
    rate = group.add_argument(
        "--arrival-rate",
        type=str,
        default="",
        env_var="LOCUST_ARRIVAL_RATE",
        help="open model: start this many iterations per second whatever the server does; -u users are the "
        "pool and cap the iterations in flight, iterations due when all are busy are dropped and counted",
    )
    stages = group.add_argument(
        "--arrival-stages",
        type=str,
        default="",
        env_var="LOCUST_ARRIVAL_STAGES",
        help="open model with a ramping rate: duration:iterations-per-second stages from 0, e.g. "
        "30s:50,1m:50,30s:0; the run ends after the last stage",
    )
    show_in_web_ui(limit, rate, stages)


def on_init(environment: Environment, **_: Any) -> None:
    """Check the flags and bind the iteration limit and the open model to ``environment``.

    Workers always listen: they learn the master's plan with their share at each test start.
    """
    options = environment.parsed_options
    runner = environment.runner
    if options is None or runner is None:
        return
    worker = is_worker(environment)
    plan = IterationPlan() if worker else IterationPlan.from_options(options)
    if not plan.active and not worker:
        return
    coordinator = RunCoordinator(environment, plan)
    limit = IterationLimit(coordinator)
    open_model = OpenModel(coordinator)
    if is_master(environment):
        return  # the master splits the work and ends the run; users run on the workers

    def activate(_share: WorkerShare, received: IterationPlan) -> None:
        if received.open_model:
            intended_start.correct_request_events(environment)
        if received.active:
            task_hook.set_controllers(environment, [limit, open_model])

    coordinator.share_listeners.append(activate)
