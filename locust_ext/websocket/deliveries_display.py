"""Delivery numbers where people look: a "Deliveries" web UI tab, run gauges, and a summary when Locust quits.

Runs on the master or a local runner only (it shows what :class:`DeliveryAccounting` reconciled). Every second
it publishes ``websocket.deliveries.<number>`` gauges (published, due, delivered, lost, duplicate,
out_of_order, unsettled, late, unannounced, pending, latency_p50_ms / p95 / p99); when Locust quits it logs a
summary line and, with ``--deliveries-json FILE``, writes the same numbers as JSON. Latency percentiles are
over every ``delivery`` row's successful arrivals and out-of-order ones, from Locust's own stats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.stats import StatsEntry

from locust_ext.roles import is_worker
from locust_ext.run_gauges import publish_gauges
from locust_ext.websocket.deliveries import DELIVERY_TYPE
from locust_ext.websocket.deliveries_reconcile import DeliveryAccounting

__all__ = ["DeliveryDisplay", "delivery_summary", "summary_line"]

log = logging.getLogger("locust_ext.websocket")

GAUGE_GROUP = "websocket.deliveries"
TAB_KEY = "websocket_deliveries"
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
_COLUMNS = (
    ("published", "Published"),
    ("due", "Due"),
    ("delivered", "Delivered"),
    ("pending", "Pending"),
    ("lost", "Lost"),
    ("duplicate", "Duplicate"),
    ("out_of_order", "Out of order"),
    ("unsettled", "Unsettled"),
    ("latency_p50_ms", "Latency p50 (ms)"),
    ("latency_p95_ms", "p95 (ms)"),
    ("latency_p99_ms", "p99 (ms)"),
)


def delivery_summary(environment: Environment, accounting: DeliveryAccounting) -> dict[str, Any]:
    """The reconciled totals plus delivery latency percentiles (ms, None before any arrival)."""
    summary: dict[str, Any] = accounting.book.totals.as_dict()
    merged = StatsEntry(environment.stats, "deliveries", DELIVERY_TYPE, use_response_times_cache=False)
    for entry in list(environment.stats.entries.values()):
        if entry.method == DELIVERY_TYPE:
            merged.extend(entry)
    timed = merged.num_requests - merged.num_none_requests
    for label, fraction in PERCENTILES:
        summary[f"latency_{label}_ms"] = merged.get_response_time_percentile(fraction) if timed else None
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    latency = ", ".join(
        f"{label} {summary[f'latency_{label}_ms']:g} ms" for label, _ in PERCENTILES if summary[f"latency_{label}_ms"]
    )
    return (
        f"Deliveries: published {summary['published']}, due {summary['due']}, delivered {summary['delivered']}, "
        f"lost {summary['lost']}, duplicate {summary['duplicate']}, out of order {summary['out_of_order']}, "
        f"unsettled {summary['unsettled']}, late {summary['late']}, unannounced {summary['unannounced']}"
        + (f", pending {summary['pending']} (the run had not stopped)" if summary["pending"] else "")
        + (f"; latency {latency}" if latency else "")
    )


class DeliveryDisplay:
    """Publishes and shows one Environment's delivery totals; does nothing on a worker or in a run without
    deliveries."""

    def __init__(self, environment: Environment, accounting: DeliveryAccounting, json_file: str | None) -> None:
        self.environment = environment
        self.accounting = accounting
        self.json_file = json_file
        if is_worker(environment):
            return
        environment.events.quitting.add_listener(self.on_quitting)
        if environment.web_ui is not None:
            self._add_web_ui_tab()
        self.greenlet = gevent.spawn(self._loop)

    def summary(self) -> dict[str, Any]:
        return delivery_summary(self.environment, self.accounting)

    def publish(self) -> dict[str, Any]:
        summary = self.summary()
        gauges = {f"{GAUGE_GROUP}.{key}": value for key, value in summary.items() if value is not None}
        publish_gauges(self.environment, GAUGE_GROUP, gauges)
        return summary

    def _loop(self) -> None:
        while True:
            gevent.sleep(1.0)
            if self.accounting.book.totals.published or self.accounting.book.totals.delivered:
                self.publish()

    def on_quitting(self, **_: Any) -> None:
        self.greenlet.kill(block=False)
        totals = self.accounting.book.totals
        if not (totals.published or totals.delivered or self.json_file):
            return
        summary = self.publish()
        log.info(summary_line(summary))
        if self.json_file:
            Path(self.json_file).write_text(json.dumps(summary, indent=2) + "\n")

    def _add_web_ui_tab(self) -> None:
        """A "Deliveries" tab through Locust's extended tabs, fed with each /stats/requests poll."""
        from flask import Response, request

        web_ui = self.environment.web_ui
        assert web_ui is not None and web_ui.app is not None
        args = web_ui.template_args
        args.setdefault("extended_tabs", []).append({"title": "Deliveries", "key": TAB_KEY})
        structure = [{"key": key, "title": title} for key, title in _COLUMNS]
        args.setdefault("extended_tables", []).append({"key": TAB_KEY, "structure": structure})

        @web_ui.app.after_request
        def add_deliveries_to_stats(response: Response) -> Response:
            if not request.path.endswith("/stats/requests") or not response.is_json:
                return response
            document = response.get_json()
            extended = document.get("extended_stats") or []
            row = {key: value if value is not None else "" for key, value in self.summary().items()}
            extended.append({"key": TAB_KEY, "data": [row]})
            document["extended_stats"] = extended
            response.set_data(json.dumps(document))
            return response
