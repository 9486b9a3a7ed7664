"""Locust wiring of the thresholds gate: flags, validation before load, live grading, abort, web UI tab, exit code.

Only a master or a stand-alone process grades (its ``environment.stats`` already holds every worker's
requests); on a worker this module does nothing. Validation runs in Locust's ``init`` event, before any
user is spawned; a bad file, or a report path that cannot be written, ends the process with exit code 2 and
one line naming the file (and line and key) or the path.
The final verdict is made at ``quitting`` and sets ``environment.process_exit_code`` (0 pass, 3 fail),
which takes precedence over Locust's own "1 when a request failed". With ``--html``, Locust's own report is
written again with the verdict's section in it (Locust writes it before ``quitting``); the web UI's
downloadable report gets the live verdict the same way.

Every grading is published as run gauges (:mod:`locust_ext.thresholds.gauges`, which the StatsD mirror
sends) and fired as :func:`graded_event`, for any other code that follows the grades.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.event import EventHook
from locust.html import get_html_report, process_html_filename

from locust_ext.cli import EXIT_INVALID, exit_invalid
from locust_ext.generator import generator_figures
from locust_ext.roles import is_master, is_worker, master_runner
from locust_ext.thresholds.baseline import load_baseline
from locust_ext.thresholds.gauges import publish_grades
from locust_ext.thresholds.grading import (
    AbortReason,
    BaselineLookup,
    MetricResult,
    Observation,
    Verdict,
    evaluate,
    evaluate_rule,
)
from locust_ext.thresholds.loader import load_thresholds
from locust_ext.thresholds.model import Rule, ThresholdsError, ThresholdsSpec
from locust_ext.thresholds.report_targets import (
    REPORT_FORMATS,
    ReportPathError,
    ReportTarget,
    report_path_problem,
    report_target,
)
from locust_ext.thresholds.reports import (
    RunInfo,
    console_table,
    embed_verdict,
    lost_worker_lines,
    table_rows,
    verdict_document,
    write_reports,
)
from locust_ext.thresholds.stats_view import StatsHistory, generator_rows, rows_for_rule
from locust_ext.thresholds.workers import WorkerWatch

__all__ = ["EXIT_FAIL", "EXIT_PASS", "ThresholdGate", "add_arguments", "graded_event", "on_init"]

EXIT_PASS = 0
EXIT_FAIL = 3
TAB_KEY = "thresholds"
#: How often window snapshots are taken (the live grading interval comes from the file).
_SNAPSHOT_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


def add_arguments(parser: Any) -> None:
    """The gate's flags; each can also come from its environment variable or a Locust config file."""
    group = parser.add_argument_group("Thresholds gate", "grade the run against a YAML table and set the exit code")
    group.add_argument(
        "--thresholds",
        metavar="YAML",
        env_var="LOCUST_THRESHOLDS",
        help="thresholds file; when given, the gate decides the exit code (0 pass, 3 fail, 2 invalid file)",
    )
    group.add_argument(
        "--thresholds-report",
        metavar="PATH",
        action="append",
        default=[],
        env_var="LOCUST_THRESHOLDS_REPORT",
        help=f"write the verdict here; the extension picks the format ({', '.join(REPORT_FORMATS)}), or a prefix "
        "does (json:, junit:, md:, html:, e.g. md:$GITHUB_STEP_SUMMARY); repeatable",
    )
    group.add_argument(
        "--thresholds-lost-workers",
        choices=("fail", "warn"),
        default="fail",
        env_var="LOCUST_THRESHOLDS_LOST_WORKERS",
        help="a worker the master lost mid-run (no heartbeat, or quit) fails the gate (default) or only warns",
    )
    group.add_argument(
        "--thresholds-baseline",
        metavar="JSON",
        env_var="LOCUST_THRESHOLDS_BASELINE",
        help="a JSON report of an earlier run, for rules with 'baseline' (relative) limits",
    )


def graded_event(environment: Environment) -> EventHook:
    """The event fired after every grading of ``environment``'s run: ``listener(verdict=..., environment=...)``.

    Live gradings have ``verdict.final`` False; the one made at quitting has it True. Safe to call
    before or after the gate exists, from any feature's ``on_init``.
    """
    hook = getattr(environment.events, "thresholds_graded", None)
    if hook is None:
        hook = EventHook()
        environment.events.thresholds_graded = hook  # type: ignore[attr-defined]
    return hook


