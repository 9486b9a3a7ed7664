"""What delivery accounting costs: deliveries/s received with DeliveryTracking vs the same messages as plain pushes.

``python bench/ws_deliveries.py [--listeners 100] [--publishers 16] [--seconds 4] [--rounds 5]`` (repository root)

The reference WebSocket backend (rooms) runs pinned to one CPU; this process, the load generator, to the other.
Same run shape for both variants: ``--listeners`` users join one room, ``--publishers`` users (not in the room)
publish to it as fast as their acknowledgements come back, so every publication fans out to every listener:

(plain)     listeners without ``deliveries``: each message is recorded as a push (``push message``)
(tracking)  listeners with ``DeliveryTracking`` (id, sent_at, name, publisher, sequence: order and duplicate
            checks), publishers announce each publication with ``expect_deliveries``, and the local reconciler
            matches them every second, as in a real run

The variants alternate ``--rounds`` times in one run (plain, tracking, plain, ...), each a fresh Locust
Environment counting ``--seconds`` after every user connected and joined. Printed: deliveries/s (wall clock),
deliveries per CPU second of this process, the server's CPU share, and the ratios tracking / plain (medians).
Deliveries per load-generator CPU second is the accounting cost itself; deliveries/s also depends on how much
CPU the machine gives the two processes (on a shared, busy machine it swings from round to round).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

import gevent
from _common import LOAD_CPU, SERVER_CPU, can_pin, cpu_seconds, placement, start_server
from locust import User, constant, task
from locust.env import Environment

from locust_ext import DeliveryTracking, WebSocketUser
from locust_ext.websocket.deliveries import DELIVERY_TYPE
from locust_ext.websocket.deliveries_reconcile import DeliveryAccounting
from locust_ext.websocket.events import PUSH_TYPE

ROOM = "bench"
TRACKING = DeliveryTracking(
    message_id=lambda m: m.get("msg_id") if m.get("type") == "message" else None,
    sent_at=lambda m: m["sent_at"],
    name=lambda m: "deliver",
    publisher=lambda m: m["from"],
    sequence=lambda m: m["seq"],
)


@dataclass
class Round:
    deliveries: int
    seconds: float
    cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.deliveries / self.cpu if self.cpu else float("nan")


def user_classes(url: str, tracking: bool, listeners: int, publishers: int) -> list[type[User]]:
    class Listener(WebSocketUser):
        host = url
        fixed_count = listeners
        wait_time = constant(1.0)
        deliveries = TRACKING if tracking else None

        def on_start(self) -> None:
            super().on_start()
            self.ws.request({"type": "join", "room": ROOM}, name="join")

        @task
        def idle(self) -> None:
            pass

    class Publisher(WebSocketUser):
        host = url
        fixed_count = publishers
        wait_time = constant(0)

        @task
        def publish(self) -> None:
            ack = self.ws.request({"type": "publish", "room": ROOM, "payload": "p" * 32}, name="publish")
            if tracking:
                self.ws.expect_deliveries(ack["msg_id"], ack["recipients"], name="deliver")

    return [Listener, Publisher]


def one_round(url: str, server_pid: int, listeners: int, publishers: int, seconds: float, tracking: bool) -> Round:
    environment = Environment(user_classes=user_classes(url, tracking, listeners, publishers), host=url)
    runner = environment.create_local_runner()
    DeliveryAccounting(environment)
    row = ("deliver", DELIVERY_TYPE) if tracking else ("push message", PUSH_TYPE)
    runner.start(listeners + publishers, spawn_rate=listeners + publishers)
    # Counted once every listener joined: from then on every publication reaches every listener.
    deadline = time.monotonic() + 60
    while environment.stats.get("join", "websocket").num_requests < listeners and time.monotonic() < deadline:
        gevent.sleep(0.05)
    gevent.sleep(0.5)
    start_count = environment.stats.get(*row).num_requests
    started, cpu0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
    gevent.sleep(seconds)
    count = environment.stats.get(*row).num_requests - start_count
    elapsed = time.perf_counter() - started
    cpu, server = time.process_time() - cpu0, cpu_seconds(server_pid) - server0
    runner.quit()
    return Round(count, elapsed, cpu, server / elapsed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if can_pin():
        os.sched_setaffinity(0, {LOAD_CPU})
    command = [sys.executable, "-m", "backends.websocket_server", "--host", "127.0.0.1", "--port", "0"]
    server = start_server("websocket backend", command, cpu=SERVER_CPU)
    results: dict[bool, list[Round]] = {False: [], True: []}
    try:
        for _ in range(args.rounds):
            for tracking in (False, True):
                results[tracking].append(
                    one_round(
                        f"ws://{server.address}",
                        server.process.pid,
                        args.listeners,
                        args.publishers,
                        args.seconds,
                        tracking,
                    )
                )
    finally:
        server.stop()
    print(f"{args.listeners} listeners in one room, {args.publishers} publishers, {args.rounds} x {args.seconds:g} s")
    print(f"placement: {placement()}")
    medians = {}
    for tracking, label in ((False, "plain pushes"), (True, "tracking")):
        rounds = results[tracking]
        rate = statistics.median(r.rate for r in rounds)
        per_cpu = statistics.median(r.per_cpu_second for r in rounds)
        server_cpu = statistics.median(r.server_cpu for r in rounds)
        medians[tracking] = (rate, per_cpu)
        rates = ", ".join(f"{r.rate:,.0f}" for r in rounds)
        print(
            f"  {label:<13} {rate:>9,.0f} deliveries/s ({rates}); {per_cpu:>9,.0f} per load-generator CPU second; "
            f"server CPU {server_cpu:.0%}"
        )
    (plain_rate, plain_cpu), (tracked_rate, tracked_cpu) = medians[False], medians[True]
    print(
        f"  ratio tracking / plain: {tracked_cpu / plain_cpu:.2f}x deliveries per CPU second (target >= 0.9), "
        f"{tracked_rate / plain_rate:.2f}x deliveries/s"
    )


if __name__ == "__main__":
    main()
