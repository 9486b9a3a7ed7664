"""Generator health end to end, in real locust processes on loopback.

The gate: a task that computes 400 ms between 10 ms waits makes every firing of a 50 ms hub timer at least
350 ms late on any machine, so a 100 ms limit on the hub lag median fails (exit 3, naming the generator row); the
same rule passes a quiet run. The median, not p99: on a loaded machine the scheduler alone can stall a quiet
process for hundreds of ms now and then, which p99 of a few seconds' samples would show.

A distributed run (master + 2 workers, web UI on autostart, StatsD to a loopback capture): every worker's
figures reach the web UI tab, StatsD gauges and both JSON reports."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from locust_ext.generator import FIGURES
from locust_ext.testing import free_port, locust_command, run_distributed, run_locust
from tests.statsd_support import udp_capture
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "health_busy.py"
TIMEOUT_S = 90
GATE = "rules:\n  - generator: {hub_lag_p50: {acceptable: 100}}\n"
BUSY_MS = "400"


def gate_run(tmp_path: Path, busy_ms: str) -> tuple[int, str, dict[str, Any], dict[str, Any]]:
    (tmp_path / "gate.yaml").write_text(GATE)
    report, health = tmp_path / "gate.json", tmp_path / "health.json"
    command = locust_command(
        LOCUSTFILE, "--headless", "-u", "1", "-r", "1", "-t", "4s", "--thresholds", str(tmp_path / "gate.yaml"),
        "--thresholds-report", str(report), "--generator-report", str(health),
    )  # fmt: skip
    done = run_locust(command, env={"HEALTH_BUSY_MS": busy_ms}, timeout=TIMEOUT_S)
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text()), json.loads(health.read_text())


def test_a_cpu_bound_task_pushes_hub_lag_over_its_limit_and_fails_the_gate(tmp_path: Path) -> None:
    code, output, document, health = gate_run(tmp_path, BUSY_MS)
    assert code == 3, output[-3000:]
    (result,) = document["results"]
    assert (result["rule"], result["entry"], result["stat"], result["outcome"]) == (
        "generator", "generator local", "hub_lag_p50", "fail",
    )  # fmt: skip
    assert result["observed"] > 100 and result["unit"] == "ms"
    assert document["run"]["generator"]["local"]["hub_lag_p50"] == result["observed"]
    assert health["processes"]["local"]["run"]["hub_lag_p50"] == result["observed"]
    assert "generator local" in output and "Generator health local: hub lag" in output
    assert "gevent hub is late by" in output  # the live warning


def test_a_quiet_run_passes_the_same_rule(tmp_path: Path) -> None:
    code, output, document, health = gate_run(tmp_path, "0")
    assert code == 0, output[-3000:]
    (result,) = document["results"]
    assert (result["entry"], result["outcome"]) == ("generator local", "pass")
    assert set(health["processes"]["local"]["run"]) == set(FIGURES)
    assert health["processes"]["local"]["samples"] > 0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _web_tab(base: str, deadline: float) -> list[dict[str, str]]:
    """The Generator tab's rows once both workers are in it (polled while the run goes)."""
    while time.monotonic() < deadline:
        try:
            stats = _get(base + "/stats/requests")
            rows = next(item["data"] for item in stats.get("extended_stats", []) if item["key"] == "generator_health")
            if sum(row["process"].startswith("worker-") for row in rows) == 2:
                return rows
        except (OSError, StopIteration):
            pass
        time.sleep(0.3)
    raise AssertionError("the Generator tab never listed both workers")


def test_a_distributed_run_shows_every_worker_in_the_web_ui_statsd_and_reports(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text(GATE)
    port = free_port()
    health, report = tmp_path / "health.json", tmp_path / "gate.json"
    with udp_capture() as capture, ThreadPoolExecutor(1) as pool:
        master_args = [
            "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "--autoquit", "0",
            "-u", "4", "-r", "4", "-t", "8s", "--thresholds", str(tmp_path / "gate.yaml"),
            "--thresholds-report", str(report), "--generator-report", str(health),
            "--statsd-host", "127.0.0.1", "--statsd-port", str(capture.port),
        ]  # fmt: skip
        tab = pool.submit(_web_tab, f"http://127.0.0.1:{port}", time.monotonic() + TIMEOUT_S)
        done = run_distributed(LOCUSTFILE, master_args, env={"HEALTH_BUSY_MS": "0"}, timeout=TIMEOUT_S)
        rows = tab.result(timeout=TIMEOUT_S)
        lines = capture.lines()
    assert done.returncode == 0, done.stderr[-3000:]
    assert [row["process"].split(" ")[0] for row in rows] == ["all", "worker-0", "worker-1"]
    document = json.loads(health.read_text())
    assert sorted(document["processes"]) == ["worker-0", "worker-1"]
    workers = document["processes"].values()
    assert all(process["client_id"] and process["samples"] > 0 for process in workers)
    total = document["total"]["run"]
    assert total["memory_rss"] == sum(p["run"]["memory_rss"] for p in workers)
    assert total["hub_lag_p99"] == max(p["run"]["hub_lag_p99"] for p in workers)
    graded = json.loads(report.read_text())
    assert sorted(r["entry"] for r in graded["results"]) == ["generator worker-0", "generator worker-1"]
    assert sorted(graded["run"]["generator"]) == ["worker-0", "worker-1"]
    gauges = {line.name for line in lines if line.type == "g"}
    for name in ("hub_lag_p99_ms", "cpu_percent", "memory_rss_mib", "open_files", "greenlets"):
        assert f"locust.generator.{name}" in gauges
        assert {f"locust.generator.worker-{index}.{name}" for index in (0, 1)} <= gauges
    assert "Generator health (all processes)" in done.stderr and "Generator health worker-1" in done.stderr
