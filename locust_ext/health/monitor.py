"""Generator health of a run: each load-generating process samples itself, the master gathers, everyone sees.

A worker (and a local runner) runs a :class:`~locust_ext.health.sampler.HealthSampler`. Workers send its
report with Locust's own worker reports (``report_to_master``, every 3 s); the master keeps the latest per
worker (``worker_report``) under the name ``worker-<index>``; a local runner takes its own report as often.
The master (or local runner) then publishes: every process's run figures for the thresholds gate
(:func:`locust_ext.generator.publish_generator_figures`), and run gauges for the StatsD mirror, totals and per
process (``generator.hub_lag_p99_ms``, ``generator.worker-0.hub_lag_p99_ms``, ...). Totals take the worst
process for lag, CPU and file share, and add up memory, files and greenlets.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.env import Environment

from locust_ext.generator import FIGURES, publish_generator_figures
from locust_ext.health.sampler import HealthSampler
from locust_ext.roles import is_master, is_worker, master_runner
from locust_ext.run_gauges import gauge_segment, publish_gauges

__all__ = ["LAG_WARNING_MS", "REPORT_KEY", "HealthMonitor", "totals"]

#: Key of this feature's numbers in a worker report.
REPORT_KEY = "generator_health"
#: How often a local runner takes its own report (a worker's report goes every 3 s, Locust's interval).
LOCAL_INTERVAL_S = 3.0
#: A reporting interval whose hub lag p99 exceeds this is logged as a warning (once per process and run).
LAG_WARNING_MS = 10.0
#: Figures whose total is the worst process's; the others add up.
_WORST = ("hub_lag_p50", "hub_lag_p99", "hub_lag_max", "cpu", "open_files_share", "open_files_limit")
_UNIT_SUFFIX = {"ms": "_ms", "%": "_percent", "MiB": "_mib", "KiB/min": "_kib_per_min"}

log = logging.getLogger("locust_ext.health")


def totals(figures: list[dict[str, float | None]]) -> dict[str, float | None]:
    """One row for several processes: the worst of lag, CPU and file share, the sum of the rest."""
    names = {name for row in figures for name in row}
    total: dict[str, float | None] = {}
    for name in sorted(names):
        values = [value for row in figures if (value := row.get(name)) is not None]
        total[name] = (max(values) if name in _WORST else sum(values)) if values else None
    return total


def _gauge_name(figure: str) -> str:
    unit = FIGURES.get(figure, ("", ""))[0]
    return figure + _UNIT_SUFFIX.get(unit, "")


class HealthMonitor:
    """Listeners bound to one Environment; ``processes`` maps a process name to its latest report."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.is_master = is_master(environment)
        self.is_worker = is_worker(environment)
        self.processes: dict[str, dict[str, Any]] = {}
        self._warned: set[str] = set()
        self.sampler: HealthSampler | None = None
        self._local: gevent.Greenlet | None = None
        events = environment.events
        if not self.is_master:
            self.sampler = HealthSampler()
            self.sampler.start()
        if self.is_worker:
            events.report_to_master.add_listener(self.on_report_to_master)
        elif self.is_master:
            events.worker_report.add_listener(self.on_worker_report)
        else:
            self._local = gevent.spawn(self._local_loop)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)

    # Gathering

    def on_test_start(self, **_: Any) -> None:
        self._warned.clear()
        if self.sampler is not None:
            self.sampler.reset()
        if self.is_master:
            self.processes.clear()
            self.publish()

    def on_test_stop(self, **_: Any) -> None:
        """The run's figures stop growing; a local runner's last ones, before the gate grades them at quitting."""
        if self.sampler is not None:
            self.sampler.end_run()
        self.take_local()

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        assert self.sampler is not None
        data[REPORT_KEY] = self.sampler.report()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        report = data.get(REPORT_KEY)
        runner = master_runner(self.environment)
        if not isinstance(report, dict) or runner is None:
            return
        index = runner.worker_indexes.get(client_id)
        name = f"worker-{index}" if index is not None else gauge_segment(client_id)
        self.accept(name, client_id, report)

    def _local_loop(self) -> None:
        while True:
            gevent.sleep(LOCAL_INTERVAL_S)
            self.take_local()

    def take_local(self) -> None:
        """A local runner's own report, taken now."""
        if self.sampler is not None and not self.is_worker:
            self.accept("local", None, self.sampler.report())

    def accept(self, name: str, client_id: str | None, report: dict[str, Any]) -> None:
        """Keep one process's report, warn of a late hub once per run, publish."""
        self.processes[name] = {"client_id": client_id, **report}
        lag = (report.get("live") or {}).get("hub_lag_p99")
        if isinstance(lag, int | float) and lag > LAG_WARNING_MS and name not in self._warned:
            self._warned.add(name)
            log.warning(
                "Generator health: %s's gevent hub is late by %.1f ms at p99 (over %.0f ms): its response times "
                "include that delay; run more workers, fewer users per worker, or --processes",
                name,
                lag,
                LAG_WARNING_MS,
            )
        self.publish()

    def finish(self) -> None:
        """Stop sampling, with a last local report (at quitting)."""
        if self._local is not None:
            self._local.kill(block=False)
            self._local = None
            self.take_local()
        if self.sampler is not None:
            self.sampler.stop()

    # Results

    def total(self, view: str) -> dict[str, float | None]:
        """Totals over every process of ``view`` ("live": the latest interval, "run": the run so far)."""
        return totals([process.get(view) or {} for process in self.processes.values()])

    def publish(self) -> None:
        """Run figures for the thresholds gate, live figures as run gauges (totals and per process)."""
        publish_generator_figures(
            self.environment,
            {name: {**(p.get("run") or {}), "samples": p.get("samples")} for name, p in sorted(self.processes.items())},
        )
        gauges: dict[str, float] = {}
        rows = [("", self.total("live"))]
        rows += [(f"{gauge_segment(name)}.", process.get("live") or {}) for name, process in self.processes.items()]
        for prefix, figures in rows:
            for figure, value in figures.items():
                if value is not None and figure != "open_files_limit":
                    gauges[f"generator.{prefix}{_gauge_name(figure)}"] = value
        publish_gauges(self.environment, "generator", gauges)

    def document(self) -> dict[str, Any]:
        """The generator report: units, totals and every process, live and run figures."""
        return {
            "schema": "locust-ext/generator-report/v1",
            "figures": {name: {"unit": unit, "meaning": meaning} for name, (unit, meaning) in FIGURES.items()},
            "total": {"live": self.total("live"), "run": self.total("run")},
            "processes": dict(sorted(self.processes.items())),
        }
