"""Every report format of one real run says, row by row, what the JSON report says: console, Markdown, HTML,
JUnit, the web UI tab and the StatsD grade gauges. The table's failures are not first in file order, so a format
that paired rows with results in another order would show one row's numbers on another."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from typing import Any

import pytest

from locust_ext.statsd.naming import sanitize_segment
from locust_ext.testing import Backend, free_port, locust_command, running_locust
from tests.statsd_support import udp_capture
from tests.support import FOR_TESTS
from tests.test_thresholds.thresholds_reports import (
    assert_rows_agree,
    console_rows,
    html_rows,
    junit_rows,
    markdown_rows,
    metric_label,
    tab_rows,
)

LOCUSTFILE = FOR_TESTS / "thresholds_grpc.py"
HELLO = "/loadtest.v1.Hello/SayHello"
HASH = "/loadtest.v1.Compute/Hash"
TIMEOUT_S = 60
#: SayHello gets 20 ms of injected delay and fails half its calls, so its latency and error-rate rows fail
#: whatever the machine's speed; Hash passes (its limit is the call timeout). Passing rows come first in the
#: file, a glob grades a passing and a failing row, and /nowhere matches nothing.
GATE = f"""\
live_interval: 0.5
rules:
  - name: {HASH}
    response_time: {{stat: p95, acceptable: 5000}}
    error_rate: {{excellent: 0.1, acceptable: 1}}
  - name: /nowhere
    error_rate: {{acceptable: 1}}
  - name: {HELLO}
    response_time: {{stat: p50, excellent: 1, good: 5, acceptable: 10}}
    throughput: {{acceptable: 0.001}}
  - match: "/loadtest.v1.*"
    error_rate: {{excellent: 0.1, good: 1, acceptable: 10}}
  - name: Aggregated
    error_rate: {{good: 1, acceptable: 100}}
"""
FAULTS = {"THRESHOLDS_FAULT_STATUS": "UNAVAILABLE", "THRESHOLDS_FAULT_RATE": "0.5", "THRESHOLDS_FAULT_DELAY_MS": "20"}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait_until_stopped(base: str, deadline: float) -> dict[str, Any]:
    """/stats/requests once the run has stopped (the web UI stays up)."""
    while True:
        try:
            stats = _get(base + "/stats/requests")
            if stats["state"] == "stopped":
                return stats
        except OSError:
            pass
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def finished(grpc_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One web UI run (autostart, 4 s) mirrored to StatsD, every report format; ended with SIGTERM."""
    out = tmp_path_factory.mktemp("agree")
    gate = out / "gate.yaml"
    gate.write_text(GATE)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    reports = [f"--thresholds-report={out / name}" for name in ("gate.json", "gate.xml", "gate.md", "gate.html")]
    with udp_capture() as capture:
        command = locust_command(
            LOCUSTFILE, "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart",
            "-u", "4", "-r", "4", "-t", "4s", "--thresholds", str(gate), *reports,
            "--statsd-host", "127.0.0.1", "--statsd-port", str(capture.port), "--html", str(out / "locust.html"),
        )  # fmt: skip
        env = {"THRESHOLDS_PROBE_TARGET": grpc_backend.address, **FAULTS}
        with running_locust(command, env=env) as process:
            stats = _wait_until_stopped(base, time.monotonic() + TIMEOUT_S)
            tab = next(item["data"] for item in stats["extended_stats"] if item["key"] == "thresholds")
            live = _get(base + "/thresholds")
            with urllib.request.urlopen(base + "/stats/report", timeout=5) as response:
                download = response.read().decode()
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    gauges: dict[str, float] = {}
    for line in capture.lines():
        if line.type == "g" and line.name.startswith("locust.thresholds."):
            gauges[line.name.removeprefix("locust.")] = line.value
    return {
        "code": process.returncode, "stdout": stdout, "stderr": stderr, "out": out, "tab": tab, "live": live,
        "gauges": gauges, "download": download, "document": json.loads((out / "gate.json").read_text()),
    }  # fmt: skip


