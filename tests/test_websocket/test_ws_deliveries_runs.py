"""Delivery accounting in real Locust runs against the backend's injected drops, duplicates and reorders: the
reported lost / duplicate / out-of-order counts equal the backend's counters, locally and with a master and two
workers where every publication's publisher and recipients sit on different workers."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backends.kit import running_backend
from locust_ext.testing import (
    Backend,
    free_port,
    json_stats,
    locust_command,
    run_distributed,
    run_locust,
    running_locust,
)
from tests.support import REPO_ROOT
from tests.ws_sessions import server_stats

RUN_TIMEOUT_S = 90
ENV = {"PYTHONPATH": str(REPO_ROOT)}
FAULTS = ["--delivery-drop-rate", "0.05", "--delivery-duplicate-rate", "0.05", "--delivery-reorder-rate", "0.05"]
#: Publishers send a bounded number of messages, all well before the run stops (nothing left unsettled).
CHAT = ["--chat-rooms", "1", "--chat-rate", "5", "--chat-messages", "10", "--delivery-grace", "2"]
#: Only users on worker 0 publish; worker 1's users only listen, so every publication crosses workers.
CROSS_WORKER = """
import chat
from locust.runners import WorkerRunner


class CrossWorkerChat(chat.ChatUser):
    def on_start(self):
        super().on_start()
        runner = self.environment.runner
        self.publisher = self.publisher and isinstance(runner, WorkerRunner) and runner.worker_index == 0
