"""Connection numbers where people look: a console line, a "WebSocket" web UI tab, published run gauges.

Runs on the master or a local runner only (a worker's numbers reach the master in its reports). Every
second it publishes the totals as run gauges; every few seconds, while they change, it logs one line
(console and the web UI's log tab), and it logs a last line when Locust quits.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gevent
from locust.env import Environment
from locust.stats import CONSOLE_STATS_INTERVAL_SEC

from locust_ext.roles import is_worker
from locust_ext.websocket.gauges import ConnectionCounts, ConnectionGauges

__all__ = ["ConnectionDisplay", "summary_line"]

log = logging.getLogger("locust_ext.websocket")

PUBLISH_INTERVAL_S = 1.0
TAB_KEY = "websocket_connections"
_COLUMNS = (("open", "Open connections"), ("drops", "Drops"), ("reconnects", "Reconnects"))


def summary_line(counts: ConnectionCounts) -> str:
    return f"WebSocket connections: {counts.open} open, {counts.drops} drops, {counts.reconnects} reconnects"


class ConnectionDisplay:
    """Publishes and shows one Environment's connection totals; does nothing on a worker."""

    def __init__(self, environment: Environment, gauges: ConnectionGauges) -> None:
        self.environment = environment
        self.gauges = gauges
        self.last_logged: ConnectionCounts | None = None
        self.ticks = 0
        if is_worker(environment):
            return
        options = environment.parsed_options
        self.periodic_lines = not (options is not None and getattr(options, "only_summary", False))
        environment.events.quitting.add_listener(self.on_quitting)
        if environment.web_ui is not None:
            self._add_web_ui_tab()
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        every = max(1, round(CONSOLE_STATS_INTERVAL_SEC / PUBLISH_INTERVAL_S))
        while True:
            gevent.sleep(PUBLISH_INTERVAL_S)
            totals = self.gauges.publish()
            self.ticks += 1
            if self.periodic_lines and self.ticks % every == 0 and totals != self.last_logged:
                self.last_logged = totals
                log.info(summary_line(totals))

    def on_quitting(self, **_: Any) -> None:
        self.greenlet.kill(block=False)
        log.info(summary_line(self.gauges.publish()))

    def _add_web_ui_tab(self) -> None:
        """A "WebSocket" tab through Locust's extended tabs, fed with each /stats/requests poll."""
        from flask import Response, request

        web_ui = self.environment.web_ui
        assert web_ui is not None and web_ui.app is not None
        args = web_ui.template_args
        args.setdefault("extended_tabs", []).append({"title": "WebSocket", "key": TAB_KEY})
        structure = [{"key": key, "title": title} for key, title in _COLUMNS]
        args.setdefault("extended_tables", []).append({"key": TAB_KEY, "structure": structure})

        @web_ui.app.after_request
        def add_connections_to_stats(response: Response) -> Response:
            if not request.path.endswith("/stats/requests") or not response.is_json:
                return response
            document = response.get_json()
            extended = document.get("extended_stats") or []
            extended.append({"key": TAB_KEY, "data": [self.gauges.totals().as_dict()]})
            document["extended_stats"] = extended
            response.set_data(json.dumps(document))
            return response
