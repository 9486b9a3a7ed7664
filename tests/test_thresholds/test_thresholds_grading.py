"""Grading math on crafted stats: limits are inclusive, omitted grades, zero requests, all failures, baselines,
percentiles straight from the histogram (sub-millisecond buckets kept), windows and ramp-up exclusion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from locust.stats import RequestStats

from locust_ext.derived import register_derived
from locust_ext.thresholds.grading import Observation, Verdict, evaluate, evaluate_rule
from locust_ext.thresholds.loader import parse_thresholds
from locust_ext.thresholds.model import ThresholdsSpec
from locust_ext.thresholds.reports import table_rows
from locust_ext.thresholds.stats_view import StatsHistory, rows_for_rule


def spec(rules: str, head: str = "") -> ThresholdsSpec:
    return parse_thresholds(f"grades: [excellent, good, acceptable]\n{head}rules:\n{rules}", "crafted.yaml")


def row(
    histogram: Mapping[Any, int] | None = None,
    *,
    requests: int | None = None,
    failures: int = 0,
    start: float = 1000.0,
    end: float | None = 1010.0,
    per_second: Mapping[int, int] | None = None,
    name: str = "/svc/Method",
) -> Observation:
    histogram = dict(histogram or {})
    timed = sum(histogram.values())
    return Observation(
        name=name,
        request_type="grpc",
        num_requests=timed if requests is None else requests,
        num_failures=failures,
        response_times=histogram,
        total_response_time=sum(key * count for key, count in histogram.items()),
        min_response_time=min(histogram) if histogram else None,
        max_response_time=max(histogram) if histogram else None,
        start_time=start,
        end_time=end,
        requests_per_second=per_second,
    )


def grade(the_spec: ThresholdsSpec, *rows: Observation, baseline: Any = None) -> list[tuple[str | None, str]]:
    rule = the_spec.rules[0]
    return [(r.grade, r.outcome) for r in evaluate_rule(the_spec, rule, list(rows), baseline)]


P95_TABLE = spec("  - name: /svc/Method\n    response_time: {stat: p95, excellent: 5, good: 10, acceptable: 20}\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, "excellent"), (6, "good"), (10, "good"), (20, "acceptable"), (21, "poor")],
)
def test_a_value_exactly_at_a_limit_earns_that_grade(value: int, expected: str) -> None:
    outcome = "fail" if expected == "poor" else "pass"
    assert grade(P95_TABLE, row({value: 100})) == [(expected, outcome)]


def test_throughput_limits_are_minimums_and_inclusive() -> None:
    table = spec("  - name: /svc/Method\n    throughput: {excellent: 100, good: 50, acceptable: 10}\n")
    # 1000 requests over 10 s is exactly 100 req/s; 999 is just below.
    assert grade(table, row(requests=1000)) == [("excellent", "pass")]
    assert grade(table, row(requests=999)) == [("good", "pass")]
    assert grade(table, row(requests=99)) == [("poor", "fail")]


def test_an_omitted_grade_is_never_awarded() -> None:
    only_acceptable = spec("  - name: /svc/Method\n    error_rate: {acceptable: 1.0}\n")
    assert grade(only_acceptable, row({1: 1000})) == [("acceptable", "pass")]
    assert grade(only_acceptable, row({1: 1000}, failures=11)) == [("poor", "fail")]
    no_good = spec("  - name: /svc/Method\n    response_time: {stat: max, excellent: 5, acceptable: 20}\n")
    assert grade(no_good, row({4: 1})) == [("excellent", "pass")]
    assert grade(no_good, row({8: 1})) == [("acceptable", "pass")]


def test_all_failures_is_a_hundred_percent_error_rate() -> None:
    table = spec("  - name: /svc/Method\n    error_rate: {excellent: 0, acceptable: 100}\n")
    results = evaluate_rule(table, table.rules[0], [row({3: 40}, failures=40)])
    assert results[0].observed == 100.0
    assert (results[0].grade, results[0].outcome) == ("acceptable", "pass")


def test_zero_requests_is_insufficient_data_which_warns_or_fails_as_configured() -> None:
    rules = "  - name: /svc/Method\n    error_rate: {acceptable: 1}\n"
    assert grade(spec(rules), row(requests=0)) == [(None, "warn")]
    assert grade(spec(rules, "insufficient_data: fail\n"), row(requests=0)) == [(None, "fail")]
    at_minimum = spec("  - name: /svc/Method\n    min_requests: 50\n    error_rate: {acceptable: 1}\n")
    assert grade(at_minimum, row({1: 49})) == [(None, "warn")]
    assert grade(at_minimum, row({1: 50})) == [("acceptable", "pass")]


def test_a_rule_that_matches_nothing_warns_unless_strict() -> None:
    rules = "  - name: /nowhere\n    error_rate: {acceptable: 1}\n"
    assert grade(spec(rules)) == [(None, "warn")]
    strict = spec(rules, "strict: true\n")
    assert grade(strict) == [(None, "fail")]
    assert not evaluate(strict, lambda rule: []).passed


def test_fail_at_moves_the_gate() -> None:
    table = spec(
        "  - name: /svc/Method\n    response_time: {stat: max, good: 10, acceptable: 20}\n", "fail_at: acceptable\n"
    )
    assert grade(table, row({10: 1})) == [("good", "pass")]
    assert grade(table, row({15: 1})) == [("acceptable", "fail")]


def test_percentiles_come_from_the_histogram_and_keep_sub_millisecond_buckets() -> None:
    table = spec("  - name: /svc/Method\n    response_time: {stat: p95, excellent: 0.5, good: 0.6}\n")
    # Sorted: 90 x 0.25 ms, then requests 91-96 at 0.5 ms: the 95th is 0.5 ms.
    results = evaluate_rule(table, table.rules[0], [row({0.25: 90, 0.5: 6, 0.75: 4})])
    assert results[0].observed == 0.5
    assert results[0].grade == "excellent"


def test_avg_min_max_median() -> None:
    stats = ("avg", "min", "max", "median", "p50")
    observed = []
    for stat in stats:
        table = spec(f"  - name: /svc/Method\n    response_time: {{stat: {stat}, acceptable: 1000}}\n")
        observed.append(evaluate_rule(table, table.rules[0], [row({1: 2, 2: 1, 9: 2})])[0].observed)
    # 1, 1, 2, 9, 9
    assert observed == [22 / 5, 1, 9, 2, 2]


def test_relative_limits_are_graded_against_the_baseline_value() -> None:
    table = spec("  - name: /svc/Method\n    response_time: {stat: max, baseline: {good: 5, acceptable: 10}}\n")

    def baseline(entry: str, metric: str) -> float | None:
        return 10.0 if (entry, metric) == ("grpc /svc/Method", "response_time max") else None

    assert grade(table, row({10.4: 1}), baseline=baseline) == [("good", "pass")]
    assert grade(table, row({10.6: 1}), baseline=baseline) == [("acceptable", "pass")]
    assert grade(table, row({11.1: 1}), baseline=baseline) == [("poor", "fail")]
    # No baseline value for this row: nothing to grade on, so a warning (not strict).
    assert grade(table, row({10.4: 1})) == [(None, "warn")]


def test_every_result_records_its_observed_value_even_when_it_cannot_be_graded() -> None:
    """Any report can be the next run's baseline: relative-only limits without a baseline, too few requests."""
    rules = "  - name: /svc/Method\n    min_requests: 5\n    response_time: {stat: max, baseline: {acceptable: 10}}\n"
    lenient, strict = spec(rules), spec(rules, "strict: true\n")
    without_file = evaluate_rule(lenient, lenient.rules[0], [row({7: 5})])[0]
    assert (without_file.observed, without_file.grade, without_file.outcome) == (7, None, "warn")
    assert without_file.note == "no baseline: relative limits need --thresholds-baseline"
    row_missing = evaluate_rule(lenient, lenient.rules[0], [row({7: 5})], lambda entry, metric: None)[0]
    assert row_missing.observed == 7 and row_missing.note.startswith("no baseline value for this row")
    assert evaluate_rule(strict, strict.rules[0], [row({7: 5})])[0].outcome == "fail"
    assert not evaluate(strict, lambda rule: [row({7: 5})]).passed
    too_few = evaluate_rule(lenient, lenient.rules[0], [row({9: 4})])[0]
    assert (too_few.observed, too_few.outcome) == (9, "warn") and too_few.note.startswith("insufficient data")


