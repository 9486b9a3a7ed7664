"""Delivery tracking without a Locust run: the reconciling book (no I/O at all), and sessions on the reference
backend's rooms recording deliveries, duplicates and order instead of pushes."""

from __future__ import annotations

from typing import Any

import pytest
from locust.env import Environment

from locust_ext import DeliveryTracking, WebSocketUser
from locust_ext.run_gauges import published_gauges
from locust_ext.testing import Backend
from locust_ext.websocket.deliveries import DELIVERY_TYPE, DeliveryLedger, ledger_for
from locust_ext.websocket.deliveries_display import DeliveryDisplay
from locust_ext.websocket.deliveries_reconcile import DeliveryAccounting, DeliveryBook
from tests.ws_sessions import QUICK_RECONNECT, open_session, server_stats, wait_for


def batch(
    expected: tuple[tuple[str, int, str, float], ...] | list[tuple[str, int, str, float]] = (),
    arrived: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {"expected": [list(item) for item in expected], "arrived": list((arrived or {}).items())}


def test_complete_publications_settle_at_once_and_missing_ones_after_grace() -> None:
    book = DeliveryBook(grace=5.0)
    book.merge(batch(arrived={"a": 2, "b": 1}), now=100.0)  # arrivals may come before the announcement
    book.merge(batch([("a", 2, "deliver r1", 100.0), ("b", 3, "deliver r1", 100.5)]), now=101.0)
    assert book.totals.pending == 2 and book.totals.delivered == 3
    assert book.settle(now=104.0) == []
    assert book.settle(now=106.0) == [("deliver r1", 2)]
    assert (book.totals.lost, book.totals.pending, book.totals.unsettled) == (2, 0, 0)
    book.merge(batch(arrived={"b": 1}), now=107.0)
    assert book.totals.late == 1 and book.totals.delivered == 4


def test_at_stop_young_publications_are_unsettled_not_lost() -> None:
    book = DeliveryBook(grace=5.0)
    book.merge(batch([("old", 4, "d", 90.0), ("young", 4, "d", 98.0)], {"old": 1, "young": 1, "orphan": 2}), 99.0)
    assert book.close(stopped=100.0) == [("d", 3)]
    totals = book.totals
    assert (totals.lost, totals.unsettled, totals.unannounced, totals.pending) == (3, 3, 2, 0)


def test_the_master_waits_one_report_interval_more() -> None:
    book = DeliveryBook(grace=2.0)
    book.merge(batch([("p", 1, "d", 10.0)]), 10.0)
    assert book.settle(now=13.0, lag=3.0) == []
    assert book.settle(now=15.0, lag=3.0) == [("d", 1)]


def test_tracking_needs_publisher_and_sequence_together() -> None:
    with pytest.raises(ValueError, match="both publisher= and sequence="):
        DeliveryTracking(message_id=lambda m: m, sent_at=lambda m: 0.0, name=lambda m: "d", publisher=lambda m: 1)


class ChatMember(WebSocketUser):
    reconnect = QUICK_RECONNECT
    request_timeout = 5.0
    deliveries = DeliveryTracking(
        message_id=lambda m: m.get("msg_id") if m.get("type") == "message" else None,
        sent_at=lambda m: m["sent_at"],
        name=lambda m: f"deliver {m['room']}",
        publisher=lambda m: m["from"],
        sequence=lambda m: m["seq"],
    )


def test_sessions_record_deliveries_duplicates_and_order_exactly(ws_backend: Backend) -> None:
    environment = Environment(user_classes=[ChatMember])
    events: list[tuple[str, str, str | None]] = []
    environment.events.request.add_listener(
        lambda request_type, name, exception=None, **_: events.append(
            (request_type, name, None if exception is None else str(exception))
        )
    )
    server_stats(ws_backend, reset=True)
    sessions = [open_session(environment, ws_backend.url, ChatMember) for _ in range(3)]
    try:
        for session in sessions:
            session.request({"type": "join", "room": "t1"})
        fault = {"drop": 0.2, "duplicate": 0.2, "reorder": 0.2}
        publisher = sessions[0]
        for n in range(60):
            ack = publisher.request({"type": "publish", "room": "t1", "payload": n, "delivery_fault": fault})
            publisher.expect_deliveries(ack["msg_id"], ack["recipients"], name="deliver t1")
        publisher.request({"type": "publish", "room": "t1"})  # overtakes what is still held back
        ledger = ledger_for(environment)

        def all_arrived() -> bool:
            sent = server_stats(ws_backend)["deliveries_sent"]
            return len(ledger.arrived) + ledger.duplicates == sent

        wait_for(all_arrived, polls=1000)
    finally:
        for session in sessions:
            session.close()
    tallies = server_stats(ws_backend)
    deliveries = [event for event in events if event[0] == DELIVERY_TYPE]
    assert all(name == "deliver t1" for _, name, _ in deliveries)
    failures = [error.split(":")[0] for _, _, error in deliveries if error]
    assert failures.count("duplicate") == ledger.duplicates == tallies["deliveries_duplicated"] > 0
    assert failures.count("out of order") == ledger.out_of_order == tallies["deliveries_reordered"] > 0
    assert len(ledger.arrived) == tallies["deliveries_sent"] - tallies["deliveries_duplicated"]
    assert not [event for event in events if event[0] == "websocket-push"]  # recorded once, not also as pushes
    assert isinstance(ledger, DeliveryLedger) and len(ledger.expected) == 60


def test_the_local_reconciler_and_the_gauges(ws_backend: Backend) -> None:
    """A local runner's accounting takes the sessions' ledger, settles, and publishes websocket.deliveries.*."""
    environment = Environment(user_classes=[ChatMember])
    environment.create_local_runner()
    accounting = DeliveryAccounting(environment, grace=0.0)
    display = DeliveryDisplay(environment, accounting, None)
    sessions = [open_session(environment, ws_backend.url, ChatMember) for _ in range(3)]
    try:
        for session in sessions:
            session.request({"type": "join", "room": "g1"})
        ack = sessions[0].request({"type": "publish", "room": "g1"})
        sessions[0].expect_deliveries(ack["msg_id"], ack["recipients"] + 1, name="deliver g1")  # one too many
        wait_for(lambda: len(ledger_for(environment).arrived) == 2)
        accounting.tick()
    finally:
        for session in sessions:
            session.close()
        display.greenlet.kill()
    totals = accounting.book.totals
    assert (totals.published, totals.due, totals.delivered, totals.lost, totals.pending) == (1, 3, 2, 1, 0)
    assert environment.stats.get("deliver g1", DELIVERY_TYPE).num_failures == 1
    display.publish()
    gauges = published_gauges(environment)
    assert gauges["websocket.deliveries.lost"] == 1 and gauges["websocket.deliveries.delivered"] == 2
    assert gauges["websocket.deliveries.latency_p50_ms"] >= 0
