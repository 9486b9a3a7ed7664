"""Delivery tracking: a publication on one connection, its deliveries on others; latency, loss, duplicates, order.

A user class declares how to read its system's messages with :class:`DeliveryTracking` (protocol-agnostic:
callables over decoded messages). On each connection, a message whose ``message_id`` is not None is a
*delivery*, recorded once, on the ``delivery`` request type (not also as a push):

- its first arrival on the connection: a success event on the row ``name(message)``, ``response_time`` =
  arrival minus ``sent_at(message)``, both **wall clocks** (``time.time()``; exact on one host, as good as the
  clocks' sync across hosts);
- a later arrival of the same publication on the same connection (within ``duplicate_window`` seconds): a
  failure ``duplicate: ...``;
- a first arrival whose ``sequence`` is lower than one already seen from the same ``publisher`` on this
  connection: a failure ``out of order: ...`` (still a delivery, counted as delivered).

The publisher announces what is due with ``self.ws.expect_deliveries(msg_id, recipients, name=...)``. Every
process keeps a :class:`DeliveryLedger` of what was announced and what arrived since its last report; the
reconciler (:mod:`locust_ext.websocket.deliveries_reconcile`) matches them per publication (on the master in a
distributed run), and records what never arrived as ``lost: ...``.

Deliveries are derived measurements (``delivery`` is registered with :mod:`locust_ext.derived`): one publish
fans out to many deliveries, so counted as operations they would swamp Locust's Aggregated row; their rows
and failures stay in the stats and failures tables, where thresholds rules and the StatsD mirror see them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import islice
from typing import Any
from weakref import WeakKeyDictionary

from locust.env import Environment

from locust_ext.derived import register_derived
from locust_ext.recording import Recorder

__all__ = [
    "DELIVERY_TYPE",
    "DeliveryFailure",
    "DeliveryLedger",
    "DeliveryTracking",
    "SessionDeliveries",
    "ledger_for",
]

#: The request type of every delivery event (successes, lost, duplicate, out of order).
DELIVERY_TYPE = "delivery"
register_derived(DELIVERY_TYPE)

DUPLICATE = "duplicate: same publication twice on one connection"
OUT_OF_ORDER = "out of order: a publisher's sequence went backwards on one connection"
LOST = "lost: due, never arrived within the grace time"

_time = time.time
_perf_counter = time.perf_counter


class DeliveryFailure(Exception):
    """A delivery failure; its text (also its ``repr``, which Locust's failures table shows) starts with its
    kind: ``lost:``, ``duplicate:``, ``out of order:`` or ``error:``."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True)
class DeliveryTracking:
    """How to recognise and read a delivery in this user class's messages (a class attribute ``deliveries``).

    ``message_id(m)``: the publication's id, or None when ``m`` is no delivery (it is then a push as before);
    ``sent_at(m)``: the publication's wall-clock time in seconds; ``name(m)``: the stats row (keep it
    low-cardinality: a room, a topic, not an id); ``publisher(m)`` and ``sequence(m)``, both or neither: who
    published it and its number in that publisher's sequence, for order checking. ``duplicate_window``:
    seconds a connection remembers the publications it received, to recognise a duplicate.
    """

    message_id: Callable[[Any], Hashable | None]
    sent_at: Callable[[Any], float]
    name: Callable[[Any], str]
    publisher: Callable[[Any], Hashable] | None = None
    sequence: Callable[[Any], float] | None = None
    duplicate_window: float = 60.0

    def __post_init__(self) -> None:
        if (self.publisher is None) != (self.sequence is None):
            raise ValueError("DeliveryTracking: give both publisher= and sequence= (order checking), or neither")
        if not self.duplicate_window > 0:
            raise ValueError(f"DeliveryTracking: duplicate_window={self.duplicate_window!r} must be > 0 seconds")


class DeliveryLedger:
    """One process's announced and arrived deliveries since its last report, and its duplicate / out-of-order
    counts; :meth:`drain` hands them over (to the master in a worker report, to the local reconciler)."""

    __slots__ = ("arrived", "duplicates", "expected", "out_of_order")

    def __init__(self) -> None:
        #: (publication id, deliveries due, row name, wall-clock time announced)
        self.expected: list[tuple[Any, int, str, float]] = []
        #: publication ids of first arrivals (one per connection each reached), counted when drained
        self.arrived: list[Any] = []
        self.duplicates = 0
        self.out_of_order = 0

    def expect(self, message_id: Hashable, count: int, name: str) -> None:
        self.expected.append((message_id, count, name, _time()))

    def drain(self) -> dict[str, Any]:
        """Everything since the last drain, in plain lists (a worker report carries it as it is)."""
        batch = {
            "expected": [list(item) for item in self.expected],
            "arrived": [[key, count] for key, count in Counter(self.arrived).items()],
            "duplicate": self.duplicates,
            "out_of_order": self.out_of_order,
        }
        self.expected = []
        self.arrived = []
        self.duplicates = self.out_of_order = 0
        return batch

    def clear(self) -> None:
        self.drain()


_ledgers: WeakKeyDictionary[Environment, DeliveryLedger] = WeakKeyDictionary()


def ledger_for(environment: Environment) -> DeliveryLedger:
    """This process's ledger for ``environment`` (created on first use)."""
    ledger = _ledgers.get(environment)
    if ledger is None:
        ledger = _ledgers[environment] = DeliveryLedger()
    return ledger


class SessionDeliveries:
    """One connection's deliveries: what it received lately (duplicates), each publisher's highest sequence
    (order); kept across reconnects, since a duplicate after a reconnect is still a duplicate."""

    __slots__ = ("_next_prune", "_recorder", "_seen", "_top", "ledger", "tracking")

    def __init__(self, tracking: DeliveryTracking | None, ledger: DeliveryLedger, recorder: Recorder) -> None:
        self.tracking = tracking
        self.ledger = ledger
        self._recorder = recorder
        #: publication id -> when it arrived (perf_counter), oldest first
        self._seen: dict[Any, float] = {}
        self._top: dict[Any, float] = {}
        self._next_prune = 0.0

    def expect(self, message_id: Hashable, count: int, name: str) -> None:
        """``count`` deliveries of publication ``message_id`` are due, on the row ``name``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"expect_deliveries: {count!r} recipients: expected an integer >= 0")
        if message_id is None:
            raise ValueError("expect_deliveries: the publication id is None")
        self.ledger.expect(message_id, count, name)

    def arrived(self, message: Any, length: int) -> bool:
        """Record ``message`` if it is a delivery (True); False: it is not one, the caller goes on with it."""
        tracking = self.tracking
        if tracking is None:
            return False
        try:
            key = tracking.message_id(message)
        except Exception:
            return False
        if key is None:
            return False
        now = _perf_counter()
        failure: DeliveryFailure | None = None
        ledger = self.ledger
        try:
            name = tracking.name(message)
            age = _time() - tracking.sent_at(message)
            seen = self._seen
            if now >= self._next_prune:
                self._prune(now)
            if key in seen:
                ledger.duplicates += 1
                failure = DeliveryFailure(DUPLICATE)
            else:
                seen[key] = now
                ledger.arrived.append(key)
                sequence_of = tracking.sequence
                if sequence_of is not None:
                    publisher, sequence = tracking.publisher(message), sequence_of(message)  # type: ignore[misc]
                    top = self._top.get(publisher)
                    if top is not None and sequence < top:
                        ledger.out_of_order += 1
                        failure = DeliveryFailure(OUT_OF_ORDER)
                    else:
                        self._top[publisher] = sequence
        except Exception as exc:
            text = f"error: delivery tracking raised {type(exc).__name__}: {exc}"[:100]
            self._recorder.fire(DELIVERY_TYPE, now, length, DeliveryFailure(text), DELIVERY_TYPE)
            return True
        self._recorder.fire(name, now - age if age > 0 else now, length, failure, DELIVERY_TYPE)
        return True

    def _prune(self, now: float) -> None:
        """Forget publications received longer than ``duplicate_window`` ago (at most once a second)."""
        assert self.tracking is not None
        window = now - self.tracking.duplicate_window
        seen = self._seen
        stale = 0
        for when in seen.values():
            if when >= window:
                break
            stale += 1
        for key in list(islice(seen, stale)):
            del seen[key]
        self._next_prune = now + 1.0
