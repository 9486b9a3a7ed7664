"""The gate inside one process: graded_event for other features (the StatsD mirror), the exit code, and how a
lost worker shows in the web UI tab and the reports."""

from __future__ import annotations

import html
import json
import sys
from dataclasses import asdict

import pytest
from locust import User
from locust.argument_parser import parse_options
from locust.env import Environment

from locust_ext.thresholds import ThresholdGate, Verdict, graded_event, parse_thresholds, render_report
from locust_ext.thresholds.model import LostWorker
from locust_ext.thresholds.reports import console_table
from locust_ext.thresholds.workers import WorkerWatch

GATE = """\
grades: [excellent, good]
rules:
  - name: /svc/Method
    response_time: {stat: max, excellent: 5, good: 50}
  - name: Aggregated
    error_rate: {good: 10}
"""


class Idle(User):
    """Never run: the environment only needs a user class."""


def test_graded_event_reports_every_grading_and_the_gate_sets_the_exit_code() -> None:
    environment = Environment(user_classes=[Idle])
    runner = environment.create_local_runner()
    seen: list[Verdict] = []
    # Subscribing before the gate exists is part of the contract.
    graded_event(environment).add_listener(lambda verdict, environment: seen.append(verdict))
    gate = ThresholdGate(environment, parse_thresholds(GATE, "gate.yaml"))
    for response_time in (3, 20):
        environment.events.request.fire(
            request_type="grpc",
            name="/svc/Method",
            response_time=response_time,
            response_length=0,
            exception=None,
            context={},
        )
    live = gate.grade()
    assert seen == [live] and gate.latest is live and not live.final
    assert [(r.rule, r.grade) for r in live.results] == [("/svc/Method", "good"), ("Aggregated", "good")]

    environment.events.request.fire(
        request_type="grpc",
        name="/svc/Method",
        response_time=80,
        response_length=0,
        exception=RuntimeError("UNAVAILABLE: injected"),
        context={},
    )
    environment.events.quitting.fire(environment=environment)
    final = seen[-1]
    assert final.final and not final.passed
    assert [result.grade for result in final.results] == ["poor", "poor"]
    assert environment.process_exit_code == 3
    runner.quit()


def test_a_lost_worker_is_named_in_the_web_ui_tab_and_every_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The master's WorkerWatch is covered by real runs (test_thresholds_lost_worker); here what a lost worker
    looks like in the tab and the report formats, warning or failing."""
    monkeypatch.setattr(sys, "argv", ["locust"])  # the web UI reads the command line for its extra options
    environment = Environment(user_classes=[Idle], parsed_options=parse_options(args=[]))
    runner = environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 0)
    gate = ThresholdGate(environment, parse_thresholds(GATE, "gate.yaml"), lost_workers_fail=False)
    lost = LostWorker("host_abc", 1, "missing", "2026-01-01T00:00:00+00:00", 4.5, 3)
    gate.workers = WorkerWatch.__new__(WorkerWatch)  # the list a master's watch keeps, without a master
    gate.workers.lost = [lost]
    verdict = gate.grade()
    assert verdict.passed  # only warns
    assert "(index 1) stopped sending heartbeats" in lost.message and "running 3 users" in lost.message
    assert web_ui.app is not None
    stats = web_ui.app.test_client().get("/stats/requests").get_json()
    (tab,) = [item["data"] for item in stats["extended_stats"] if item["key"] == "thresholds"]
    assert tab[0]["rule"] == "lost worker" and tab[0]["row"] == "host_abc" and tab[0]["observed"] == "3"
    assert tab[0]["outcome"] == f"Lost worker (WARN): {lost.message}"
    failing = Verdict(verdict.spec, verdict.results, lost_workers=(lost,))
    assert not failing.passed
    document = json.loads(render_report(failing, None, "json"))
    assert document["lost_workers"] == [{**asdict(lost), "message": lost.message}]
    for fmt in ("markdown", "html", "junit"):
        assert html.escape(lost.message, quote=False) in render_report(failing, None, fmt), fmt
    assert f"Lost worker (FAIL): {lost.message}" in console_table(failing)
    runner.quit()
