"""The README's CI jobs for the thresholds gate: valid YAML, and their locust command run as written against the
reference gRPC backend. Only what a CI machine provides changes: the backend's free port (through the example
locustfile's LOADTEST_GRPC_HOST), $GITHUB_STEP_SUMMARY, the reports folder, and the run time (3 s, not 1 min)."""

from __future__ import annotations

import json
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from locust_ext.testing import Backend, run_locust
from tests.support import REPO_ROOT


def ci_jobs() -> dict[str, Any]:
    """The two YAML blocks under "**In CI.**" in the thresholds section, parsed."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Thresholds gate\n", 1)[1].split("\n## ", 1)[0]
    ci = section.split("**In CI.**", 1)[1]
    github, gitlab = re.findall(r"^```yaml\n(.*?)^```", ci, flags=re.DOTALL | re.MULTILINE)[:2]
    return {"github": yaml.safe_load(github), "gitlab": yaml.safe_load(gitlab)}


def locust_line(job: str) -> str:
    jobs = ci_jobs()
    if job == "github":
        steps = jobs["github"]["jobs"]["load-test"]["steps"]
        lines = [step["run"] for step in steps if ".venv/bin/locust" in step.get("run", "")]
    else:
        lines = [line for line in jobs["gitlab"]["load-test"]["script"] if ".venv/bin/locust" in line]
    (line,) = lines
    return " ".join(line.split())


def test_the_gitlab_job_keeps_the_junit_report_as_an_artifact() -> None:
    job = ci_jobs()["gitlab"]["load-test"]
    assert job["artifacts"]["reports"]["junit"] == "reports/gate.xml"
    assert job["artifacts"]["when"] == "always"
    assert "--thresholds-report reports/gate.xml" in locust_line("gitlab")


@pytest.mark.parametrize("job", ["github", "gitlab"])
def test_the_ci_jobs_locust_command_runs(job: str, grpc_backend: Backend, tmp_path: Path) -> None:
    line = locust_line(job)
    assert " -t 1m " in line
    line = line.replace(" -t 1m ", " -t 3s ").replace("reports/", f"{tmp_path}/reports/")
    line = line.replace("$GITHUB_STEP_SUMMARY", str(tmp_path / "step_summary"))
    command = shlex.split(line)
    assert command[0] == ".venv/bin/locust"
    done = run_locust(
        [sys.executable, "-m", "locust", *command[1:]], env={"LOADTEST_GRPC_HOST": grpc_backend.address}, timeout=90
    )
    # The verdict depends on this shared machine's latency; the reports must be there either way.
    assert done.returncode in (0, 3), done.stderr[-3000:]
    document = json.loads((tmp_path / "reports" / "gate.json").read_text())
    assert document["passed"] is (done.returncode == 0)
    assert ET.parse(tmp_path / "reports" / "gate.xml").getroot().tag == "testsuites"
    page = (tmp_path / "reports" / "locust.html").read_text()
    assert "window.templateArgs" in page and '<section id="locust-ext-thresholds">' in page
    if job == "github":
        assert (tmp_path / "step_summary").read_text().startswith("## Thresholds ")
