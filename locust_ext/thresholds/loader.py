"""Load and validate a thresholds YAML file into a :class:`ThresholdsSpec`.

The file is composed into YAML nodes rather than loaded into plain Python values, so that every
problem can be reported with the line of the offending key and its path (``rules[2].response_time.good``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from locust_ext.generator import FIGURES
from locust_ext.thresholds.model import (
    WORST_GRADE,
    AbortPolicy,
    GradeTable,
    Metric,
    MetricRule,
    Rule,
    Selector,
    ThresholdsFileError,
    ThresholdsSpec,
)

__all__ = ["DEFAULT_GRADES", "STATS", "load_thresholds", "parse_thresholds", "percentile_of_stat"]

#: The grades of a file that lists none, best first (worse than the last is "poor").
DEFAULT_GRADES = ("excellent", "good", "acceptable")

#: Response-time statistics a rule may name besides percentiles ("p95", "p99.9", ...).
STATS = ("avg", "min", "max", "median")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_TOP_KEYS = {"grades", "fail_at", "strict", "insufficient_data", "live_interval", "rules"}
_SELECTOR_KEYS = ("name", "match", "regex")
_RULE_KEYS = {
    *_SELECTOR_KEYS,
    "type",
    "exclude",
    "min_requests",
    "insufficient_data",
    "abort_on_fail",
    "on_fail",
    *(m.value for m in Metric),
}
#: A generator rule's keys: its figures under ``generator``, and what applies to any row.
_GENERATOR_RULE_KEYS = ("generator", "min_requests", "insufficient_data", "abort_on_fail", "on_fail")
_INSUFFICIENT = {"warn": False, "fail": True}
_ON_FAIL = {"fail": False, "warn": True}


def percentile_of_stat(stat: str) -> float | None:
    """0.95 for "p95", 0.5 for "median"/"p50"; None for avg, min and max."""
    if stat == "median":
        return 0.5
    found = _PERCENTILE.match(stat)
    return float(found.group(1)) / 100 if found else None


class _Node:
    """A YAML node with its key path, turning every type mismatch into a ThresholdsFileError."""

    def __init__(self, path: str, node: yaml.Node, key_path: str) -> None:
        self.file = path
        self.node = node
        self.key_path = key_path

    def error(self, problem: str) -> ThresholdsFileError:
        return ThresholdsFileError(self.file, self.node.start_mark.line + 1, self.key_path, problem)

    def child(self, node: yaml.Node, key: str | int) -> _Node:
        if isinstance(key, int):
            return _Node(self.file, node, f"{self.key_path}[{key}]")
        return _Node(self.file, node, f"{self.key_path}.{key}" if self.key_path else key)

    def mapping(self, allowed: set[str] | None = None) -> dict[str, _Node]:
        """The mapping's entries by key; unknown or duplicate keys are errors."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping, got {self._kind()}")
        entries: dict[str, _Node] = {}
        for key_node, value_node in self.node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            key_ref = _Node(self.file, key_node, self.child(key_node, str(key)).key_path)
            if not isinstance(key, str):
                raise key_ref.error("keys must be plain strings")
            if key in entries:
                raise key_ref.error("duplicate key")
            if allowed is not None and key not in allowed:
                raise key_ref.error(f"unknown key {key!r} (expected one of {', '.join(sorted(allowed))})")
            entries[key] = self.child(value_node, key)
        return entries

    def sequence(self) -> Iterator[_Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"expected a list, got {self._kind()}")
        for index, item in enumerate(self.node.value):
            yield self.child(item, index)

    def scalar(self) -> object:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error(f"expected a single value, got {self._kind()}")
        return SafeConstructor().construct_object(self.node)

    def string(self) -> str:
        value = self.scalar()
        if not isinstance(value, str) or not value:
            raise self.error(f"expected a non-empty string, got {value!r}")
        return value

    def strings(self) -> tuple[str, ...]:
        """One non-empty string, or a non-empty list of distinct ones."""
        if not isinstance(self.node, yaml.SequenceNode):
            return (self.string(),)
        items: list[str] = []
        for item in self.sequence():
            value = item.string()
            if value in items:
                raise item.error(f"{value!r} is listed twice")
            items.append(value)
        if not items:
            raise self.error("expected one value or a non-empty list")
        return tuple(items)

    def number(self, *, low: float = 0.0, high: float | None = None) -> float:
        value = self.scalar()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"expected a number, got {value!r}")
        if value < low:
            raise self.error(f"{value} is negative" if low == 0 else f"{value} is below {low}")
        if high is not None and value > high:
            raise self.error(f"{value} is above {high}")
        return float(value)

    def integer(self) -> int:
        value = self.scalar()
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {value!r}")
        if value < 0:
            raise self.error(f"{value} is negative")
        return value

    def boolean(self) -> bool:
        value = self.scalar()
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {value!r}")
        return value

    def choice(self, options: dict[str, bool]) -> bool:
        value = self.string()
        if value not in options:
            raise self.error(f"expected one of {', '.join(options)}, got {value!r}")
        return options[value]

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return f"{self.node.value!r}"


