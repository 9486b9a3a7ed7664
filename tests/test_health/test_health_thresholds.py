"""Generator rules in a thresholds file: validation with file, line and key; grading one row per process (a hot
worker is named), ``on_fail: warn``, missing figures, and the shipped file's hub lag warning. Pure: no Locust run."""

from __future__ import annotations

import pytest

from locust_ext.generator import FIGURES
from locust_ext.thresholds import Verdict, evaluate
from locust_ext.thresholds.loader import load_thresholds, parse_thresholds
from locust_ext.thresholds.model import Metric, ThresholdsFileError, ThresholdsSpec
from locust_ext.thresholds.reports import console_table, verdict_document
from locust_ext.thresholds.stats_view import generator_rows
from tests.support import REPO_ROOT

HEAD = "grades: [excellent, good, acceptable]\nrules:\n"

QUIET: dict[str, float | None] = {"hub_lag_p50": 0.1, "hub_lag_p99": 0.8, "hub_lag_max": 3.0, "cpu": 35.0,
         "memory_rss": 80.0, "memory_growth_per_min": None, "open_files": 40.0, "open_files_share": 0.2,
         "greenlets": 30.0, "samples": 600}  # fmt: skip
HOT = {**QUIET, "hub_lag_p99": 42.0, "hub_lag_max": 180.0, "cpu": 99.0}


def grade(text: str, processes: dict[str, dict[str, float | None]]) -> Verdict:
    spec = parse_thresholds(HEAD + text, "gen.yaml")
    return evaluate(spec, lambda rule: generator_rows(processes) if rule.is_generator else [])


def test_a_generator_rule_grades_every_process_and_names_the_hot_one() -> None:
    verdict = grade("  - generator: {hub_lag_p99: {good: 5, acceptable: 10}, cpu: {acceptable: 90}}\n",
                    {"worker-0": QUIET, "worker-1": HOT})  # fmt: skip
    assert not verdict.passed
    failing = [(r.entry, r.metric.label, r.observed) for r in verdict.results if r.outcome == "fail"]
    assert failing == [
        ("generator worker-1", "generator hub_lag_p99", 42.0),
        ("generator worker-1", "generator cpu", 99.0),
    ]
    passing = {(r.entry, r.metric.stat): r.grade for r in verdict.results if r.outcome == "pass"}
    assert passing == {("generator worker-0", "hub_lag_p99"): "good", ("generator worker-0", "cpu"): "acceptable"}
    result = verdict_document(verdict, None)["results"][0]
    assert (result["metric"], result["stat"], result["unit"], result["requests"]) == (
        "generator",
        "hub_lag_p99",
        "ms",
        600,
    )
    assert "generator worker-1" in console_table(verdict)


def test_on_fail_warn_shows_the_grade_but_passes() -> None:
    verdict = grade("  - generator: {hub_lag_p99: {acceptable: 10}}\n    on_fail: warn\n", {"local": HOT})
    assert verdict.passed
    (result,) = verdict.results
    assert (result.grade, result.outcome, result.note) == ("poor", "warn", "on_fail: warn")
    assert not result.graded_failure  # never aborts a run


def test_a_figure_not_measured_yet_is_insufficient_data() -> None:
    verdict = grade("  - generator: {memory_growth_per_min: {acceptable: 512}}\n", {"local": QUIET})
    (result,) = verdict.results
    assert (result.outcome, result.grade, result.observed) == ("warn", None, None)
    assert "insufficient data" in result.note
    strict = grade("  - generator: {memory_growth_per_min: {acceptable: 512}}\n    insufficient_data: fail\n",
                   {"local": QUIET})  # fmt: skip
    assert not strict.passed


def test_no_process_measured_warns_like_a_rule_no_request_matched() -> None:
    verdict = grade("  - generator: {hub_lag_p99: {acceptable: 10}}\n", {})
    assert verdict.passed and verdict.results[0].outcome == "warn"


def test_every_figure_can_be_graded_and_has_its_unit() -> None:
    table = "".join(f"      {figure}: {{acceptable: 50}}\n" for figure in FIGURES)
    spec = parse_thresholds(HEAD + "  - generator:\n" + table, "gen.yaml")
    (rule,) = spec.rules
    assert rule.is_generator and rule.line == 3
    assert [(m.metric, m.stat, m.unit) for m in rule.metrics] == [
        (Metric.GENERATOR, figure, unit) for figure, (unit, _) in FIGURES.items()
    ]


BAD = [
    ("unknown figure", "  - generator:\n      hub_lag_p95: {acceptable: 1}\n", 4, "rules[0].generator.hub_lag_p95",
     "unknown key 'hub_lag_p95'"),
    ("a selector beside it", "  - generator: {cpu: {acceptable: 90}}\n    name: /a\n", 4, "rules[0].name",
     "does not apply to a generator rule"),
    ("a stats metric beside it", "  - generator: {cpu: {acceptable: 90}}\n    error_rate: {acceptable: 1}\n", 4,
     "rules[0].error_rate", "does not apply to a generator rule"),
    ("no figure", "  - generator: {}\n", 3, "rules[0].generator", "needs at least one figure"),
    ("share above 100 %", "  - generator:\n      open_files_share: {acceptable: 150}\n", 4,
     "rules[0].generator.open_files_share.acceptable", "above 100"),
    ("limits out of order", "  - generator:\n      hub_lag_p99: {good: 20, acceptable: 10}\n", 4,
     "rules[0].generator.hub_lag_p99.acceptable", "good (20) must be stricter (lower) than acceptable (10)"),
    ("a window", "  - generator: {cpu: {acceptable: 90}}\n    abort_on_fail: {window: 10}\n", 4,
     "rules[0].abort_on_fail", "'window' does not apply"),
    ("bad on_fail", "  - generator: {cpu: {acceptable: 90}}\n    on_fail: ignore\n", 4, "rules[0].on_fail",
     "expected one of fail, warn"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text", "line", "key", "words"), BAD, ids=[case[0] for case in BAD])
def test_a_bad_generator_rule_names_file_line_and_key(kind: str, text: str, line: int, key: str, words: str) -> None:
    with pytest.raises(ThresholdsFileError) as caught:
        parse_thresholds(HEAD + text, "gen.yaml")
    error = caught.value
    assert (error.path, error.line, error.key_path) == ("gen.yaml", line, key), str(error)
    assert words in error.problem
    assert str(error).startswith(f"gen.yaml:{line}: {key}:")


def test_the_shipped_file_warns_when_hub_lag_p99_passes_10_ms() -> None:
    spec: ThresholdsSpec = load_thresholds(REPO_ROOT / "thresholds.yaml")
    (rule,) = [rule for rule in spec.rules if rule.is_generator]
    assert rule.warn_only
    verdict = evaluate(spec, lambda r: generator_rows({"worker-0": QUIET, "worker-1": HOT}) if r.is_generator else [])
    lag = {r.entry: r.outcome for r in verdict.results if r.metric.stat == "hub_lag_p99"}
    assert lag == {"generator worker-0": "pass", "generator worker-1": "warn"}
    at_limit = {**HOT, "hub_lag_p99": 10.0}
    verdict = evaluate(spec, lambda r: generator_rows({"local": at_limit}) if r.is_generator else [])
    assert {r.outcome for r in verdict.results if r.metric.stat == "hub_lag_p99"} == {"pass"}
