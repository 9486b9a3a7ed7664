"""How iteration work is split over worker processes, and how they agree that it is done.

At each test start the master numbers the connected workers and tells each its place (``WorkerShare``) and
the master's plan before any spawn message leaves, so a worker knows its share of an iteration limit or
arrival rate before its first user starts. A worker that has finished its share sends its last stats, then
``done``; the master ends the run when every worker it counted is done. Alone, a process has the whole share.

An iteration limit needs a user on every worker (a worker without users never finishes its share), so when the
master starts a run with a fixed user count (no shape) below the worker count, it logs one error line and ends
the run at once: headless, the workers are told to quit before any user is sent (exit code 2); in the web UI the
run is stopped, and the shares already sent keep a worker that still gets a user within its share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment

from locust_ext.cli import EXIT_INVALID
from locust_ext.iterations.plan import IterationPlan
from locust_ext.roles import master_runner, worker_runner

__all__ = ["RunCoordinator", "WorkerShare", "end_run", "split_count"]

log = logging.getLogger(__name__)

SHARE_MESSAGE = "locust_ext_iterations_share"
DONE_MESSAGE = "locust_ext_iterations_done"


@dataclass(frozen=True)
class WorkerShare:
    """This process is worker ``index`` of ``count`` (0 of 1 when running alone)."""

    index: int
    count: int


def split_count(total: int, share: WorkerShare) -> int:
    """This worker's whole-number part of ``total``; the parts of all workers add up to ``total`` exactly."""
    return total // share.count + (1 if share.index < total % share.count else 0)


def _headless(environment: Environment) -> bool:
    return bool(environment.parsed_options and getattr(environment.parsed_options, "headless", False))


def end_run(environment: Environment) -> None:
    """End the run as a finished shape does: quit when headless, stop (back to the web UI) otherwise."""
    runner = environment.runner
    assert runner is not None
    gevent.spawn(runner.quit if _headless(environment) else runner.stop)


class RunCoordinator:
    """Shares and completion for one Environment: each ``share_listeners`` entry runs when this process learns
    its share and the plan (the master's, on a worker) at a test start; the first ``done()`` of a run ends
    this process's part of it."""

    def __init__(self, environment: Environment, plan: IterationPlan) -> None:
        self.environment = environment
        self.plan = plan
        self.share_listeners: list[Callable[[WorkerShare, IterationPlan], None]] = []
        self.share_known = Event()
        self._done = False
        self.workers_expected: set[str] = set()
        self.workers_done: set[str] = set()
        if (master := master_runner(environment)) is not None:
            master.register_message(DONE_MESSAGE, self._on_worker_done)
            environment.events.test_start.add_listener(self._send_shares)
        elif (worker := worker_runner(environment)) is not None:
            worker.register_message(SHARE_MESSAGE, self._on_share_message)
        else:
            environment.events.test_start.add_listener(self._alone)

    def _alone(self, **_: Any) -> None:
        self._learn(WorkerShare(0, 1), self.plan)

    def _learn(self, share: WorkerShare, plan: IterationPlan) -> None:
        self._done = False
        for listener in self.share_listeners:
            listener(share, plan)
        self.share_known.set()

    def _on_share_message(self, msg: Any, **_: Any) -> None:
        self._learn(WorkerShare(msg.data["index"], msg.data["count"]), IterationPlan.from_data(msg.data["plan"]))

    def _send_shares(self, **_: Any) -> None:
        runner = master_runner(self.environment)
        assert runner is not None
        workers = sorted(node.id for node in runner.clients.ready + runner.clients.running + runner.clients.spawning)
        self.workers_expected, self.workers_done = set(workers), set()
        for index, worker_id in enumerate(workers):
            data = {"index": index, "count": len(workers), "plan": self.plan.to_data()}
            runner.send_message(SHARE_MESSAGE, data, client_id=worker_id)
        users = runner.target_user_count
        if self.plan.limit and self.environment.shape_class is None and users < len(workers):
            log.error(
                "--iteration-limit needs a user on every worker, but -u %d is below the %d workers "
                "(use -u %d or more, or fewer workers); not starting the run",
                users,
                len(workers),
                len(workers),
            )
            if _headless(self.environment):
                self.environment.process_exit_code = EXIT_INVALID
            end_run(self.environment)  # runs before the spawn messages of this start leave

    def _on_worker_done(self, msg: Any, **_: Any) -> None:
        self.workers_done.add(msg.node_id)
        if self.workers_expected and self.workers_done >= self.workers_expected:
            log.info("Every worker has finished its share of the iterations; ending the run")
            end_run(self.environment)

    def done(self) -> None:
        """This process has finished its share: end the run (alone) or report to the master (worker)."""
        if self._done:
            return
        self._done = True
        worker = worker_runner(self.environment)
        if worker is not None:
            worker._send_stats()  # the final counts must reach the master before it ends the run
            worker.send_message(DONE_MESSAGE, {})
        else:
            end_run(self.environment)
