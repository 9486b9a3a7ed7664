"""The gate end to end: real locust processes (local, and master + two workers) against the reference gRPC
backend on loopback; faults injected by metadata give the errors and latency. Reports are read back with
parsers; every kind of bad file or report path must stop the process with exit code 2 before any user starts."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import (
    Backend,
    free_port,
    locust_command,
    run_distributed,
    run_locust,
    running_locust,
)
from tests.support import FOR_TESTS, server_calls
from tests.test_thresholds.test_thresholds_loader import BAD_FILES

LOCUSTFILE = FOR_TESTS / "thresholds_grpc.py"
HELLO = "/loadtest.v1.Hello/SayHello"
USERS = 4
RUN_TIMEOUT_S = 60

#: No ``grades:`` line: the default [excellent, good, acceptable] applies.
GATE = """\
live_interval: 0.5
rules:
  - name: /loadtest.v1.Hello/SayHello
    type: grpc
    response_time: {stat: p95, excellent: 50, good: 200, acceptable: 1000}
    error_rate: {excellent: 0.1, good: 0.5, acceptable: 1.0}
    throughput: {acceptable: 1, exclude_first: 1}
  - match: "/loadtest.v1.*"
    response_time: {stat: p50, acceptable: 2000}
  - name: Aggregated
    error_rate: {acceptable: 1.0}
"""
#: SayHello's median may get at most 50 % slower than in the baseline run (the glob above records it there).
BASELINE_RULE = """\
  - match: "/loadtest.v1.Hello/*"
    response_time: {stat: p50, baseline: {acceptable: 50}}
"""


def headless(run_time: str = "3s") -> list[str]:
    return ["--headless", "-u", str(USERS), "-r", str(USERS), "-t", run_time]


def probe_env(backend: Backend, **env: str) -> dict[str, str]:
    """The test locustfile's target, and its fault settings."""
    return {"THRESHOLDS_PROBE_TARGET": backend.address, **env}


def run(args: Sequence[str], backend: Backend, **env: str) -> subprocess.CompletedProcess[str]:
    return run_locust(locust_command(LOCUSTFILE, *args), env=probe_env(backend, **env), timeout=RUN_TIMEOUT_S)


def results_by(document: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (r["rule"], r["entry"], f"{r['metric']} {r['stat']}" if r["stat"] else r["metric"]): r
        for r in document["results"]
    }


def aggregated_requests(document: dict[str, Any]) -> int:
    return int(results_by(document)[("Aggregated", "Aggregated", "error_rate")]["requests"])


@pytest.fixture(scope="module")
def gate_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "gate.yaml"
    path.write_text(GATE)
    return path


@pytest.fixture(scope="module")
def passing_run(
    grpc_backend: Backend, gate_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path, int]:
    """A clean local run: flags from the environment and a Locust config file, every report format."""
    out = tmp_path_factory.mktemp("pass")
    config = out / "locust.conf"
    reports = [out / "reports" / f"gate.{ext}" for ext in ("json", "xml", "md", "html")]
    config.write_text(f"thresholds-report = [{', '.join(str(p) for p in reports)}]\n")
    server_calls(grpc_backend, reset=True)
    result = run(["--config", str(config), *headless()], grpc_backend, LOCUST_THRESHOLDS=str(gate_file))
    return result, out / "reports", server_calls(grpc_backend)


def test_a_clean_local_run_passes_with_exit_code_0(
    passing_run: tuple[subprocess.CompletedProcess[str], Path, int],
) -> None:
    result, _, _ = passing_run
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Thresholds PASSED" in result.stdout
    assert "response_time p95" in result.stdout