def test_relative_throughput_may_drop_by_the_stated_percent() -> None:
    table = spec("  - name: /svc/Method\n    throughput: {acceptable: 1, baseline: {acceptable: 5}}\n")

    def baseline(entry: str, metric: str) -> float:
        return 100.0

    assert grade(table, row(requests=960), baseline=baseline) == [("acceptable", "pass")]
    assert grade(table, row(requests=940), baseline=baseline) == [("poor", "fail")]


def test_throughput_can_leave_out_the_ramp_up() -> None:
    whole = spec("  - name: /svc/Method\n    throughput: {acceptable: 1}\n")
    steady = spec("  - name: /svc/Method\n    throughput: {acceptable: 1, exclude_first: 2}\n")
    # Run from t=1000 to t=1010: 10 req/s during 2 s of ramp-up, then 100 req/s.
    per_second = {1000: 10, 1001: 10, **{second: 100 for second in range(1002, 1010)}}
    ramping = row(requests=sum(per_second.values()), per_second=per_second)
    assert evaluate_rule(whole, whole.rules[0], [ramping])[0].observed == 82.0
    assert evaluate_rule(steady, steady.rules[0], [ramping])[0].observed == 100.0


def _stats_with(requests: dict[str, list[tuple[int, bool]]]) -> RequestStats:
    stats = RequestStats(use_response_times_cache=False)
    for name, calls in requests.items():
        for response_time, failed in calls:
            stats.log_request("grpc", name, response_time, 0)
            if failed:
                stats.log_error("grpc", name, "UNAVAILABLE: injected fault")
    return stats