def on_init(environment: Environment, **_kwargs: Any) -> None:
    """Validate the gate's inputs and bind a :class:`ThresholdGate` to ``environment`` (not on workers)."""
    options = environment.parsed_options
    if options is None or is_worker(environment):
        return
    reports: list[str] = list(getattr(options, "thresholds_report", None) or [])
    baseline_path: str | None = getattr(options, "thresholds_baseline", None)
    if not getattr(options, "thresholds", None):
        if reports or baseline_path:
            exit_invalid("--thresholds-report and --thresholds-baseline need --thresholds")
        return
    targets: list[ReportTarget] = []
    for value in reports:
        try:
            target = report_target(value)
        except ReportPathError as exc:
            exit_invalid(f"--thresholds-report {value}: {exc}")
        problem = report_path_problem(target.path)
        if problem is not None:
            exit_invalid(f"--thresholds-report {value}: cannot write: {problem}")
        targets.append(target)
    try:
        spec = load_thresholds(options.thresholds)
        baseline = load_baseline(baseline_path) if baseline_path else None
    except ThresholdsError as exc:
        exit_invalid(str(exc))
        return
    ThresholdGate(
        environment,
        spec,
        reports=targets,
        baseline=baseline,
        baseline_path=baseline_path,
        lost_workers_fail=getattr(options, "thresholds_lost_workers", "fail") != "warn",
    )


