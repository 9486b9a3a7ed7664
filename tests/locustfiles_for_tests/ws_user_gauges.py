"""WebSocket users that each drop their connection once, then echo; the master samples the connection gauges.

Env WS_GAUGES_OUT: where the master writes the highest ``websocket.*`` gauges it saw and the last ones it
published (JSON ``{"highest": {...}, "final": {...}}``). Env WS_GAUGES_KILL_AFTER_S: worker index 1 kills
itself (SIGKILL: no goodbye, no last report) that many seconds after the test starts.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import gevent
from locust import constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from locust_ext import ReconnectPolicy, WebSocketUser
from locust_ext.run_gauges import published_gauges

SAMPLE_INTERVAL_S = 0.2
highest: dict[str, float] = {}


class DroppingOnce(WebSocketUser):
    wait_time = constant(0.05)
    reconnect = ReconnectPolicy(initial_delay=0.05, max_delay=0.2)

    def on_start(self) -> None:
        super().on_start()
        self.dropped = False

    @task
    def echo(self) -> None:
        if not self.dropped:
            self.dropped = True
            self.ws.request({"type": "echo", "fault": {"drop": True}}, name="drop")
        self.ws.request({"type": "echo", "payload": "x"}, name="echo")


def websocket_gauges(environment: Environment) -> dict[str, float]:
    return {name: value for name, value in published_gauges(environment).items() if name.startswith("websocket.")}


def sample(environment: Environment) -> None:
    while True:
        for name, value in websocket_gauges(environment).items():
            highest[name] = max(highest.get(name, 0.0), value)
        gevent.sleep(SAMPLE_INTERVAL_S)


def write_gauges(environment: Environment, **_: Any) -> None:
    with open(os.environ["WS_GAUGES_OUT"], "w") as out:
        json.dump({"highest": highest, "final": websocket_gauges(environment)}, out)


def kill_worker_one(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) and runner.worker_index == 1:
        gevent.spawn_later(float(os.environ["WS_GAUGES_KILL_AFTER_S"]), os.kill, os.getpid(), signal.SIGKILL)


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        if "WS_GAUGES_KILL_AFTER_S" in os.environ:
            environment.events.test_start.add_listener(kill_worker_one)
        return
    gevent.spawn(sample, environment)
    # Added at init, after locust_ext's own init listener, so it runs after the final publish at quitting.
    environment.events.quitting.add_listener(write_gauges)