def test_globs_grade_each_matching_row_and_aggregated_uses_the_total() -> None:
    stats = _stats_with({"/a/Fast": [(1, False)] * 10, "/a/Slow": [(50, False)] * 10, "/b/Other": [(1, True)] * 10})
    table = spec(
        '  - match: "/a/*"\n    response_time: {stat: max, acceptable: 10}\n'
        "  - name: Aggregated\n    error_rate: {acceptable: 40}\n"
    )
    verdict: Verdict = evaluate(table, lambda rule: rows_for_rule(stats, rule))
    by_row = {(r.rule, r.entry): (r.observed, r.outcome) for r in verdict.results}
    assert by_row == {
        ("/a/*", "grpc /a/Fast"): (1, "pass"),
        ("/a/*", "grpc /a/Slow"): (50, "fail"),
        ("Aggregated", "Aggregated"): (pytest.approx(100 / 3), "pass"),
    }
    assert not verdict.passed


def test_a_window_sees_only_its_recent_requests() -> None:
    now = [1000.0]
    stats = _stats_with({"/svc/Method": [(2, False)] * 100})
    history = StatsHistory(stats, keep_s=31, clock=lambda: now[0])
    history.record()
    now[0] += 30
    for _ in range(10):
        stats.log_request("grpc", "/svc/Method", 80, 0)
        stats.log_error("grpc", "/svc/Method", "DEADLINE_EXCEEDED: slow")
    table = spec(
        "  - name: /svc/Method\n    response_time: {stat: p50, acceptable: 10}\n    error_rate: {acceptable: 5}\n"
    )
    rule = table.rules[0]
    whole = evaluate_rule(table, rule, rows_for_rule(stats, rule))
    recent = evaluate_rule(table, rule, history.rows_for_rule(rule, 30))
    assert [(r.observed, r.outcome) for r in whole] == [(2, "pass"), (pytest.approx(100 / 11), "fail")]
    assert [(r.observed, r.outcome) for r in recent] == [(80, "fail"), (100.0, "fail")]
    assert recent[0].requests == 10


