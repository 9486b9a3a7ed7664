"""One test per kind of bad thresholds file: the error names the file, the line and the key path; defaults, and
how a report path picks its format."""

from __future__ import annotations

from pathlib import Path

import pytest

from locust_ext.thresholds.loader import load_thresholds, parse_thresholds
from locust_ext.thresholds.model import Metric, ThresholdsFileError
from locust_ext.thresholds.report_targets import ReportPathError, ReportTarget, report_target
from tests.support import REPO_ROOT

GOOD_HEAD = "grades: [excellent, good, acceptable]\nrules:\n"

# (kind, file text, line, key path, words the problem must contain)
BAD_FILES = [
    ("unparseable YAML", GOOD_HEAD + "  - name: /a\n    error_rate: acceptable: 1\n", 4, "", "invalid YAML"),
    ("unknown top-level key", "grades: [ok]\nrulez: []\n", 2, "rulez", "unknown key 'rulez'"),
    (
        "unknown rule key",
        GOOD_HEAD + "  - name: /a\n    latency: {acceptable: 1}\n",
        4,
        "rules[0].latency",
        "unknown key 'latency'",
    ),
    (
        "unknown grade in a metric",
        GOOD_HEAD + "  - name: /a\n    error_rate:\n      great: 1\n",
        5,
        "rules[0].error_rate.great",
        "unknown key 'great'",
    ),
    (
        "wrong type",
        GOOD_HEAD + "  - name: /a\n    error_rate:\n      acceptable: lots\n",
        5,
        "rules[0].error_rate.acceptable",
        "expected a number",
    ),
    (
        "negative limit",
        GOOD_HEAD + "  - name: /a\n    response_time:\n      stat: p95\n      good: -5\n",
        6,
        "rules[0].response_time.good",
        "negative",
    ),
    (
        "limits out of order",
        GOOD_HEAD + "  - name: /a\n    response_time:\n      excellent: 10\n      good: 5\n",
        6,
        "rules[0].response_time.good",
        "excellent (10) must be stricter (lower) than good (5)",
    ),
    (
        "throughput limits out of order",
        GOOD_HEAD + "  - name: /a\n    throughput:\n      good: 10\n      acceptable: 50\n",
        6,
        "rules[0].throughput.acceptable",
        "must be stricter (higher)",
    ),
    (
        "unknown stat",
        GOOD_HEAD + "  - name: /a\n    response_time:\n      stat: p95th\n      good: 5\n",
        5,
        "rules[0].response_time.stat",
        "unknown stat 'p95th'",
    ),
    (
        "bad regex",
        GOOD_HEAD + "  - name: /a\n    error_rate: {good: 1}\n  - regex: '/Echo/(Bidi'\n    error_rate: {good: 1}\n",
        5,
        "rules[1].regex",
        "bad regular expression",
    ),
    (
        "duplicate key",
        GOOD_HEAD + "  - name: /a\n    error_rate: {good: 1}\n    error_rate: {good: 2}\n",
        5,
        "rules[0].error_rate",
        "duplicate key",
    ),
    (
        "two selectors",
        GOOD_HEAD + "  - name: /a\n    match: /a*\n    error_rate: {good: 1}\n",
        3,
        "rules[0]",
        "exactly one of 'name', 'match' or 'regex'",
    ),
    (
        "error rate above 100 %",
        GOOD_HEAD + "  - name: Aggregated\n    error_rate: {acceptable: 150}\n",
        4,
        "rules[0].error_rate.acceptable",
        "above 100",
    ),
    ("fail_at not a grade", "grades: [ok]\nfail_at: bad\nrules: []\n", 2, "fail_at", "fail_at 'bad' must be one of"),
    ("missing rules", "grades: [ok]\n", 1, "", "missing required key 'rules'"),
    ("rule without metrics", GOOD_HEAD + "  - name: /a\n    type: grpc\n", 3, "rules[0]", "needs at least one of"),
    (
        "empty type list",
        GOOD_HEAD + "  - name: Aggregated\n    type: []\n    error_rate: {good: 1}\n",
        4,
        "rules[0].type",
        "a non-empty list",
    ),
    (
        "type listed twice",
        GOOD_HEAD + "  - name: Aggregated\n    type: [grpc, grpc]\n    error_rate: {good: 1}\n",
        4,
        "rules[0].type[1]",
        "'grpc' is listed twice",
    ),
    (
        "exclude not a name",
        GOOD_HEAD + "  - name: Aggregated\n    exclude: [connect, {push: 1}]\n    error_rate: {good: 1}\n",
        4,
        "rules[0].exclude[1]",
        "expected a single value",
    ),
]