def load_thresholds(path: str | Path) -> ThresholdsSpec:
    """Read and validate a thresholds file; raise ThresholdsFileError naming file, line and key path."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsFileError(name, None, "", f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ThresholdsFileError(name, None, "", f"not UTF-8 text: {exc.reason}") from exc
    return parse_thresholds(text, name)


def parse_thresholds(text: str, path: str = "<thresholds>") -> ThresholdsSpec:
    """Validate thresholds YAML given as text; ``path`` only names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ThresholdsFileError(path, line, "", f"invalid YAML: {exc.problem or exc.context}") from exc
    if root is None:
        raise ThresholdsFileError(path, None, "", "the file is empty; it needs at least 'rules'")
    top = _Node(path, root, "")
    entries = top.mapping(_TOP_KEYS)
    if "rules" not in entries:
        raise top.error("missing required key 'rules'")

    grades = _grades(entries["grades"]) if "grades" in entries else DEFAULT_GRADES
    all_grades = (*grades, WORST_GRADE)
    fail_at = WORST_GRADE
    if "fail_at" in entries:
        fail_at = entries["fail_at"].string()
        if fail_at not in all_grades or fail_at == grades[0]:
            raise entries["fail_at"].error(
                f"fail_at {fail_at!r} must be one of {', '.join(all_grades[1:])} (a grade below the best)"
            )
    insufficient_fails = entries["insufficient_data"].choice(_INSUFFICIENT) if "insufficient_data" in entries else False
    rules = tuple(_rule(node, grades, insufficient_fails) for node in entries["rules"].sequence())
    if not rules:
        raise entries["rules"].error("needs at least one rule")
    return ThresholdsSpec(
        path=path,
        grades=grades,
        fail_at=fail_at,
        rules=rules,
        strict=entries["strict"].boolean() if "strict" in entries else False,
        live_interval_s=entries["live_interval"].number(low=0.1) if "live_interval" in entries else 2.0,
    )


def _grades(node: _Node) -> tuple[str, ...]:
    grades: list[str] = []
    for item in node.sequence():
        grade = item.string()
        if grade == WORST_GRADE:
            raise item.error(f"{WORST_GRADE!r} is implicit (worse than the last grade); do not list it")
        if grade in grades:
            raise item.error(f"grade {grade!r} is listed twice")
        if grade in {"stat", "exclude_first", "baseline"}:
            raise item.error(f"{grade!r} is a reserved key and cannot be a grade name")
        grades.append(grade)
    if not grades:
        raise node.error("needs at least one grade")
    return tuple(grades)


def _rule(node: _Node, grades: tuple[str, ...], insufficient_fails: bool) -> Rule:
    entries = node.mapping(_RULE_KEYS)
    if "insufficient_data" in entries:
        insufficient_fails = entries["insufficient_data"].choice(_INSUFFICIENT)
    if "generator" in entries:
        return _generator_rule(node, entries, grades, insufficient_fails)
    given = [key for key in _SELECTOR_KEYS if key in entries]
    if len(given) != 1:
        raise node.error("a rule needs exactly one of 'name', 'match' or 'regex'")
    kind = given[0]
    pattern = entries[kind].string()
    if kind == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise entries[kind].error(f"bad regular expression: {exc}") from exc
    request_types = entries["type"].strings() if "type" in entries else None
    exclude = entries["exclude"].strings() if "exclude" in entries else ()
    metrics = tuple(_metric(entries[m.value], m, grades) for m in Metric if m.value in entries)
    if not metrics:
        raise node.error("a rule needs at least one of response_time, error_rate, throughput")
    return Rule(
        selector=Selector(kind, pattern, request_types, exclude),
        metrics=metrics,
        line=node.node.start_mark.line + 1,
        min_requests=entries["min_requests"].integer() if "min_requests" in entries else 1,
        insufficient_data_fails=insufficient_fails,
        abort=_abort(entries["abort_on_fail"]) if "abort_on_fail" in entries else None,
        warn_only=entries["on_fail"].choice(_ON_FAIL) if "on_fail" in entries else False,
    )


