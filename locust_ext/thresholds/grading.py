"""Pure grading math: observed values from a stats row, grades from limits, a verdict from a spec.

Nothing here touches Locust's runner or the clock; :mod:`locust_ext.thresholds.stats_view` turns Locust's
stats into :class:`Observation` objects, and everything else is a function of those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from locust.stats import calculate_response_time_percentile

from locust_ext.thresholds.loader import percentile_of_stat
from locust_ext.thresholds.model import (
    WORST_GRADE,
    GradeTable,
    LostWorker,
    Metric,
    MetricRule,
    Rule,
    ThresholdsSpec,
)

__all__ = [
    "AbortReason",
    "BaselineLookup",
    "MetricResult",
    "Observation",
    "Outcome",
    "Verdict",
    "evaluate",
    "evaluate_rule",
    "grade_of",
    "measure",
    "relative_limits",
    "report_order",
]

Outcome = str  # "pass" | "fail" | "warn"
#: (stats row, metric label such as "response_time p95") -> the value the baseline run observed, if any.
BaselineLookup = Callable[[str, str], "float | None"]


@dataclass(frozen=True)
class Observation:
    """The numbers of one Locust stats row (or of a time window of it) that grading needs."""

    name: str
    request_type: str
    num_requests: int
    num_failures: int
    #: Locust's response-time histogram {bucket in ms: count}, in whatever bucketing is in force.
    response_times: Mapping[Any, int]
    total_response_time: float
    min_response_time: float | None
    max_response_time: float | None
    start_time: float
    end_time: float | None
    #: {unix second: requests}; None for a window (the window itself already excludes the ramp-up).
    requests_per_second: Mapping[int, int] | None = None
    #: A generator health row (request type "generator", named after its process): its run figures.
    figures: Mapping[str, float | None] | None = None

    @property
    def entry(self) -> str:
        """How reports name the row: "grpc /pkg.Service/Method", or "Aggregated"."""
        return f"{self.request_type} {self.name}" if self.request_type else self.name


def measure(rule: MetricRule, row: Observation) -> float | None:
    """The value ``rule`` grades for ``row``; None when the row has nothing to measure it on."""
    if rule.metric is Metric.ERROR_RATE:
        return 100.0 * row.num_failures / row.num_requests if row.num_requests else None
    if rule.metric is Metric.THROUGHPUT:
        return _throughput(row, rule.exclude_first_s)
    if rule.metric is Metric.GENERATOR:
        return (row.figures or {}).get(rule.stat or "")
    return _response_time(row, rule.stat or "p95")


def _response_time(row: Observation, stat: str) -> float | None:
    timed = sum(row.response_times.values())
    if timed == 0:
        return None
    low = row.min_response_time if row.min_response_time is not None else min(row.response_times)
    high = row.max_response_time if row.max_response_time is not None else max(row.response_times)
    if stat == "avg":
        return row.total_response_time / timed
    if stat == "min":
        return float(low)
    if stat == "max":
        return float(high)
    percent = percentile_of_stat(stat)
    assert percent is not None, stat  # the loader accepts no other stat
    value = calculate_response_time_percentile(dict(row.response_times), timed, percent)
    # Buckets are rounded; like Locust's own median, never report beyond what was really seen.
    return float(min(max(value, low), high))


def _throughput(row: Observation, exclude_first_s: float) -> float | None:
    if row.end_time is None:
        return None
    start, count = row.start_time, row.num_requests
    if exclude_first_s > 0 and row.requests_per_second is not None:
        start = float(math.ceil(row.start_time + exclude_first_s))
        count = sum(n for second, n in row.requests_per_second.items() if second >= start)
    duration = row.end_time - start
    return count / duration if duration > 0 else None


def grade_of(value: float, table: GradeTable, grades: Sequence[str], *, higher_is_better: bool) -> str:
    """The best grade whose limit ``value`` meets (limits inclusive); the implicit worst grade otherwise."""
    for grade in grades:
        limit = table.limits.get(grade)
        if limit is not None and (value >= limit if higher_is_better else value <= limit):
            return grade
    return WORST_GRADE


def relative_limits(table: GradeTable, baseline: float, *, higher_is_better: bool) -> GradeTable:
    """Turn "at most N % worse than the baseline" per grade into absolute limits."""
    sign = -1.0 if higher_is_better else 1.0
    return GradeTable({grade: baseline * (1 + sign * pct / 100) for grade, pct in table.limits.items()})


@dataclass(frozen=True)
class MetricResult:
    """One rule x stats row x metric: what was observed, the limits, the grade and the outcome."""

    rule: str
    selector: str
    rule_type: str | None
    entry: str
    metric: MetricRule
    requests: int
    observed: float | None
    limits: dict[str, float]
    baseline: float | None
    baseline_limits: dict[str, float] | None
    grade: str | None
    outcome: Outcome
    note: str = ""

    @property
    def graded_failure(self) -> bool:
        """Failed on its grade (not for missing data); only these may abort a run."""
        return self.outcome == "fail" and self.grade is not None


def report_order(result: MetricResult) -> tuple[bool, bool]:
    """Sort key of every report: failures first, rules no request matched last (a file written for several
    protocols leaves many of those in a run of one); a stable sort keeps the file's order within each group."""
    return (result.outcome != "fail", result.entry == "")


