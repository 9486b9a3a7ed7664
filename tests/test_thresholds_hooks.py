"""The gate inside one process: graded_event for other features (the StatsD mirror), and the exit code."""

from __future__ import annotations

from locust import User
from locust.env import Environment

from locust_ext.thresholds import ThresholdGate, Verdict, graded_event, parse_thresholds

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
