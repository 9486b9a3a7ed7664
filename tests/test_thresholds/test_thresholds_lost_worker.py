"""A worker lost mid-run fails the gate: master + 2 workers started as users start them (workers with only
``--worker --master-host --master-port``, the target only on the master's -H), one worker killed once every user
runs. SIGKILL leaves the master
without heartbeats ("missing"); SIGTERM makes the worker quit. Every report names the worker, when, and how many
users it ran; --thresholds-lost-workers warn (here from its environment variable) only warns."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import Backend, free_port, locust_command
from tests.support import FOR_TESTS, REPO_ROOT

LOCUSTFILE = FOR_TESTS / "thresholds_grpc.py"
GATE = "rules:\n  - name: Aggregated\n    error_rate: {acceptable: 1}\n"
USERS = 4
TIMEOUT_S = 90


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str
    document: dict[str, Any]
    out: Path


#: The master's log line once spawning is over (the second when some workers' reports come late).
SPAWNED = ("All users spawned", "Spawning is complete")
#: Locust's worker report interval: after it, every worker's user count has reached the master.
WORKER_REPORT_INTERVAL_S = 3.0


def _pump(stream: Any, lines: list[str], seen: threading.Event, needles: tuple[str, ...]) -> None:
    for line in stream:
        lines.append(line)
        if any(needle in line for needle in needles):
            seen.set()


def run_and_lose_a_worker(backend: Backend, out: Path, kill: signal.Signals, **env: str) -> Finished:
    """A 15 s headless distributed run; worker 0 gets ``kill`` once the master has spawned every user and heard
    from every worker."""
    out.mkdir()
    (out / "gate.yaml").write_text(GATE)
    port = str(free_port())
    # The target reaches the workers only from the master (-H travels in Locust's spawn message).
    full_env = {key: value for key, value in os.environ.items() if key != "THRESHOLDS_PROBE_TARGET"} | env
    reports = [f"--thresholds-report={out / name}" for name in ("gate.json", "gate.xml", "gate.md")]
    master_command = locust_command(
        LOCUSTFILE, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--expect-workers", "2", "--host", backend.address,
        "--headless", "-u", str(USERS), "-r", str(USERS), "-t", "15s",
        "--thresholds", str(out / "gate.yaml"), *reports, "--html", str(out / "locust.html"),
    )  # fmt: skip
    worker_command = locust_command(LOCUSTFILE, "--worker", "--master-host", "127.0.0.1", "--master-port", port)
    workers = [
        subprocess.Popen(
            worker_command, cwd=REPO_ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    master = subprocess.Popen(
        master_command, cwd=REPO_ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout: list[str] = []
    stderr: list[str] = []
    spawned = threading.Event()
    pumps = [
        threading.Thread(target=_pump, args=(master.stdout, stdout, threading.Event(), ()), daemon=True),
        threading.Thread(target=_pump, args=(master.stderr, stderr, spawned, SPAWNED), daemon=True),
    ]
    try:
        for pump in pumps:
            pump.start()
        assert spawned.wait(TIMEOUT_S), "".join(stderr)[-2000:]
        time.sleep(WORKER_REPORT_INTERVAL_S + 0.5)
        workers[0].send_signal(kill)
        code = master.wait(TIMEOUT_S)
    finally:
        processes: list[subprocess.Popen[Any]] = [master, *workers]
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for pump in pumps:
            pump.join(5)
    return Finished(code, "".join(stdout), "".join(stderr), json.loads((out / "gate.json").read_text()), out)


@pytest.fixture(scope="module")
def killed(grpc_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return run_and_lose_a_worker(grpc_backend, tmp_path_factory.mktemp("lost") / "killed", signal.SIGKILL)


def test_a_worker_killed_mid_run_fails_the_gate_with_exit_3(killed: Finished) -> None:
    assert killed.code == 3, killed.stderr[-3000:]
    document = killed.document
    assert document["passed"] is False and document["lost_workers_policy"] == "fail"
    assert document["summary"]["fail"] == 0  # the rules themselves pass: the lost worker alone fails the run
    (lost,) = document["lost_workers"]
    # The worker the master stopped hearing from, by Locust's own log line.
    assert f"Worker {lost['id']} failed to send heartbeat" in killed.stderr
    assert lost["how"] == "missing" and lost["users"] == USERS // 2
    assert 0 < lost["after_s"] < document["run"]["duration_s"]
    assert lost["index"] in (0, 1) and lost["noticed_at"].startswith(document["run"]["started_at"][:10])
    assert lost["id"] in lost["message"] and "stopped sending heartbeats" in lost["message"]
    assert document["run"]["workers"] == 2


def test_every_report_names_the_lost_worker(killed: Finished) -> None:
    (lost,) = killed.document["lost_workers"]
    assert "Thresholds FAILED: " in killed.stdout and "; 1 worker lost" in killed.stdout
    assert f"Lost worker (FAIL): {lost['message']}" in killed.stdout
    assert f"- **Lost worker (FAIL): {lost['message']}**" in (killed.out / "gate.md").read_text()
    page = (killed.out / "locust.html").read_text()  # Locust's own report, from the master
    assert f'<p class="lost">Lost worker (FAIL): {html.escape(lost["message"])}</p>' in page
    cases = ET.parse(killed.out / "gate.xml").getroot().iter("testcase")
    (case,) = [case for case in cases if case.get("classname") == "thresholds.workers"]
    failure = case.find("failure")
    assert case.get("name") == f"worker {lost['id']}"
    assert failure is not None and failure.get("message") == lost["message"]


def test_a_worker_that_quits_mid_run_only_warns_when_told_to(grpc_backend: Backend, tmp_path: Path) -> None:
    done = run_and_lose_a_worker(grpc_backend, tmp_path / "quit", signal.SIGTERM, LOCUST_THRESHOLDS_LOST_WORKERS="warn")
    assert done.code == 0, done.stderr[-3000:]
    document = done.document
    assert document["passed"] is True and document["lost_workers_policy"] == "warn"
    (lost,) = document["lost_workers"]
    assert lost["how"] == "quit" and lost["users"] == USERS // 2
    assert "; 1 worker lost (warning)" in done.stdout
    skipped = [case.find("skipped") for case in ET.parse(done.out / "gate.xml").getroot().iter("testcase")]
    assert [element.get("message") for element in skipped if element is not None] == [lost["message"]]
