"""A quitting master waits for its workers' final reports (locust_ext.final_reports): users whose stop takes
1.5 s, three times Locust's own half-second wait, still have every event they recorded on the master, with
their known sub-millisecond response time in the master's buckets."""

from __future__ import annotations

from pathlib import Path

import pytest

from locust_ext.testing import free_port, json_stats, locust_command, run_distributed, run_locust
from tests.support import FOR_TESTS, REPO_ROOT

LOCUSTFILE = FOR_TESTS / "slow_stop.py"
USERS = 4
ARGS = ["--headless", "-u", str(USERS), "-r", str(USERS), "-t", "5s", "--stop-timeout", "5"]
ENV = {"PYTHONPATH": str(REPO_ROOT)}


@pytest.mark.parametrize("mode", ["processes", "workers"])
def test_the_master_keeps_every_final_report(mode: str, tmp_path: Path) -> None:
    stats = tmp_path / "stats"
    if mode == "processes":
        port = str(free_port())  # not Locust's default 5557: other runs on the machine may hold it
        command = locust_command(
            LOCUSTFILE, *ARGS, "--processes", "2", "--master-bind-port", port, "--master-port", port,
            "--json-file", str(stats),
        )  # fmt: skip
        done = run_locust(command, env=ENV, timeout=90)
    else:
        done = run_distributed(LOCUSTFILE, [*ARGS, "--json-file", str(stats)], env=ENV, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {entry["name"]: entry for entry in json_stats(stats)}
    # One final event per user started (a loaded machine may not start all of them before the run ends), each
    # sent after the user's 1.5 s stop: all of them reached the master.
    assert "start" in rows, f"no user started: rows {sorted(rows)}\n{done.stderr[-3000:]}"
    started = rows["start"]["num_requests"]
    assert rows.get("final", {}).get("num_requests") == started > 0, done.stderr[-3000:]
    # Known 0.347 ms response times arrive as the 0.35 bucket (sub-millisecond keys survive the trip).
    for name in ("start", "tick", "final"):
        assert rows[name]["response_times"] == {"0.35": rows[name]["num_requests"]}