@dataclass(frozen=True)
class AbortReason:
    """Why a live check stopped the run."""

    rule: str
    entry: str
    metric: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """Every result of one evaluation, and whether the gate passes.

    ``results`` is kept in report order (:func:`report_order`): every report format walks this one list, so
    each row's name, observed value, limits, grade and outcome come from the same result. ``lost_workers``
    are the workers a master lost during the run; they fail the gate when ``lost_workers_fail``."""

    spec: ThresholdsSpec
    results: tuple[MetricResult, ...]
    aborted: AbortReason | None = None
    final: bool = False
    lost_workers: tuple[LostWorker, ...] = ()
    lost_workers_fail: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(sorted(self.results, key=report_order)))

    @property
    def passed(self) -> bool:
        if self.aborted is not None or (self.lost_workers and self.lost_workers_fail):
            return False
        return all(result.outcome != "fail" for result in self.results)

    @property
    def counts(self) -> dict[str, int]:
        tally = {"pass": 0, "fail": 0, "warn": 0}
        for result in self.results:
            tally[result.outcome] += 1
        return tally


def evaluate_rule(
    spec: ThresholdsSpec, rule: Rule, rows: Sequence[Observation], baseline: BaselineLookup | None = None
) -> list[MetricResult]:
    """Grade each metric of ``rule`` on each matched row (a glob never lets a fast row hide a slow one)."""
    if not rows:
        outcome = "fail" if spec.strict else "warn"
        return [_ungraded(rule, "", m, 0, outcome, "no request matched this rule") for m in rule.metrics]
    results = []
    for row in rows:
        for metric_rule in rule.metrics:
            results.append(_grade_row(spec, rule, row, metric_rule, baseline))
    return results


def _grade_row(
    spec: ThresholdsSpec, rule: Rule, row: Observation, metric_rule: MetricRule, baseline: BaselineLookup | None
) -> MetricResult:
    """Grade one row on one metric. The observed value is recorded whether or not it can be graded (too few
    requests, no baseline for relative limits), so any report can serve as the next run's baseline."""
    insufficient = "fail" if rule.insufficient_data_fails else "warn"
    observed = measure(metric_rule, row)
    if row.num_requests < rule.min_requests:
        note = f"insufficient data: {row.num_requests} requests, min_requests is {rule.min_requests}"
        return _ungraded(rule, row.entry, metric_rule, row.num_requests, insufficient, note, observed)
    if observed is None:
        note = f"insufficient data: nothing to measure {metric_rule.label} on"
        return _ungraded(rule, row.entry, metric_rule, row.num_requests, insufficient, note)

    higher = metric_rule.metric.higher_is_better
    grades: list[str] = []
    if metric_rule.absolute is not None:
        grades.append(grade_of(observed, metric_rule.absolute, spec.grades, higher_is_better=higher))
    base = None
    derived = None
    note = ""
    if metric_rule.relative is not None:
        base = baseline(row.entry, metric_rule.label) if baseline is not None else None
        if baseline is None:
            note = "no baseline: relative limits need --thresholds-baseline"
        elif base is None:
            note = "no baseline value for this row and metric in the baseline report"
        else:
            derived = relative_limits(metric_rule.relative, base, higher_is_better=higher)
            grades.append(grade_of(observed, derived, spec.grades, higher_is_better=higher))
    if not grades:
        outcome = "fail" if spec.strict else "warn"
        return _ungraded(rule, row.entry, metric_rule, row.num_requests, outcome, note, observed)
    grade = max(grades, key=spec.all_grades.index)
    return MetricResult(
        rule=rule.label,
        selector=rule.selector.kind,
        rule_type=rule.selector.type_label,
        entry=row.entry,
        metric=metric_rule,
        requests=row.num_requests,
        observed=observed,
        limits=dict(metric_rule.absolute.limits) if metric_rule.absolute else {},
        baseline=base,
        baseline_limits=dict(derived.limits) if derived else None,
        grade=grade,
        outcome=("warn" if rule.warn_only else "fail") if spec.is_failing(grade) else "pass",
        note=note or ("on_fail: warn" if rule.warn_only and spec.is_failing(grade) else ""),
    )


def _ungraded(
    rule: Rule,
    entry: str,
    metric_rule: MetricRule,
    requests: int,
    outcome: str,
    note: str,
    observed: float | None = None,
) -> MetricResult:
    return MetricResult(
        rule=rule.label,
        selector=rule.selector.kind,
        rule_type=rule.selector.type_label,
        entry=entry,
        metric=metric_rule,
        requests=requests,
        observed=observed,
        limits=dict(metric_rule.absolute.limits) if metric_rule.absolute else {},
        baseline=None,
        baseline_limits=None,
        grade=None,
        outcome=outcome,
        note=note,
    )


def evaluate(
    spec: ThresholdsSpec,
    rows_for: Callable[[Rule], Sequence[Observation]],
    baseline: BaselineLookup | None = None,
    *,
    aborted: AbortReason | None = None,
    final: bool = False,
    lost_workers: Sequence[LostWorker] = (),
    lost_workers_fail: bool = True,
) -> Verdict:
    """Grade every rule of ``spec`` on the rows ``rows_for(rule)`` selects."""
    results = tuple(result for rule in spec.rules for result in evaluate_rule(spec, rule, rows_for(rule), baseline))
    return Verdict(spec, results, aborted, final, tuple(lost_workers), lost_workers_fail)
