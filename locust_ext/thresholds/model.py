"""The threshold rule model: what a validated thresholds file means, independent of YAML and of Locust.

Every object here is built by :mod:`locust_ext.thresholds.loader` after validation, so the rest of the
package can trust it (grades exist, limits are ordered, patterns compile).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import Enum

from locust_ext.generator import FIGURES

__all__ = [
    "AGGREGATED",
    "WORST_GRADE",
    "AbortPolicy",
    "GradeTable",
    "LostWorker",
    "Metric",
    "MetricRule",
    "Rule",
    "Selector",
    "ThresholdsError",
    "ThresholdsFileError",
    "ThresholdsSpec",
]

#: The rule name that means "every request together" (Locust's own total row).
AGGREGATED = "Aggregated"
#: The implicit grade below the last listed one.
WORST_GRADE = "poor"


class ThresholdsError(Exception):
    """Base class of every error this package raises."""


class ThresholdsFileError(ThresholdsError):
    """A thresholds or baseline file that cannot be used; names the file, line and key path."""

    def __init__(self, path: str, line: int | None, key_path: str, problem: str) -> None:
        super().__init__(path, line, key_path, problem)
        self.path = path
        self.line = line
        self.key_path = key_path
        self.problem = problem

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} {self.problem}"


class Metric(str, Enum):
    """What a metric rule measures; the value says whether larger observations are better."""

    RESPONSE_TIME = "response_time"
    ERROR_RATE = "error_rate"
    THROUGHPUT = "throughput"
    #: A generator health figure of each load-generating process (the rule's ``stat`` names which).
    GENERATOR = "generator"

    @property
    def higher_is_better(self) -> bool:
        return self is Metric.THROUGHPUT

    @property
    def unit(self) -> str:
        return {"response_time": "ms", "error_rate": "%", "throughput": "req/s", "generator": ""}[self.value]


@dataclass(frozen=True)
class GradeTable:
    """Limits per grade name; a grade left out of the file is simply absent (never awarded by this table)."""

    limits: dict[str, float]


@dataclass(frozen=True)
class MetricRule:
    """One metric of one rule: absolute limits and/or limits relative to a baseline (percent worse)."""

    metric: Metric
    absolute: GradeTable | None
    relative: GradeTable | None = None
    #: Response time: avg, min, max, median, or a percentile such as p95 or p99.9; generator: the figure.
    stat: str | None = None
    #: Throughput only: seconds after the run start left out of the rate (ramp-up); 0 means the whole run.
    exclude_first_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.metric.value} {self.stat}" if self.stat else self.metric.value

    @property
    def unit(self) -> str:
        """The observed value's unit: the metric's, or the generator figure's."""
        if self.metric is Metric.GENERATOR and self.stat in FIGURES:
            return FIGURES[self.stat][0]
        return self.metric.unit


@dataclass(frozen=True)
class Selector:
    """Which Locust stats rows a rule grades: an exact name, a glob or a regex, optionally only some request
    types and never the names matching an ``exclude`` glob.

    Kind ``generator`` selects the load-generating processes' health rows instead of stats rows.
    ``name: Aggregated`` means Locust's total row; with a type filter or exclusions it means the sum of the
    rows they keep (:attr:`sums_rows`), e.g. every request but the derived sub-events."""

    kind: str  # "name" | "match" | "regex"
    pattern: str
    request_types: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def keeps(self, name: str, request_type: str) -> bool:
        """Whether the type filter and the exclusions let this row through (the name pattern aside)."""
        if self.request_types is not None and request_type not in self.request_types:
            return False
        return not any(fnmatch.fnmatchcase(name, glob) for glob in self.exclude)

    def matches(self, name: str, request_type: str) -> bool:
        if self.kind == "generator" or not self.keeps(name, request_type):
            return False
        if self.kind == "name":
            return name == self.pattern
        if self.kind == "match":
            return fnmatch.fnmatchcase(name, self.pattern)
        return re.search(self.pattern, name) is not None

    @property
    def is_aggregated(self) -> bool:
        return self.kind == "name" and self.pattern == AGGREGATED

    @property
    def sums_rows(self) -> bool:
        """An Aggregated rule graded on the sum of the rows its filters keep rather than on Locust's total."""
        return self.is_aggregated and (self.request_types is not None or bool(self.exclude))

    @property
    def type_label(self) -> str | None:
        """The type filter as reports show it: ``grpc`` or ``grpc,websocket``; None without one."""
        return ",".join(self.request_types) if self.request_types is not None else None


@dataclass(frozen=True)
class AbortPolicy:
    """Stop the run early when the rule fails a live check, after ``delay_s``; judged on the last
    ``window_s`` seconds when given, otherwise on the run so far."""

    delay_s: float = 0.0
    window_s: float | None = None


@dataclass(frozen=True)
class Rule:
    """A selector and the metrics it grades."""

    selector: Selector
    metrics: tuple[MetricRule, ...]
    line: int
    min_requests: int = 1
    insufficient_data_fails: bool = False
    abort: AbortPolicy | None = None
    #: ``on_fail: warn``: a failing grade only warns (shown, never fails the gate nor aborts).
    warn_only: bool = False

    @property
    def label(self) -> str:
        return self.selector.pattern

    @property
    def is_generator(self) -> bool:
        """Grades generator health (one row per load-generating process), not Locust's stats rows."""
        return self.selector.kind == "generator"


@dataclass(frozen=True)
class ThresholdsSpec:
    """A whole validated thresholds file."""

    path: str
    grades: tuple[str, ...]
    fail_at: str
    rules: tuple[Rule, ...]
    strict: bool = False
    live_interval_s: float = 2.0

    @property
    def all_grades(self) -> tuple[str, ...]:
        """Listed grades plus the implicit worst one, best first."""
        return (*self.grades, WORST_GRADE)

    def is_failing(self, grade: str) -> bool:
        return self.all_grades.index(grade) >= self.all_grades.index(self.fail_at)


@dataclass(frozen=True)
class LostWorker:
    """A worker the master lost during a run: its requests since its last report never reached the stats."""

    #: Locust's client id (``hostname_uuid``) and the master's 0-based index for it.
    id: str
    index: int | None
    #: "missing": stopped sending heartbeats (killed, hung, network); "quit": left while the run was going.
    how: str
    #: When the master noticed (ISO 8601, UTC), and how long after the run started.
    noticed_at: str
    after_s: float | None
    #: Users it was running when last seen.
    users: int

    @property
    def message(self) -> str:
        """One line naming the worker, what happened, when and how many users it ran."""
        what = "stopped sending heartbeats" if self.how == "missing" else "quit"
        name = f"worker {self.id}" + (f" (index {self.index})" if self.index is not None else "")
        when = f"{self.after_s:.1f} s into the run, " if self.after_s is not None else ""
        users = f"{self.users} user{'s' if self.users != 1 else ''}"
        return f"{name} {what} at {self.noticed_at} ({when}running {users}); its last requests are not in the stats"
