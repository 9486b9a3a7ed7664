"""An exact iteration limit: the run ends after exactly N iterations, at whatever concurrency -u gives.

Each process takes permits for its share of N (see ``distributed``); a user that finds none left stops at
the start of its next iteration, so no call is cut short. When every permit taken has finished its
iteration, the process's share is done. Every iteration started is one that the limit allowed, so the
server sees exactly N iterations' calls, in local and distributed runs alike.
"""

from __future__ import annotations

import logging

from locust import User
from locust.exception import StopUser

from locust_ext.iterations.distributed import RunCoordinator, WorkerShare, split_count
from locust_ext.iterations.plan import IterationPlan

__all__ = ["IterationLimit"]

log = logging.getLogger(__name__)


class IterationLimit:
    """Stops users once this process's share of ``total`` iterations has started; ends the run when done."""

    def __init__(self, coordinator: RunCoordinator) -> None:
        self.coordinator = coordinator
        self.total = 0
        self.share: int | None = None
        self.started = 0
        self.finished = 0
        self._reported_done = False
        coordinator.share_listeners.append(self._on_share)

    def _on_share(self, share: WorkerShare, plan: IterationPlan) -> None:
        self.total = plan.limit
        self.share = split_count(self.total, share)
        self.started = self.finished = 0
        self._reported_done = False
        if self.total:
            log.info("Iteration limit: this process runs %d of %d iterations", self.share, self.total)

    def begin(self, user: User) -> None:
        self.coordinator.share_known.wait()
        assert self.share is not None
        if not self.total:
            return
        if self.started >= self.share:
            self._check_done()
            raise StopUser()
        self.started += 1

    def end(self, user: User) -> None:
        if not self.total:
            return
        self.finished += 1
        self._check_done()

    def _check_done(self) -> None:
        if self._reported_done or self.share is None:
            return
        if self.started >= self.share and self.finished == self.started:
            self._reported_done = True
            self.coordinator.done()
