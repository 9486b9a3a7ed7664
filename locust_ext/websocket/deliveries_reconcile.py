"""Deliveries reconciled per publication, for the whole run: on the master (distributed) or the local runner.

The publisher and the recipients of one publication are usually on different worker processes. Each
process's :class:`~locust_ext.websocket.deliveries.DeliveryLedger` says what it announced and what arrived since
its last report; workers send it with Locust's worker reports (``report_to_master``), and once more when they
stop (a custom message sent before Locust's ``client_stopped``, so the master has every worker's last batch
before its own ``test_stop``). :class:`DeliveryBook` (no Locust, no clock of its own) matches them by
publication id:

- a publication whose arrivals reach the number due is complete;
- one still short ``grace`` seconds after it was announced (plus, on a master, one report interval for the
  news to arrive) is settled: what is missing is **lost**, recorded as failures ``lost: ...`` (``response_time``
  None: nothing arrived to time) on its row;
- when the test stops, a publication announced at least ``grace`` seconds before the stop is settled the same
  way; a younger one is **unsettled** (its missing deliveries are reported as such, never guessed);
- arrivals of a publication nobody announced (its publisher stopped between publishing and announcing) are
  **unannounced** once ``grace`` passes; arrivals after their publication was settled are **late**.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL

from locust_ext.roles import is_master, is_worker, master_runner, worker_runner
from locust_ext.websocket.deliveries import DELIVERY_TYPE, LOST, DeliveryFailure, ledger_for

__all__ = ["DEFAULT_GRACE", "FINAL_MESSAGE", "REPORT_KEY", "DeliveryAccounting", "DeliveryBook", "DeliveryTotals"]

#: Key of the ledger's batch in a worker report, and the custom message carrying a worker's last batch.
REPORT_KEY = "websocket_deliveries"
FINAL_MESSAGE = "locust_ext_deliveries_final"
#: Seconds a publication's deliveries have to arrive (``--delivery-grace``).
DEFAULT_GRACE = 5.0
SETTLE_INTERVAL_S = 1.0
#: Settled publication ids remembered (newest kept) to tell a late arrival from an unannounced one.
SETTLED_KEPT = 200_000


@dataclass
class DeliveryTotals:
    """The run's numbers (see the README's "Delivery accounting" for what each means)."""

    published: int = 0
    due: int = 0
    delivered: int = 0
    lost: int = 0
    duplicate: int = 0
    out_of_order: int = 0
    unsettled: int = 0
    late: int = 0
    unannounced: int = 0
    #: deliveries due and not yet arrived nor settled (live)
    pending: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class DeliveryBook:
    """Publications announced and arrivals, matched by id; what to record as lost is returned, not fired."""

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.grace = grace
        self.totals = DeliveryTotals()
        #: id -> [due (None: not announced yet), arrived, row name, when announced or first seen]
        self._pending: dict[Any, list[Any]] = {}
        self._settled: OrderedDict[Any, None] = OrderedDict()

    def merge(self, batch: dict[str, Any], now: float) -> None:
        """Add one ledger batch (:meth:`DeliveryLedger.drain`) received at wall-clock ``now``."""
        totals, pending = self.totals, self._pending
        for key, due, name, announced in batch.get("expected", ()):
            key = _hashable(key)
            totals.published += 1
            totals.due += due
            totals.pending += due
            entry = pending.get(key)
            if entry is None:
                pending[key] = [due, 0, name, announced]
                entry = pending[key]
            else:
                totals.pending -= min(entry[1], due)
                entry[0], entry[2], entry[3] = due, name, announced
            self._maybe_complete(key, entry)
        for key, count in batch.get("arrived", ()):
            key = _hashable(key)
            totals.delivered += count
            entry = pending.get(key)
            if entry is None:
                if key in self._settled:
                    totals.late += count
                    continue
                entry = pending[key] = [None, 0, "", now]
            if entry[0] is not None:
                totals.pending -= min(count, max(0, entry[0] - entry[1]))
            entry[1] += count
            self._maybe_complete(key, entry)
        totals.duplicate += batch.get("duplicate", 0)
        totals.out_of_order += batch.get("out_of_order", 0)

    def _maybe_complete(self, key: Any, entry: list[Any]) -> None:
        if entry[0] is not None and entry[1] >= entry[0]:
            self.totals.late += entry[1] - entry[0]
            self._settle(key)

    def _settle(self, key: Any) -> None:
        del self._pending[key]
        self._settled[key] = None
        if len(self._settled) > SETTLED_KEPT:
            self._settled.popitem(last=False)

    def settle(self, now: float, lag: float = 0.0) -> list[tuple[str, int]]:
        """Settle what is older than ``grace + lag`` seconds at ``now``; returns (row, lost count) to record."""
        return self._close(now - self.grace - lag, final=False)

    def close(self, stopped: float) -> list[tuple[str, int]]:
        """The test stopped at ``stopped``: settle what is ``grace`` old, the rest is unsettled; forget it all."""
        lost = self._close(stopped - self.grace, final=True)
        self._pending.clear()
        return lost

    def _close(self, cutoff: float, *, final: bool) -> list[tuple[str, int]]:
        totals = self.totals
        lost: list[tuple[str, int]] = []
        for key, (due, arrived, name, since) in list(self._pending.items()):
            if since > cutoff and not final:
                continue
            if due is None:
                if since <= cutoff or final:
                    totals.unannounced += arrived
                    self._settle(key)
                continue
            missing = due - arrived
            totals.pending -= missing
            if since <= cutoff:
                totals.lost += missing
                lost.append((name, missing))
            else:
                totals.unsettled += missing
            self._settle(key)
        return lost


def _hashable(key: Any) -> Any:
    """Ids come back from a worker report as lists when they were tuples."""
    return tuple(key) if isinstance(key, list) else key


class DeliveryAccounting:
    """Listeners bound to one Environment: workers hand their ledger over, the master (or a local runner)
    reconciles, records lost deliveries, and keeps the totals for the display."""

    def __init__(self, environment: Environment, grace: float = DEFAULT_GRACE) -> None:
        self.environment = environment
        self.ledger = ledger_for(environment)
        self.book = DeliveryBook(grace)
        self.greenlet: gevent.Greenlet | None = None
        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        if is_worker(environment):
            events.report_to_master.add_listener(self.on_report_to_master)
            return
        master = master_runner(environment)
        if master is not None:
            events.worker_report.add_listener(self.on_worker_report)
            master.register_message(FINAL_MESSAGE, self.on_final_batch)
        self.lag = WORKER_REPORT_INTERVAL if master is not None else 0.0

    @property
    def reconciles(self) -> bool:
        return not is_worker(self.environment)

    # Workers

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[REPORT_KEY] = self.ledger.drain()

    # Master and local runner

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        batch = data.get(REPORT_KEY)
        if isinstance(batch, dict):
            self.book.merge(batch, time.time())

    def on_final_batch(self, environment: Environment, msg: Any, **_: Any) -> None:
        if isinstance(msg.data, dict):
            self.book.merge(msg.data, time.time())

    def tick(self) -> None:
        """Take this process's own batch (a local run), settle what is old enough, record it."""
        if not is_master(self.environment):
            self.book.merge(self.ledger.drain(), time.time())
        self._record(self.book.settle(time.time(), self.lag))

    def _loop(self) -> None:
        while True:
            gevent.sleep(SETTLE_INTERVAL_S)
            self.tick()

    def _record(self, lost: list[tuple[str, int]]) -> None:
        fire = self.environment.events.request.fire
        for name, count in lost:
            for _ in range(count):
                failure = DeliveryFailure(LOST)
                fire(
                    request_type=DELIVERY_TYPE,
                    name=name,
                    response_time=None,
                    response_length=0,
                    exception=failure,
                    context={},
                )

    def on_test_start(self, **_: Any) -> None:
        self.ledger.clear()
        if not self.reconciles:
            return
        self.book = DeliveryBook(self.book.grace)
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._loop)

    def on_test_stop(self, **_: Any) -> None:
        worker = worker_runner(self.environment)
        if worker is not None:
            worker.send_message(FINAL_MESSAGE, self.ledger.drain())
            return
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None
        if not is_master(self.environment):
            self.book.merge(self.ledger.drain(), time.time())
        self._record(self.book.close(time.time()))
