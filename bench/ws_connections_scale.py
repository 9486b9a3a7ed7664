"""Client memory and ramp rate of idle WebSocket connections: WebSocketUser next to a bare Locust user.

``python -m bench.ws_connections_scale [--connections 1000 10000] [--spawn-rate 2000]`` (repository root)

For each connection count, two fresh Locust processes (LocalRunner, one core each via ``taskset``) open that
many idle connections to the reference WebSocket backend (pinned to the other core): (a) a bare ``User``
holding a websocket-client connection opened in ``on_start`` (the floor), (b) ``WebSocketUser`` with its
socket watcher and keepalive pings every 5 s. Each reports resident memory per connection
(RSS growth / connections) and the ramp rate (connections / time from start until all are open). The
benchmark raises its own soft open-file limit to the hard one; the library never does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# backends/ is not installed (the distribution ships only locust_ext): run it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.kit import running_backend

SERVER_CPU = 1
CLIENT_CPU = 0
SETTLE_S = 3.0
#: Longest a ramp may take before the run counts as failed.
RAMP_LIMIT_S = 120.0
KINDS = ("bare", "websocketuser")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def child(kind: str, url: str, connections: int, spawn_rate: float) -> dict[str, Any]:
    """Runs in its own process: open ``connections`` idle users of ``kind`` and measure them."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import gc

    import gevent
    import locust  # noqa: F401 - patches the standard library before sockets are made
    import websocket
    from locust import User, constant, task
    from locust.env import Environment

    from locust_ext import WebSocketUser
    from locust_ext.websocket.gauges import counts_for

    opened = [0]

    class BareUser(User):
        wait_time = constant(3600)
        host = url

        def on_start(self) -> None:
            self.connection = websocket.create_connection(url, timeout=30)
            opened[0] += 1

        def on_stop(self) -> None:
            self.connection.close()

        @task
        def idle(self) -> None:
            pass

    class IdleWebSocketUser(WebSocketUser):
        wait_time = constant(3600)
        host = url
        ping_interval = 5.0

        @task
        def idle(self) -> None:
            pass

    user_class: type[User] = BareUser if kind == "bare" else IdleWebSocketUser
    environment = Environment(user_classes=[user_class], host=url)
    failures = [0]
    environment.events.request.add_listener(
        lambda exception=None, **_: failures.__setitem__(0, failures[0] + (exception is not None))
    )
    counts = counts_for(environment)
    runner = environment.create_local_runner()
    gc.collect()
    gevent.sleep(0.5)
    before = rss_bytes()

    def open_now() -> int:
        return opened[0] if kind == "bare" else counts.open

    started = time.perf_counter()
    runner.start(connections, spawn_rate=spawn_rate)
    while open_now() < connections and time.perf_counter() - started < RAMP_LIMIT_S:
        gevent.sleep(0.01)
    ramp_s = time.perf_counter() - started
    gevent.sleep(SETTLE_S)
    gc.collect()
    after = rss_bytes()
    result = {
        "kind": kind,
        "connections": open_now(),
        "ramp_s": ramp_s,
        "rss_per_connection": (after - before) / max(1, open_now()),
        "failures": failures[0],
    }
    runner.quit()
    return result


def measure(kind: str, url: str, connections: int, spawn_rate: float) -> dict[str, Any]:
    command = [
        "taskset", "-c", str(CLIENT_CPU), sys.executable, "-m", "bench.ws_connections_scale",
        "--child", kind, "--url", url, "--connections", str(connections), "--spawn-rate", str(spawn_rate),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=RAMP_LIMIT_S + 120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"error: {kind} with {connections} connections failed: {done.stderr.strip()[-500:]}")
    return dict(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--spawn-rate", type=float, default=2000.0)
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.connections[0], args.spawn_rate)), flush=True)
        return
    with running_backend("websocket") as backend:
        os.sched_setaffinity(backend.process.pid, {SERVER_CPU})
        print(f"{'connections':>11} {'user':>14} {'KiB/conn':>9} {'ramp conn/s':>12} {'failures':>9}")
        for connections in args.connections:
            rows = {kind: measure(kind, backend.url, connections, args.spawn_rate) for kind in KINDS}
            for kind, row in rows.items():
                print(
                    f"{row['connections']:>11} {kind:>14} {row['rss_per_connection'] / 1024:>9.1f} "
                    f"{row['connections'] / row['ramp_s']:>12.0f} {row['failures']:>9}"
                )
            ratio = rows["websocketuser"]["rss_per_connection"] / rows["bare"]["rss_per_connection"]
            print(f"{'':>11} {'ratio':>14} {ratio:>9.2f}x memory of the bare user")


if __name__ == "__main__":
    main()