class ThresholdGate:
    """Grades one Environment's run: live every few seconds, finally at quitting.

    ``latest`` holds the most recent :class:`Verdict` (None before the first grading).
    """

    def __init__(
        self,
        environment: Environment,
        spec: ThresholdsSpec,
        *,
        reports: Sequence[ReportTarget] = (),
        baseline: BaselineLookup | None = None,
        baseline_path: str | None = None,
        lost_workers_fail: bool = True,
    ) -> None:
        self.environment = environment
        self.spec = spec
        self.reports = list(reports)
        self.baseline = baseline
        self.baseline_path = baseline_path
        self.lost_workers_fail = lost_workers_fail
        master = master_runner(environment)
        #: Workers lost mid-run (a master only).
        self.workers = WorkerWatch(environment, master) if master is not None else None
        self.latest: Verdict | None = None
        self.aborted: AbortReason | None = None
        self._started_at: datetime | None = None
        self._started_monotonic: float | None = None
        self._live: gevent.Greenlet | None = None
        #: Most workers seen at once (at quitting, a master has already let its workers go).
        self.peak_workers = 0
        windows = [rule.abort.window_s for rule in spec.rules if rule.abort and rule.abort.window_s]
        self.history = StatsHistory(environment.stats, max(windows) + 1) if windows else None
        events = environment.events
        events.test_start.add_listener(self._on_test_start)
        events.test_stop.add_listener(self._on_test_stop)
        events.quitting.add_listener(self._on_quitting)
        if environment.web_ui is not None:
            self._add_web_ui_tab()

    # Grading

    def grade(self, *, final: bool = False) -> Verdict:
        """Grade the run so far on Locust's current stats, remember it and tell listeners."""
        master = master_runner(self.environment)
        if master is not None:
            self.peak_workers = max(self.peak_workers, master.worker_count)
        verdict = evaluate(
            self.spec,
            self.rows_for,
            self.baseline,
            aborted=self.aborted,
            final=final,
            lost_workers=self.workers.lost if self.workers is not None else (),
            lost_workers_fail=self.lost_workers_fail,
        )
        self.latest = verdict
        publish_grades(self.environment, verdict)
        graded_event(self.environment).fire(verdict=verdict, environment=self.environment)
        return verdict

    def rows_for(self, rule: Rule) -> list[Observation]:
        """The rows ``rule`` grades over the run so far: Locust's stats, or the generator health rows."""
        if rule.is_generator:
            return generator_rows(generator_figures(self.environment))
        return rows_for_rule(self.environment.stats, rule)

    def _abort_check(self, rule: Rule) -> MetricResult | None:
        """The first graded failure of an abort_on_fail rule, on its window or on the run so far."""
        assert rule.abort is not None
        if rule.abort.window_s and self.history is not None:
            rows = self.history.rows_for_rule(rule, rule.abort.window_s)
        else:
            rows = self.rows_for(rule)
        for result in evaluate_rule(self.spec, rule, rows, self.baseline):
            if result.graded_failure:
                return result
        return None

    def _check_aborts(self, elapsed_s: float) -> None:
        for rule in self.spec.rules:
            if rule.abort is None or elapsed_s < rule.abort.delay_s or self.aborted:
                continue
            failure = self._abort_check(rule)
            if failure is not None:
                self._abort(rule, failure)

    def _abort(self, rule: Rule, failure: MetricResult) -> None:
        assert rule.abort is not None
        span = f"over the last {rule.abort.window_s:g} s" if rule.abort.window_s else "over the run so far"
        unit = failure.metric.unit
        message = (
            f"{failure.rule} [{failure.entry}] {failure.metric.label} = {failure.observed:.3f} {unit} {span} "
            f"is {failure.grade} (fails at {self.spec.fail_at}); abort_on_fail stops the run"
        )
        self.aborted = AbortReason(failure.rule, failure.entry, failure.metric.label, message)
        log.error("Thresholds: %s", message)
        self.grade()
        runner = self.environment.runner
        assert runner is not None
        options = self.environment.parsed_options
        if options is not None and options.headless:
            runner.quit()
        else:
            runner.stop()

    # Locust events

    def _on_test_start(self, **_kwargs: Any) -> None:
        self.aborted = None
        self.grade()
        self._started_at = datetime.now(UTC)
        self._started_monotonic = time.monotonic()
        if self._live is None:
            self._live = gevent.spawn(self._live_loop)

    def _stop_live(self) -> bool:
        """Stop live grading; whether it was running."""
        if self._live is None:
            return False
        self._live.kill(block=False)
        self._live = None
        return True

    def _on_test_stop(self, **_kwargs: Any) -> None:
        """Stop live grading and grade the whole run once more, so a stopped run's tab shows all of it."""
        if self._stop_live():
            self.grade()

    def _live_loop(self) -> None:
        """Snapshot for windows every second; grade and check aborts every ``live_interval``."""
        next_grade = time.monotonic() + self.spec.live_interval_s
        while True:
            gevent.sleep(_SNAPSHOT_INTERVAL_S if self.history else self.spec.live_interval_s)
            if self.history is not None:
                self.history.record()
            now = time.monotonic()
            if now < next_grade:
                continue
            next_grade = now + self.spec.live_interval_s
            self.grade()
            if self._started_monotonic is not None:
                self._check_aborts(now - self._started_monotonic)

    def _on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        self._stop_live()
        verdict = self.grade(final=True)
        print(f"\n{console_table(verdict)}\n", flush=True)
        code = EXIT_PASS if verdict.passed else EXIT_FAIL
        run = self.run_info()
        try:
            write_reports(verdict, run, self.reports)
            self._rewrite_locust_html(verdict, run)
        except OSError as exc:
            log.error("Thresholds: cannot write report %s: %s", exc.filename, exc.strerror or exc)
            code = EXIT_INVALID
        environment.process_exit_code = code

    def _rewrite_locust_html(self, verdict: Verdict, run: RunInfo) -> None:
        """With ``--html``, write Locust's HTML report again with the verdict's section in it: Locust writes the
        file before ``quitting`` (or not at all when stopped by a signal), when no verdict exists yet."""
        options = self.environment.parsed_options
        if options is None or not getattr(options, "html_file", None) or self.environment.runner is None:
            return
        process_html_filename(options)  # {u}, {r}, {t} in the name, as Locust fills them in
        page = get_html_report(self.environment, show_download_link=False)
        path = Path(options.html_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(embed_verdict(page, verdict, run), encoding="utf-8")

    def run_info(self) -> RunInfo:
        finished = datetime.now(UTC)
        started = self._started_at
        options = self.environment.parsed_options
        return RunInfo(
            locustfile=getattr(options, "locustfile", None),
            host=self.environment.host,
            mode="master" if is_master(self.environment) else "local",
            workers=self.peak_workers,
            started_at=started.isoformat() if started else None,
            finished_at=finished.isoformat(),
            duration_s=(finished - started).total_seconds() if started else None,
            thresholds_file=self.spec.path,
            baseline_file=self.baseline_path,
            generator=generator_figures(self.environment) or None,
        )

    # Web UI

    def _add_web_ui_tab(self) -> None:
        """A "Thresholds" tab through Locust's extended tabs, fed by /stats/requests; /thresholds serves JSON."""
        from flask import Response, request

        web_ui = self.environment.web_ui
        assert web_ui is not None and web_ui.app is not None
        app = web_ui.app
        columns = ["rule", "row", "metric", "observed", *(f"limit{i}" for i in range(len(self.spec.grades)))]
        titles = ["Rule", "Row", "Metric", "Observed", *(grade.capitalize() for grade in self.spec.grades)]
        columns += ["grade", "outcome"]
        titles += ["Grade", "Outcome"]
        args = web_ui.template_args
        args.setdefault("extended_tabs", []).append({"title": "Thresholds", "key": TAB_KEY})
        structure = [{"key": key, "title": title} for key, title in zip(columns, titles, strict=True)]
        args.setdefault("extended_tables", []).append({"key": TAB_KEY, "structure": structure})

        def current() -> Verdict:
            return self.latest or self.grade()

        def tab_rows() -> list[dict[str, str]]:
            verdict = current()
            _, rows = table_rows(verdict)
            lost = [{**dict.fromkeys(columns, ""), "rule": "lost worker", "row": worker.id, "metric": "users",
                     "observed": str(worker.users), "grade": "-", "outcome": line}
                    for worker, line in zip(verdict.lost_workers, lost_worker_lines(verdict), strict=True)]  # fmt: skip
            return lost + [dict(zip(columns, row, strict=True)) for row in rows]

        @app.after_request
        def add_thresholds_to_stats(response: Response) -> Response:
            if request.path.endswith("/stats/report") and response.mimetype == "text/html":
                page = response.get_data(as_text=True)
                response.set_data(embed_verdict(page, current(), self.run_info()))
                return response
            if not request.path.endswith("/stats/requests") or not response.is_json:
                return response
            document = response.get_json()
            extended = document.get("extended_stats") or []
            extended.append({"key": TAB_KEY, "data": tab_rows()})
            document["extended_stats"] = extended
            response.set_data(json.dumps(document))
            return response

        @app.route("/thresholds")
        def thresholds_json() -> Response:
            return Response(json.dumps(verdict_document(current(), self.run_info())), mimetype="application/json")