def _generator_rule(node: _Node, entries: dict[str, _Node], grades: tuple[str, ...], insufficient_fails: bool) -> Rule:
    """``generator: {hub_lag_p99: {acceptable: 10}, ...}``: health figures graded on every load-generating
    process (``min_requests`` counts its hub lag samples, 20 a second)."""
    for key, value in entries.items():
        if key not in _GENERATOR_RULE_KEYS:
            takes = ", ".join(_GENERATOR_RULE_KEYS)
            raise value.error(f"{key!r} does not apply to a generator rule (it takes {takes})")
    figures = entries["generator"].mapping(set(FIGURES))
    if not figures:
        raise entries["generator"].error(f"needs at least one figure ({', '.join(FIGURES)})")
    abort = _abort(entries["abort_on_fail"]) if "abort_on_fail" in entries else None
    if abort is not None and abort.window_s is not None:
        raise entries["abort_on_fail"].error("a generator rule grades the run so far: 'window' does not apply")
    return Rule(
        selector=Selector("generator", "generator"),
        metrics=tuple(_metric(figure_node, Metric.GENERATOR, grades, name) for name, figure_node in figures.items()),
        line=node.node.start_mark.line + 1,
        min_requests=entries["min_requests"].integer() if "min_requests" in entries else 1,
        insufficient_data_fails=insufficient_fails,
        abort=abort,
        warn_only=entries["on_fail"].choice(_ON_FAIL) if "on_fail" in entries else False,
    )


def _abort(node: _Node) -> AbortPolicy | None:
    if isinstance(node.node, yaml.ScalarNode):
        return AbortPolicy() if node.boolean() else None
    entries = node.mapping({"delay", "window"})
    return AbortPolicy(
        delay_s=entries["delay"].number() if "delay" in entries else 0.0,
        window_s=entries["window"].number(low=1.0) if "window" in entries else None,
    )


def _metric(node: _Node, metric: Metric, grades: tuple[str, ...], figure: str | None = None) -> MetricRule:
    allowed = set(grades) | {"baseline"}
    if metric is Metric.RESPONSE_TIME:
        allowed.add("stat")
    if metric is Metric.THROUGHPUT:
        allowed.add("exclude_first")
    entries = node.mapping(allowed)
    stat = None
    if metric is Metric.RESPONSE_TIME:
        stat = entries["stat"].string() if "stat" in entries else "p95"
        if stat not in STATS and percentile_of_stat(stat) is None:
            raise entries["stat"].error(
                f"unknown stat {stat!r} (expected avg, min, max, median or a percentile such as p50, p95, p99.9)"
            )
    if metric is Metric.GENERATOR:
        stat = figure
    high = 100.0 if metric is Metric.ERROR_RATE or figure == "open_files_share" else None
    absolute = _table(node, entries, grades, higher_is_better=metric.higher_is_better, high=high)
    relative = None
    if "baseline" in entries:
        relative = _table(entries["baseline"], entries["baseline"].mapping(set(grades)), grades, higher_is_better=False)
        if relative is None:
            raise entries["baseline"].error("needs at least one grade limit (percent worse than the baseline)")
    if absolute is None and relative is None:
        raise node.error(f"needs at least one grade limit ({', '.join(grades)}) or 'baseline'")
    return MetricRule(
        metric=metric,
        absolute=absolute,
        relative=relative,
        stat=stat,
        exclude_first_s=entries["exclude_first"].number() if "exclude_first" in entries else 0.0,
    )


def _table(
    node: _Node,
    entries: dict[str, _Node],
    grades: tuple[str, ...],
    *,
    higher_is_better: bool,
    high: float | None = None,
) -> GradeTable | None:
    """Grade limits in list order, each strictly stricter than the next given one."""
    limits: dict[str, float] = {}
    previous: tuple[str, float] | None = None
    for grade in grades:
        if grade not in entries:
            continue
        value = entries[grade].number(high=high)
        if previous is not None:
            better_grade, better_value = previous
            stricter = better_value > value if higher_is_better else better_value < value
            if not stricter:
                relation = "higher" if higher_is_better else "lower"
                raise entries[grade].error(
                    f"{better_grade} ({better_value:g}) must be stricter ({relation}) than {grade} ({value:g})"
                )
        limits[grade] = value
        previous = (grade, value)
    return GradeTable(limits) if limits else None
