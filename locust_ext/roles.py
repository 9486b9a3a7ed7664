"""The part this process plays in a run, read from its Environment: ask here rather than test Locust's runner classes.

A run is one process alone (a ``LocalRunner``, or Locust used as a library with no runner), or a master and its
workers (``--master`` / ``--worker``, or ``--processes``). Workers run the users and ship their stats to the
master; the master runs no users and holds the whole run's stats, as a process alone does. So what grades,
reports or publishes the run's figures runs where :func:`is_worker` is false, and what counts this process's
own traffic runs where :func:`is_master` is false.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from locust.runners import MasterRunner, WorkerRunner

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = ["is_forked_worker", "is_master", "is_worker", "master_runner", "started_as_worker", "worker_runner"]


def is_master(environment: Environment) -> bool:
    """This process is a run's master: it runs no users, its workers report to it."""
    return isinstance(environment.runner, MasterRunner)


def is_worker(environment: Environment) -> bool:
    """This process is a worker of a run: it runs users and reports to a master."""
    return isinstance(environment.runner, WorkerRunner)


def started_as_worker(environment: Environment) -> bool:
    """A worker, or started with ``--worker`` (true before its runner exists, too)."""
    return is_worker(environment) or bool(getattr(environment.parsed_options, "worker", False))


def is_forked_worker(environment: Environment) -> bool:
    """A worker that ``--processes`` forked (its options carry the flag, as its master's do)."""
    return is_worker(environment) and bool(getattr(environment.parsed_options, "processes", None))


def master_runner(environment: Environment) -> MasterRunner | None:
    """The runner when this process is a run's master (to count or message its workers), else None."""
    runner = environment.runner
    return runner if isinstance(runner, MasterRunner) else None


def worker_runner(environment: Environment) -> WorkerRunner | None:
    """The runner when this process is a worker (to message its master), else None."""
    runner = environment.runner
    return runner if isinstance(runner, WorkerRunner) else None