"""


@pytest.fixture(scope="module")
def faulty_backend() -> Any:
    with running_backend("websocket", FAULTS) as backend:
        yield backend


def staged(directory: Path) -> Path:
    for name in ("chat.py", "_unshadow.py"):
        shutil.copy(REPO_ROOT / "locustfiles" / name, directory / name)
    (directory / "cross_worker_chat.py").write_text(CROSS_WORKER)
    return directory


def check_against_backend(summary: dict[str, Any], report: Path, backend: Backend, stderr: str) -> None:
    tallies = server_stats(backend)
    assert summary["published"] == tallies["published"] > 0, stderr[-3000:]
    assert summary["due"] == tallies["deliveries_due"]
    assert summary["lost"] == tallies["deliveries_dropped"] + tallies["deliveries_undelivered"] > 0
    assert summary["duplicate"] == tallies["deliveries_duplicated"] > 0
    assert summary["out_of_order"] == tallies["deliveries_reordered"] > 0
    assert summary["delivered"] == tallies["deliveries_sent"] - tallies["deliveries_duplicated"]
    assert (summary["unsettled"], summary["late"], summary["unannounced"], summary["pending"]) == (0, 0, 0, 0)
    assert summary["latency_p50_ms"] is not None
    # Locust's own table agrees: one event per arrival and per lost delivery on the row, the failures its three
    # kinds; Aggregated counts operations only (deliveries are derived).
    rows = {(row["method"], row["name"]): row for row in json_stats(report)}
    deliver = rows[("delivery", "deliver")]
    assert deliver["num_failures"] == summary["lost"] + summary["duplicate"] + summary["out_of_order"]
    assert deliver["num_requests"] == summary["delivered"] + summary["duplicate"] + summary["lost"]
    assert rows[("websocket", "publish")]["num_requests"] == summary["published"]
    assert "Deliveries: published" in stderr


def test_local_run_counts_equal_the_backend(faulty_backend: Backend, tmp_path: Path) -> None:
    server_stats(faulty_backend, reset=True)
    directory = staged(tmp_path)
    command = locust_command(
        directory / "chat.py", "--headless", "-u", "12", "-r", "12", "-t", "6s", "--only-summary",
        "--host", faulty_backend.url, *CHAT, "--deliveries-json", str(tmp_path / "deliveries.json"),
        "--json-file", str(tmp_path / "stats"),
    )  # fmt: skip
    done = run_locust(command, env=ENV, timeout=RUN_TIMEOUT_S)
    summary = json.loads((tmp_path / "deliveries.json").read_text())
    check_against_backend(summary, tmp_path / "stats", faulty_backend, done.stderr)


def test_master_and_two_workers_count_exactly_across_workers(faulty_backend: Backend, tmp_path: Path) -> None:
    server_stats(faulty_backend, reset=True)
    directory = staged(tmp_path)
    done = run_distributed(
        directory / "cross_worker_chat.py",
        [
            "--headless", "-u", "12", "-r", "12", "-t", "8s", "--only-summary", "--host", faulty_backend.url,
            *CHAT, "--deliveries-json", str(tmp_path / "deliveries.json"), "--json-file", str(tmp_path / "stats"),
        ],
        env=ENV,
        cwd=directory,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    summary = json.loads((tmp_path / "deliveries.json").read_text())
    check_against_backend(summary, tmp_path / "stats", faulty_backend, done.stderr)
    # Every publication came from worker 0; worker 1's six users, all listeners, were among its recipients once
    # they had joined: more deliveries were due than worker 0's other five users could take.
    tallies = server_stats(faulty_backend)
    assert tallies["deliveries_due"] > 5 * tallies["published"]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_the_web_ui_has_a_deliveries_tab_with_live_numbers(faulty_backend: Backend, tmp_path: Path) -> None:
    directory = staged(tmp_path)
    web = f"http://127.0.0.1:{free_port()}"
    command = locust_command(
        directory / "chat.py", "--web-host", "127.0.0.1", "--web-port", web.rsplit(":", 1)[1], "--autostart",
        "-u", "6", "-r", "6", "-t", "30s", "--host", faulty_backend.url, *CHAT,
    )  # fmt: skip
    with running_locust(command, env=ENV) as locust:
        rows: list[dict[str, Any]] = []
        for _ in range(150):  # until deliveries show: at most 150 polls, 0.1 s apart
            try:
                stats = json.loads(fetch(f"{web}/stats/requests"))
            except OSError:  # not listening yet
                stats = {}
            tables = {table["key"]: table["data"] for table in stats.get("extended_stats", [])}
            rows = tables.get("websocket_deliveries", [])
            if rows and rows[0]["delivered"]:
                break
            time.sleep(0.1)
        page = fetch(web)
        locust.send_signal(signal.SIGTERM)
        locust.wait(30)
    assert rows and rows[0]["delivered"] > 0 and rows[0]["published"] > 0
    assert {"due", "lost", "duplicate", "out_of_order", "unsettled", "latency_p99_ms"} <= set(rows[0])
    template_args = json.loads(page.split("window.templateArgs = ", 1)[1].split("\n", 1)[0])
    assert {"title": "Deliveries", "key": "websocket_deliveries"} in template_args["extended_tabs"]


def test_deliveries_due_when_the_run_stops_are_unsettled_not_lost(faulty_backend: Backend, tmp_path: Path) -> None:
    """Publishing until the stop, with a grace longer than the run: nothing is old enough to be lost."""
    server_stats(faulty_backend, reset=True)
    directory = staged(tmp_path)
    command = locust_command(
        directory / "chat.py", "--headless", "-u", "6", "-r", "6", "-t", "4s", "--only-summary",
        "--host", faulty_backend.url, "--chat-rooms", "1", "--chat-rate", "5", "--delivery-grace", "60",
        "--deliveries-json", str(tmp_path / "deliveries.json"),
    )  # fmt: skip
    done = run_locust(command, env=ENV, timeout=RUN_TIMEOUT_S)
    summary = json.loads((tmp_path / "deliveries.json").read_text())
    tallies = server_stats(faulty_backend)
    assert summary["published"] > 0 and summary["lost"] == 0, done.stderr[-3000:]
    # Every dropped delivery is unsettled, with whatever was still on its way when the users stopped.
    assert summary["unsettled"] >= tallies["deliveries_dropped"] > 0
    # Arrivals of a publication whose publisher was stopped before announcing it are unannounced, not due.
    announced_arrivals = summary["delivered"] - summary["unannounced"] - summary["late"]
    assert announced_arrivals + summary["unsettled"] == summary["due"]
