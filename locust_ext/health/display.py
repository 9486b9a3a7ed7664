"""Generator health where people look: a "Generator" web UI tab, lines logged at the end, a JSON report.

Runs on the master or a local runner only (workers' figures reach the master in their reports). The tab has
one row for all processes together and one per process, so a hot worker stands out; the figures are the
latest reporting interval's (hub lag, CPU, memory, files, greenlets) beside the run's hub lag p99 and peaks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from locust.env import Environment

from locust_ext.health.monitor import HealthMonitor

__all__ = ["HealthDisplay", "summary_line"]

log = logging.getLogger("locust_ext.health")

TAB_KEY = "generator_health"
_COLUMNS = (
    ("process", "Process"),
    ("lag_p50", "Hub lag p50 (ms)"),
    ("lag_p99", "Hub lag p99 (ms)"),
    ("lag_max", "Hub lag max (ms)"),
    ("run_lag_p99", "Run hub lag p99 (ms)"),
    ("cpu", "CPU (%)"),
    ("memory", "Memory (MiB)"),
    ("growth", "Growth (KiB/min)"),
    ("files", "Open files"),
    ("share", "Of limit (%)"),
    ("greenlets", "Greenlets"),
)


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(name: str, run: dict[str, Any]) -> str:
    """One process's (or the total's) run figures as a line."""
    return (
        f"Generator health {name}: hub lag p50 {_number(run.get('hub_lag_p50'))} / p99 "
        f"{_number(run.get('hub_lag_p99'))} / max {_number(run.get('hub_lag_max'))} ms, CPU peak "
        f"{_number(run.get('cpu'), 0)} %, memory peak {_number(run.get('memory_rss'))} MiB (growth "
        f"{_number(run.get('memory_growth_per_min'))} KiB/min), open files peak {_number(run.get('open_files'), 0)} "
        f"({_number(run.get('open_files_share'), 2)} % of the limit), greenlets peak {_number(run.get('greenlets'), 0)}"
    )


def _row(name: str, live: dict[str, Any], run: dict[str, Any]) -> dict[str, str]:
    return {
        "process": name,
        "lag_p50": _number(live.get("hub_lag_p50")),
        "lag_p99": _number(live.get("hub_lag_p99")),
        "lag_max": _number(live.get("hub_lag_max")),
        "run_lag_p99": _number(run.get("hub_lag_p99")),
        "cpu": _number(live.get("cpu"), 0),
        "memory": _number(live.get("memory_rss")),
        "growth": _number(run.get("memory_growth_per_min")),
        "files": _number(live.get("open_files"), 0),
        "share": _number(live.get("open_files_share"), 2),
        "greenlets": _number(live.get("greenlets"), 0),
    }


class HealthDisplay:
    """Shows one Environment's generator health; does nothing on a worker."""

    def __init__(self, environment: Environment, monitor: HealthMonitor, report_path: str | None = None) -> None:
        self.environment = environment
        self.monitor = monitor
        self.report_path = report_path
        if monitor.is_worker:
            return
        environment.events.quitting.add_listener(self.on_quitting)
        if environment.web_ui is not None:
            self._add_web_ui_tab()

    def rows(self) -> list[dict[str, str]]:
        """The tab's rows: "all" first, then each process by name."""
        monitor = self.monitor
        rows = [_row("all", monitor.total("live"), monitor.total("run"))]
        for name, process in sorted(monitor.processes.items()):
            label = f"{name} ({process['client_id']})" if process.get("client_id") else name
            rows.append(_row(label, process.get("live") or {}, process.get("run") or {}))
        return rows

    def on_quitting(self, **_: Any) -> None:
        """Log the run's figures per process and in total; write the report when asked."""
        monitor = self.monitor
        monitor.finish()
        if monitor.processes:
            if len(monitor.processes) > 1:
                log.info(summary_line("(all processes)", monitor.total("run")))
            for name, process in sorted(monitor.processes.items()):
                log.info(summary_line(name, process.get("run") or {}))
        if self.report_path:
            try:
                path = Path(self.report_path)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(monitor.document(), indent=2) + "\n", encoding="utf-8")
            except OSError as exc:
                log.error("Generator health: cannot write %s: %s", self.report_path, exc.strerror or exc)

    def _add_web_ui_tab(self) -> None:
        """A "Generator" tab through Locust's extended tabs, fed with each /stats/requests poll; /generator
        serves the report document."""
        from flask import Response, request

        web_ui = self.environment.web_ui
        assert web_ui is not None and web_ui.app is not None
        args = web_ui.template_args
        args.setdefault("extended_tabs", []).append({"title": "Generator", "key": TAB_KEY})
        structure = [{"key": key, "title": title} for key, title in _COLUMNS]
        args.setdefault("extended_tables", []).append({"key": TAB_KEY, "structure": structure})

        @web_ui.app.after_request
        def add_health_to_stats(response: Response) -> Response:
            if not request.path.endswith("/stats/requests") or not response.is_json:
                return response
            document = response.get_json()
            extended = document.get("extended_stats") or []
            extended.append({"key": TAB_KEY, "data": self.rows()})
            document["extended_stats"] = extended
            response.set_data(json.dumps(document))
            return response

        @web_ui.app.route("/generator")
        def generator_json() -> Response:
            return Response(json.dumps(self.monitor.document()), mimetype="application/json")
