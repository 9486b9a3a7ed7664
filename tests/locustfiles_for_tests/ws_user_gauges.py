"""WebSocket users that each drop their connection once, then echo; the master samples the connection gauges.

Env WS_GAUGES_OUT: where the master writes the highest published ``websocket.*`` gauges it saw (JSON).
"""

from __future__ import annotations

import json
import os
from typing import Any

import gevent
from locust import constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from locust_ext import ReconnectPolicy, WebSocketUser
from locust_ext.statsd import published_gauges

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


def sample(environment: Environment) -> None:
    while True:
        for name, value in published_gauges(environment).items():
            if name.startswith("websocket."):
                highest[name] = max(highest.get(name, 0.0), value)
        gevent.sleep(SAMPLE_INTERVAL_S)


@events.init.add_listener
def start_sampling(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(sample, environment)


@events.quitting.add_listener
def write_highest(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        with open(os.environ["WS_GAUGES_OUT"], "w") as out:
            json.dump(highest, out)