def test_the_json_report_counts_what_the_server_saw(
    passing_run: tuple[subprocess.CompletedProcess[str], Path, int],
) -> None:
    _, reports, server_received = passing_run
    document = json.loads((reports / "gate.json").read_text())
    assert document["schema"] == "locust-ext/thresholds-report/v1"
    assert document["passed"] is True and document["final"] is True and document["aborted"] is None
    assert document["run"]["mode"] == "local"
    assert document["grades"] == ["excellent", "good", "acceptable", "poor"]
    rows = results_by(document)
    hello = rows[(HELLO, f"grpc {HELLO}", "response_time p95")]
    assert hello["limits"] == {"excellent": 50, "good": 200, "acceptable": 1000}
    # The grade is the first whose limit holds the observed p95 (how fast the calls were depends on the machine).
    expected = next((grade for grade, limit in hello["limits"].items() if hello["observed"] <= limit), "poor")
    assert (hello["grade"], hello["outcome"]) == (expected, "pass"), hello
    # The glob grades each method it matches on its own.
    assert {entry for rule, entry, _ in rows if rule == "/loadtest.v1.*"} == {
        f"grpc {HELLO}",
        "grpc /loadtest.v1.Compute/Hash",
    }
    # A graceful stop may cut calls the server already received, at most one per user.
    counted = aggregated_requests(document)
    assert server_received - USERS <= counted <= server_received
    assert counted > 0


def test_the_junit_report_has_one_testcase_per_result(
    passing_run: tuple[subprocess.CompletedProcess[str], Path, int],
) -> None:
    _, reports, _ = passing_run
    document = json.loads((reports / "gate.json").read_text())
    suite = ET.parse(reports / "gate.xml").getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(document["results"]) == int(suite.get("tests", "-1"))
    assert suite.get("failures") == "0"
    assert not suite.findall(".//failure")
    assert f"grpc {HELLO} response_time p95" in {case.get("name") for case in cases}


def test_markdown_and_html_reports(passing_run: tuple[subprocess.CompletedProcess[str], Path, int]) -> None:
    _, reports, _ = passing_run
    markdown = (reports / "gate.md").read_text()
    assert markdown.startswith("## Thresholds PASSED")
    assert f"| {HELLO} | grpc {HELLO} | response_time p95 |" in markdown
    page = (reports / "gate.html").read_text()
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert "background:hsl(" in page  # coloured grades