@pytest.mark.parametrize(("kind", "text", "line", "key_path", "problem"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_reported_with_line_and_key_path(
    tmp_path: Path, kind: str, text: str, line: int, key_path: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdsFileError) as caught:
        load_thresholds(path)
    error = caught.value
    assert (error.line, error.key_path) == (line, key_path), str(error)
    assert problem in error.problem
    message = str(error)
    assert message.startswith(f"{path}:{line}:")
    assert "\n" not in message


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ThresholdsFileError, match=r"^/nonexistent/t\.yaml: cannot read file: No such file"):
        load_thresholds("/nonexistent/t.yaml")


def test_grades_default_to_excellent_good_acceptable() -> None:
    spec = parse_thresholds("rules:\n  - name: Aggregated\n    error_rate: {good: 1, acceptable: 5}\n")
    assert spec.grades == ("excellent", "good", "acceptable")
    assert spec.all_grades[-1] == "poor" and spec.fail_at == "poor"


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("md:/tmp/step_summary", ReportTarget("/tmp/step_summary", "markdown")),
        ("junit:out/report", ReportTarget("out/report", "junit")),
        ("HTML:gate", ReportTarget("gate", "html")),
        ("json:gate.xml", ReportTarget("gate.xml", "json")),  # the prefix wins over the extension
        ("reports/gate.xml", ReportTarget("reports/gate.xml", "junit")),
        ("gate.MD", ReportTarget("gate.MD", "markdown")),
    ],
)
def test_a_report_format_comes_from_its_prefix_or_extension(value: str, target: ReportTarget) -> None:
    assert report_target(value) == target


@pytest.mark.parametrize(
    ("value", "problem"),
    [("pdf:gate", "unknown format prefix 'pdf'"), ("gate.pdf", "unsupported extension"), ("gate", "unsupported")],
)
def test_a_report_whose_format_cannot_be_told_is_refused(value: str, problem: str) -> None:
    with pytest.raises(ReportPathError, match=problem):
        report_target(value)


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    with pytest.raises(ThresholdsFileError, match="the file is empty"):
        load_thresholds(tmp_path / "empty.yaml")


def test_the_shipped_thresholds_file_is_valid() -> None:
    spec = load_thresholds(REPO_ROOT / "thresholds.yaml")
    # Every request the example locustfiles make is graded by some rule.
    for request_type, name in (
        ("grpc", "/loadtest.v1.Hello/SayHello"),
        ("grpc", "/loadtest.v1.Compute/Hash"),
        ("grpc", "/loadtest.v1.Echo/Echo [64KiB]"),
        ("grpc", "/loadtest.v1.Echo/EchoBidi"),
        ("grpc", "/loadtest.v1.Stream/Subscribe"),
        ("grpc-first-message", "/loadtest.v1.Stream/Subscribe"),
        ("grpc-message-latency", "/loadtest.v1.Stream/Subscribe"),
        ("websocket", "echo"),
        ("websocket", "compute"),
        ("websocket", "stream"),
        ("websocket", "ping"),
    ):
        assert any(rule.selector.matches(name, request_type) for rule in spec.rules), (request_type, name)
    assert any(rule.selector.is_aggregated for rule in spec.rules)
    assert spec.grades == ("excellent", "good", "acceptable")
    assert not spec.strict
    for rule in spec.rules:
        if rule.label in {"echo", "compute", "stream", "ping"}:
            assert rule.selector.request_types == ("websocket",)
    aggregated = next(rule for rule in spec.rules if rule.selector.is_aggregated)
    assert [m.metric for m in aggregated.metrics] == [Metric.ERROR_RATE]
    # Locust's own total, which counts operations only (derived rows stay out of it).
    assert not aggregated.selector.sums_rows