def test_the_run_fails_on_rows_that_come_after_passing_ones_in_the_file(finished: dict[str, Any]) -> None:
    assert finished["code"] == 3, finished["stderr"][-2000:]
    results = finished["document"]["results"]
    outcomes = [result["outcome"] for result in results]
    # Report order: failures first, the unmatched rule last; the file listed passing rows first.
    assert outcomes[:2] == ["fail", "fail"] and "fail" not in outcomes[2:]
    assert results[-1]["rule"] == "/nowhere" and results[-1]["outcome"] == "warn"
    failing = [(result["rule"], result["entry"], metric_label(result)) for result in results[:2]]
    assert failing == [(HELLO, f"grpc {HELLO}", "response_time p50"), ("/loadtest.v1.*", f"grpc {HELLO}", "error_rate")]
    assert results[2]["rule"] == HASH


def test_console_markdown_html_and_junit_rows_match_the_json_report(finished: dict[str, Any]) -> None:
    document, out = finished["document"], finished["out"]
    assert_rows_agree("console", console_rows(finished["stdout"]), document)
    assert_rows_agree("markdown", markdown_rows((out / "gate.md").read_text()), document)
    html = html_rows((out / "gate.html").read_text())
    assert_rows_agree("html", [row for _, row in html], document)
    assert [css for css, _ in html] == [result["outcome"] for result in document["results"]]
    assert_rows_agree("junit", junit_rows(out / "gate.xml"), document)


@pytest.mark.parametrize("name", ["gate.html", "locust.html"])
def test_the_html_reports_colour_each_row_by_its_own_grade(finished: dict[str, Any], name: str) -> None:
    page = (finished["out"] / name).read_text()
    body = page.split("<tbody>", 1)[1]
    grades = finished["document"]["grades"]
    for result, row in zip(finished["document"]["results"], body.split("</tr>"), strict=False):
        if result["grade"] is not None:
            hue = round(120 - 120 * grades.index(result["grade"]) / (len(grades) - 1))
            assert f'background:hsl({hue}, 70%, 80%)">{result["grade"]}</td>' in row, (result, row)


def test_locusts_html_report_holds_the_final_verdict(finished: dict[str, Any]) -> None:
    """Written at quitting even though a SIGTERM'd web UI run never gets Locust's own --html write."""
    page = (finished["out"] / "locust.html").read_text()
    assert "window.templateArgs" in page and '"is_report": true' in page  # Locust's report ...
    assert page.count('<section id="locust-ext-thresholds">') == 1  # ... with one verdict section
    assert page.index('<section id="locust-ext-thresholds">') < page.index('<div id="root">')
    assert '<h1 class="failed">Thresholds FAILED: ' in page
    assert_rows_agree("locust html", [row for _, row in html_rows(page)], finished["document"])
    # The web UI's downloadable report carries the verdict of the moment (here: the stopped run's).
    assert_rows_agree("web UI report", [row for _, row in html_rows(finished["download"])], finished["live"])


def test_the_web_ui_tab_after_the_stop_matches_the_json_report(finished: dict[str, Any]) -> None:
    assert_rows_agree("tab", tab_rows(finished["tab"]), finished["live"])
    assert_rows_agree("tab", tab_rows(finished["tab"]), finished["document"])


def test_statsd_grade_gauges_match_the_json_report(finished: dict[str, Any]) -> None:
    document = finished["document"]
    expected: dict[str, float] = {"thresholds.failing": document["summary"]["fail"]}
    for result in document["results"]:
        if result["grade_index"] is None:
            continue
        rule = f"{result['type']} {result['rule']}" if result["type"] else result["rule"]
        name = f"thresholds.{sanitize_segment(rule)}.{sanitize_segment(metric_label(result))}.grade"
        expected[name] = max(expected.get(name, 0.0), result["grade_index"])
    assert finished["gauges"] == expected