def test_faults_fail_the_gate_with_exit_code_3_and_baseline_limits(
    grpc_backend: Backend, passing_run: tuple[subprocess.CompletedProcess[str], Path, int], tmp_path: Path
) -> None:
    """Locust alone would exit 1 for failed requests; the gate decides 3. The baseline rule fails on latency."""
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE + BASELINE_RULE)
    report = tmp_path / "gate.json"
    junit = tmp_path / "junit-report"
    summary = tmp_path / "step-summary"  # like $GITHUB_STEP_SUMMARY: no extension, so a format prefix
    # The passing run's report as the baseline, its p50s set to a known 2 ms: a live median from a loaded machine
    # can be slower than the faulted run's, and the rule must fail because of the 50 ms fault, not by chance.
    document = json.loads((passing_run[1] / "gate.json").read_text())
    for result in document["results"]:
        if result["metric"] == "response_time" and result.get("stat") == "p50":
            result["observed"] = 2.0
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(document))
    args = ["--thresholds", str(gate), "--thresholds-baseline", str(baseline)]
    args += ["--thresholds-report", str(report), "--thresholds-report", f"junit:{junit}"]
    args += ["--thresholds-report", f"md:{summary}", "--html", str(tmp_path / "locust-{u}.html")]
    result = run(
        [*args, *headless()],
        grpc_backend,
        THRESHOLDS_FAULT_STATUS="UNAVAILABLE",
        THRESHOLDS_FAULT_RATE="0.3",
        THRESHOLDS_FAULT_DELAY_MS="50",  # the median goes from a few ms to >= 50 ms, whatever the machine
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Thresholds FAILED" in result.stdout
    document = json.loads(report.read_text())
    assert document["passed"] is False
    rows = results_by(document)
    error_rate = rows[(HELLO, f"grpc {HELLO}", "error_rate")]
    assert error_rate["grade"] == "poor" and error_rate["outcome"] == "fail"
    # 30 % of calls fail by injection: the observed share lies within 4 standard deviations of it (binomial; how
    # many calls a run makes depends on the machine).
    spread = 4 * 100 * (0.3 * 0.7 / error_rate["requests"]) ** 0.5
    assert abs(error_rate["observed"] - 30) <= spread, error_rate
    relative = rows[("/loadtest.v1.Hello/*", f"grpc {HELLO}", "response_time p50")]
    assert relative["baseline"]["value"] == 2.0
    assert relative["observed"] >= 50 > relative["baseline"]["limits"]["acceptable"]
    assert relative["outcome"] == "fail"
    failures = ET.parse(junit).getroot().findall(".//failure")
    messages = [failure.get("message", "") for failure in failures]
    assert any(message.startswith("error_rate observed") and "grade poor" in message for message in messages)
    assert summary.read_text().startswith("## Thresholds FAILED")
    # Locust's own report, written before the verdict existed, is rewritten with it (name placeholders filled).
    page = (tmp_path / f"locust-{USERS}.html").read_text()
    assert "window.templateArgs" in page and page.count('<h1 class="failed">Thresholds FAILED: ') == 1


def test_abort_on_fail_stops_the_run_early(grpc_backend: Backend, tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(
        "grades: [ok]\nlive_interval: 0.5\nrules:\n  - name: Aggregated\n"
        "    error_rate: {ok: 1}\n    abort_on_fail: {delay: 1, window: 2}\n"
    )
    report = tmp_path / "gate.json"
    run_time_s = 60
    args = ["--thresholds", str(gate), "--thresholds-report", str(report)]
    result = run(
        [*args, *headless(f"{run_time_s}s")],
        grpc_backend,
        THRESHOLDS_FAULT_STATUS="INTERNAL",
        THRESHOLDS_FAULT_RATE="0.5",
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "abort_on_fail stops the run" in result.stderr
    document = json.loads(report.read_text())
    assert document["aborted"]["rule"] == "Aggregated"
    assert "over the last 2 s" in document["aborted"]["message"]
    assert document["run"]["duration_s"] < run_time_s / 2


def _distributed_run(backend: Backend, gate: Path, report: Path, **env: str) -> tuple[int, dict[str, Any], int]:
    server_calls(backend, reset=True)
    master_args = ["--thresholds", str(gate), "--thresholds-report", str(report), *headless()]
    master = run_distributed(LOCUSTFILE, master_args, env=probe_env(backend, **env), timeout=RUN_TIMEOUT_S)
    return master.returncode, json.loads(report.read_text()), server_calls(backend)


def test_distributed_verdict_counts_every_workers_requests(
    grpc_backend: Backend, gate_file: Path, tmp_path: Path
) -> None:
    code, document, server_received = _distributed_run(grpc_backend, gate_file, tmp_path / "pass.json")
    assert code == 0
    assert document["run"]["mode"] == "master" and document["run"]["workers"] == 2
    counted = aggregated_requests(document)
    assert server_received - USERS <= counted <= server_received

    code, document, _ = _distributed_run(
        grpc_backend,
        gate_file,
        tmp_path / "fail.json",
        THRESHOLDS_FAULT_STATUS="UNAVAILABLE",
        THRESHOLDS_FAULT_RATE="0.3",
    )
    assert code == 3
    assert document["passed"] is False


@dataclass(frozen=True)
class Refusal:
    """A run that must stop before load: its thresholds file (None: missing), extra flags and the words its
    one ``error:`` line must hold. ``{dir}`` in flags and words stands for the case's own folder, which also
    holds a folder named ``folder.json``."""

    kind: str
    text: str | None
    words: tuple[str, ...]
    args: tuple[str, ...] = ()


REFUSALS = [
    *(
        Refusal(kind, text, (f"{{dir}}/gate.yaml:{line}:", f" {key_path}:" if key_path else "", problem))
        for kind, text, line, key_path, problem in BAD_FILES
    ),
    Refusal("missing file", None, ("{dir}/gate.yaml: cannot read file",)),
    Refusal("empty file", "# nothing\n", ("{dir}/gate.yaml: the file is empty",)),
    Refusal(
        "missing baseline",
        GATE,
        ("{dir}/base.json: cannot read baseline",),
        ("--thresholds-baseline", "{dir}/base.json"),
    ),
    Refusal(
        "bad report extension",
        GATE,
        ("--thresholds-report gate.pdf: unsupported extension",),
        ("--thresholds-report", "gate.pdf"),
    ),
    Refusal(
        "unknown report format prefix",
        GATE,
        ("--thresholds-report pdf:{dir}/gate: unknown format prefix 'pdf'",),
        ("--thresholds-report", "pdf:{dir}/gate"),
    ),
    Refusal(
        "report under a file",
        GATE,
        ("--thresholds-report {dir}/gate.yaml/gate.json: cannot write", "{dir}/gate.yaml"),
        ("--thresholds-report", "{dir}/gate.yaml/gate.json"),
    ),
    Refusal(
        "report path is a folder",
        GATE,
        ("--thresholds-report {dir}/folder.json: cannot write: Is a directory",),
        ("--thresholds-report", "{dir}/folder.json"),
    ),
]


@pytest.fixture(scope="module")
def refused_runs(
    grpc_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, tuple[Path, subprocess.CompletedProcess[str]]], int]:
    """Every refusal run (a few at a time; each exits within a second or two), and the calls the backend saw."""
    folders = {case.kind: tmp_path_factory.mktemp("refused") for case in REFUSALS}

    def refuse(case: Refusal) -> subprocess.CompletedProcess[str]:
        folder = str(folders[case.kind])
        gate = folders[case.kind] / "gate.yaml"
        if case.text is not None:
            gate.write_text(case.text)
        (folders[case.kind] / "folder.json").mkdir()
        # A writable report comes first: it is tried before the file is read, and must not be left behind.
        reports = ("--thresholds-report", f"{folder}/fresh/gate.json")
        args = [arg.replace("{dir}", folder) for arg in case.args]
        return run(["--thresholds", str(gate), *reports, *args, *headless()], grpc_backend)

    server_calls(grpc_backend, reset=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(folders, pool.map(refuse, REFUSALS), strict=True))
    return {kind: (folders[kind], done[kind]) for kind in folders}, server_calls(grpc_backend)


@pytest.mark.parametrize("case", REFUSALS, ids=[case.kind for case in REFUSALS])
def test_a_bad_file_or_report_path_exits_2_before_any_user_starts(
    refused_runs: tuple[dict[str, tuple[Path, subprocess.CompletedProcess[str]]], int], case: Refusal
) -> None:
    runs, server_received = refused_runs
    folder, result = runs[case.kind]
    assert result.returncode == 2, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for word in case.words:
        assert word.replace("{dir}", str(folder)) in error_lines[0]
    assert "Ramping to" not in result.stderr
    assert not (folder / "fresh" / "gate.json").exists()
    assert server_received == 0


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait_for(url: str, deadline: float) -> None:
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_web_ui_has_a_live_thresholds_tab(grpc_backend: Backend, gate_file: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = locust_command(
        LOCUSTFILE, "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "2", "-r", "2", "-t", "30s"
    )
    command += ["--thresholds", str(gate_file)]
    with running_locust(command, env=probe_env(grpc_backend)) as process:
        deadline = time.monotonic() + 30
        _wait_for(base + "/", deadline)
        with urllib.request.urlopen(base + "/", timeout=5) as response:
            page = response.read().decode()
        assert '{"key": "thresholds", "title": "Thresholds"}' in page  # other features add tabs too
        rows: list[dict[str, str]] = []
        while not any(row["grade"] != "-" for row in rows) and time.monotonic() < deadline:
            time.sleep(0.5)
            stats = _get_json(base + "/stats/requests")
            tab = [item for item in stats["extended_stats"] if item["key"] == "thresholds"]
            rows = tab[0]["data"]
        hello = next(row for row in rows if row["rule"] == HELLO and row["metric"] == "response_time p95")
        # A live grade is shown (which one depends on this shared machine's latency at the moment).
        assert hello["grade"] in ("excellent", "good", "acceptable", "poor")
        assert hello["outcome"] in ("PASS", "FAIL")
        verdict = _get_json(base + "/thresholds")
        assert verdict["schema"] == "locust-ext/thresholds-report/v1"
        assert verdict["final"] is False
        assert any(result["requests"] > 0 for result in verdict["results"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(RUN_TIMEOUT_S) == 0
