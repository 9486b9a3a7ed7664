"""The baseline workflow as users run it: each run's JSON report is the next run's baseline. Run 1 has only
relative limits and no baseline, yet records every observed value (and says in every format why it could not
grade); run 2 against a backend made twice as slow (the reference server's --fault-delay-ms) fails."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from backends.kit import running_backend
from locust_ext.testing import locust_command, run_locust
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "thresholds_grpc.py"
HELLO = "/loadtest.v1.Hello/SayHello"
#: Only relative limits: at most 5 % / 10 % slower than the baseline's median.
GATE = f"""\
rules:
  - name: {HELLO}
    response_time: {{stat: p50, baseline: {{good: 5, acceptable: 10}}}}
"""
NO_BASELINE = "no baseline: relative limits need --thresholds-baseline"


def gated_run(delay_ms: int, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A 3 s local run against a gRPC backend that delays every call by ``delay_ms``; reports in ``out``."""
    reports = [f"--thresholds-report={out / name}" for name in ("gate.json", "gate.xml", "gate.md", "gate.html")]
    with running_backend("grpc", ["--fault-delay-ms", str(delay_ms)]) as backend:
        command = locust_command(
            LOCUSTFILE, "--headless", "-u", "2", "-r", "2", "-t", "3s",
            "--thresholds", str(out.parent / "gate.yaml"), *reports, *extra,
        )  # fmt: skip
        return run_locust(command, env={"THRESHOLDS_PROBE_TARGET": backend.address}, timeout=60)


def test_a_report_without_baseline_is_the_baseline_that_catches_a_2x_slowdown(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text(GATE)
    first, second = tmp_path / "run1", tmp_path / "run2"

    done = gated_run(30, first)
    assert done.returncode == 0, done.stderr[-2000:]  # nothing to compare with: a warning, not a failure
    (result,) = json.loads((first / "gate.json").read_text())["results"]
    assert result["observed"] >= 30 and result["grade"] is None
    assert (result["outcome"], result["note"]) == ("warn", NO_BASELINE)
    # Every format says why the row was not graded.
    assert NO_BASELINE in done.stdout
    assert NO_BASELINE in (first / "gate.md").read_text()
    assert NO_BASELINE in (first / "gate.html").read_text()
    skipped = ET.parse(first / "gate.xml").getroot().findall(".//skipped")
    assert [element.get("message") for element in skipped] == [NO_BASELINE]

    done = gated_run(60, second, "--thresholds-baseline", str(first / "gate.json"))
    assert done.returncode == 3, done.stderr[-2000:]
    (slower,) = json.loads((second / "gate.json").read_text())["results"]
    assert slower["baseline"]["value"] == result["observed"]
    assert slower["observed"] > slower["baseline"]["limits"]["acceptable"]
    assert (slower["grade"], slower["outcome"]) == ("poor", "fail")


def test_strict_fails_a_relative_rule_without_a_baseline(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text("strict: true\n" + GATE)
    done = gated_run(0, tmp_path / "run")
    assert done.returncode == 3, done.stderr[-2000:]
    (result,) = json.loads((tmp_path / "run" / "gate.json").read_text())["results"]
    assert (result["outcome"], result["note"]) == ("fail", NO_BASELINE) and result["observed"] is not None
    failures = ET.parse(tmp_path / "run" / "gate.xml").getroot().findall(".//failure")
    assert [element.get("message") for element in failures] == [NO_BASELINE]