def _log(stats: RequestStats, request_type: str, name: str, response_time: int, count: int, failures: int = 0) -> None:
    for index in range(count):
        stats.log_request(request_type, name, response_time, 0)
        if index < failures:
            stats.log_error(request_type, name, "error: injected")


def test_aggregated_with_type_and_exclude_sums_only_the_rows_it_keeps() -> None:
    register_derived("grpc-first-message")  # as the gRPC user does when imported: kept out of Locust's total
    now = [1000.0]
    stats = RequestStats(use_response_times_cache=False)
    _log(stats, "grpc", "/svc/A", 2, 10)
    _log(stats, "websocket", "echo", 4, 10, failures=5)
    # Derived sub-events: slow, and (connect) failing; the filtered rule must not see them.
    _log(stats, "websocket", "push tick", 900, 30)
    _log(stats, "websocket", "connect", 900, 5, failures=5)
    _log(stats, "grpc-first-message", "/svc/Stream", 900, 50)
    table = spec(
        "  - name: Aggregated\n    type: [grpc, websocket]\n    exclude: [connect, 'push *']\n"
        "    response_time: {stat: max, acceptable: 10}\n    error_rate: {acceptable: 30}\n"
        "  - name: Aggregated\n    error_rate: {acceptable: 30}\n"
        "  - name: Aggregated\n    type: grpc-message-rtt\n    error_rate: {acceptable: 30}\n"
    )
    verdict = evaluate(table, lambda rule: rows_for_rule(stats, rule))
    assert [(r.entry, r.rule_type, r.requests, r.observed, r.outcome) for r in verdict.results] == [
        ("grpc,websocket Aggregated", "grpc,websocket", 20, 4, "pass"),
        ("grpc,websocket Aggregated", "grpc,websocket", 20, 25.0, "pass"),
        ("Aggregated", None, 55, pytest.approx(1000 / 55), "pass"),  # Locust's total leaves grpc-first-message out
        ("", "grpc-message-rtt", 0, None, "warn"),  # its filter keeps no row: nothing matched
    ]

    history = StatsHistory(stats, keep_s=31, clock=lambda: now[0])
    history.record()
    now[0] += 30
    _log(stats, "grpc", "/svc/A", 8, 4, failures=4)
    _log(stats, "websocket", "push tick", 900, 100)
    recent = evaluate_rule(table, table.rules[0], history.rows_for_rule(table.rules[0], 30))
    assert [(r.requests, r.observed) for r in recent] == [(4, 8), (4, 100.0)]


def test_report_tables_list_failures_first_and_unmatched_rules_last() -> None:
    rules = (
        "  - name: /nowhere\n    error_rate: {acceptable: 1}\n"
        "  - name: /svc/Fine\n    error_rate: {acceptable: 1}\n"
        "  - name: /svc/Failing\n    error_rate: {acceptable: 1}\n"
    )
    rows = {
        "/svc/Fine": [row({1: 10}, name="/svc/Fine")],
        "/svc/Failing": [row({1: 10}, failures=5, name="/svc/Failing")],
    }
    verdict = evaluate(spec(rules), lambda rule: rows.get(rule.label, []))
    _, table = table_rows(verdict)
    assert [(line[0], line[-1].split()[0]) for line in table] == [
        ("/svc/Failing", "FAIL"),
        ("/svc/Fine", "PASS"),
        ("/nowhere", "WARN"),
    ]
