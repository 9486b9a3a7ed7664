"""Open connections, drops and reconnects: counted per process, summed over workers, published as run gauges.

Each process counts its own users' connections in a :class:`ConnectionCounts`. Workers send theirs to the
master with Locust's own worker reports (``report_to_master``); the master keeps the latest from each worker
and sums them, so local, ``--processes`` and multi-machine runs give the same totals. Open connections are
summed only over workers running users now: a worker that stopped, quit or went missing holds none, whatever
its last report said; its drops and reconnects stay in the run's totals. The master (or a local runner)
publishes them with :func:`locust_ext.publish_gauge` as ``websocket.open_connections``, ``websocket.drops``
and ``websocket.reconnects``, and once more when the test stops, so the last published open count is 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from weakref import WeakKeyDictionary

from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, STATE_STOPPING

from locust_ext.roles import is_master, is_worker, master_runner
from locust_ext.run_gauges import publish_gauge

__all__ = ["GAUGE_NAMES", "REPORT_KEY", "ConnectionCounts", "ConnectionGauges", "counts_for"]

#: Key of this feature's numbers in a worker report.
REPORT_KEY = "websocket_connections"
#: Worker states (as the master sees them) in which a worker runs users, and so may hold connections.
_HOLDING_STATES = (STATE_SPAWNING, STATE_RUNNING, STATE_STOPPING)
GAUGE_NAMES = {
    "open": "websocket.open_connections",
    "drops": "websocket.drops",
    "reconnects": "websocket.reconnects",
}


@dataclass
class ConnectionCounts:
    """One process's connections: open now, and drops / reconnects since the test started."""

    open: int = 0
    drops: int = 0
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_counts: WeakKeyDictionary[Environment, ConnectionCounts] = WeakKeyDictionary()


def counts_for(environment: Environment) -> ConnectionCounts:
    """This process's counts for ``environment`` (created on first use)."""
    counts = _counts.get(environment)
    if counts is None:
        counts = _counts[environment] = ConnectionCounts()
    return counts


class ConnectionGauges:
    """Listeners bound to one Environment: workers report, the master sums, master or local publishes."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.local = counts_for(environment)
        self.from_workers: dict[str, dict[str, int]] = {}
        events = environment.events
        if is_worker(environment):
            events.report_to_master.add_listener(self.on_report_to_master)
        if is_master(environment):
            events.worker_report.add_listener(self.on_worker_report)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)

    def totals(self) -> ConnectionCounts:
        """The run's numbers: the sum over workers on a master (open: only those running users), this
        process's own otherwise."""
        runner = master_runner(self.environment)
        if runner is None:
            return ConnectionCounts(**self.local.as_dict())
        total = ConnectionCounts()
        for client_id, report in self.from_workers.items():
            worker = runner.clients.get(client_id)
            if worker is not None and worker.state in _HOLDING_STATES:
                total.open += report.get("open", 0)
            total.drops += report.get("drops", 0)
            total.reconnects += report.get("reconnects", 0)
        return total

    def publish(self) -> ConnectionCounts:
        """Publish the totals as run gauges (never from a worker) and return them."""
        totals = self.totals()
        if not is_worker(self.environment):
            for field, value in totals.as_dict().items():
                publish_gauge(self.environment, GAUGE_NAMES[field], value)
        return totals

    def on_test_start(self, **_: Any) -> None:
        self.local.drops = self.local.reconnects = 0
        self.from_workers.clear()

    def on_test_stop(self, **_: Any) -> None:
        self.publish()

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[REPORT_KEY] = self.local.as_dict()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        report = data.get(REPORT_KEY)
        if isinstance(report, dict):
            self.from_workers[client_id] = report
            self.publish()
