"""Notice workers a master loses mid-run, for the verdict: a run whose stats miss a worker's last requests must
not pass silently.

Locust's master marks a worker ``missing`` after about three seconds without a heartbeat (and forgets its users),
and drops a worker that sends ``quit``; neither fires an event. :class:`WorkerWatch` therefore looks at
``runner.clients`` twice a second while a run goes (and once more when it stops), remembering each worker's
user count from its reports. A worker gone missing, or gone from the list while the run is spawning or running,
is lost; one that comes back with a heartbeat before the end is forgiven (its reports carry what it counted).
A worker that stops sending heartbeats in the last seconds of a headless run may end before the master notices.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner

from locust_ext.thresholds.model import LostWorker

__all__ = ["POLL_INTERVAL_S", "WorkerWatch"]

#: How often the master's worker list is looked at during a run.
POLL_INTERVAL_S = 0.5

log = logging.getLogger(__name__)


class WorkerWatch:
    """Lost workers of the current run of ``runner`` (a master); ``lost`` lists them in the order noticed."""

    def __init__(self, environment: Environment, runner: MasterRunner) -> None:
        self.environment = environment
        self.runner = runner
        self.lost: list[LostWorker] = []
        self._users: dict[str, int] = {}
        self._seen: set[str] = set()
        self._started: float | None = None
        self._poller: gevent.Greenlet | None = None
        events = environment.events
        events.test_start.add_listener(self._on_test_start)
        events.test_stop.add_listener(self._on_test_stop)
        events.worker_report.add_listener(self._on_worker_report)

    def _on_test_start(self, **_kwargs: Any) -> None:
        self.lost = []
        self._seen = set(self.runner.clients.keys())
        self._started = time.monotonic()
        if self._poller is None:
            self._poller = gevent.spawn(self._poll_forever)

    def _on_test_stop(self, **_kwargs: Any) -> None:
        if self._poller is not None:
            self._poller.kill(block=False)
            self._poller = None
            self.check(running=False)

    def _on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        users = data.get("user_count")
        if isinstance(users, int) and users > 0:
            self._users[client_id] = users

    def _poll_forever(self) -> None:
        while True:
            gevent.sleep(POLL_INTERVAL_S)
            self.check(running=self.runner.state in (STATE_SPAWNING, STATE_RUNNING))

    def check(self, *, running: bool) -> None:
        """Record workers newly missing, and (``running``: while users run) workers gone from the list."""
        clients = self.runner.clients
        for client_id in list(clients.keys()):
            node = clients.get(client_id)
            if node is None:
                continue
            self._seen.add(client_id)
            if node.user_count > 0:
                self._users[client_id] = node.user_count
            if node.state == STATE_MISSING:
                self._record(client_id, "missing")
            else:
                self._forgive(client_id)
        present = set(clients.keys())
        for client_id in self._seen - present:
            self._seen.discard(client_id)
            if running:
                self._record(client_id, "quit")

    def _record(self, client_id: str, how: str) -> None:
        if any(worker.id == client_id for worker in self.lost):
            return
        after = time.monotonic() - self._started if self._started is not None else None
        worker = LostWorker(
            id=client_id,
            index=self.runner.worker_indexes.get(client_id),
            how=how,
            noticed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            after_s=round(after, 1) if after is not None else None,
            users=self._users.get(client_id, 0),
        )
        self.lost.append(worker)
        log.warning("Thresholds: lost %s", worker.message)

    def _forgive(self, client_id: str) -> None:
        """A missing worker that sent a heartbeat again is back, and its reports carry what it counted."""
        kept = [worker for worker in self.lost if not (worker.id == client_id and worker.how == "missing")]
        if len(kept) != len(self.lost):
            log.info("Thresholds: worker %s is back (heartbeat received)", client_id)
            self.lost = kept
