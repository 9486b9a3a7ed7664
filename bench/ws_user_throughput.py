"""Echo round trips per second on one client core: raw websocket-client under gevent vs WebSocketUser in Locust.

``python -m bench.ws_user_throughput [--users 20] [--seconds 5]`` (repository root)

The server is a Node ``ws`` echo server (install once with
``npm install --prefix .cache/ws-server --no-audit --no-fund ws@8``), pinned to one CPU; each client runs in
its own process pinned to the other, one after the other, same concurrency, same JSON echo message:

(a) a raw loop: N greenlets, each sending a message and reading its reply with websocket-client
(b) WebSocketUser in a headless Locust run (LocalRunner, wait_time 0), counted with environment.stats

Printed side by side as round trips per second and as ratios to (a).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WS_SERVER_MODULES = REPO_ROOT / ".cache" / "ws-server" / "node_modules"
SERVER_CPU = 1
CLIENT_CPU = 0
MESSAGE = {"type": "echo", "payload": "e" * 64}
NODE_ECHO_SERVER = """
const { WebSocketServer } = require('ws');
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
server.on('listening', () => console.log('READY ws 127.0.0.1:' + server.address().port));
server.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
"""


def raw_loop(url: str, users: int, seconds: float) -> int:
    """(a): ``users`` greenlets, each a request/reply loop on its own connection; returns round trips."""
    import gevent
    import locust  # noqa: F401 - gevent patches first, as in a Locust process
    import websocket

    text = json.dumps(MESSAGE)
    done = [0]
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        connection = websocket.create_connection(url, timeout=10)
        while time.perf_counter() < deadline:
            connection.send(text)
            json.loads(connection.recv())
            done[0] += 1
        connection.close()

    gevent.joinall([gevent.spawn(loop) for _ in range(users)], raise_error=True)
    return done[0]


def websocket_user(url: str, users: int, seconds: float) -> int:
    """(b): a headless Locust run of WebSocketUser; returns successful echo round trips from Locust's stats."""
    import gevent
    from locust import constant, task
    from locust.env import Environment

    from locust_ext import WebSocketUser

    class Echo(WebSocketUser):
        wait_time = constant(0)
        host = url

        @task
        def echo(self) -> None:
            self.ws.request(MESSAGE, name="echo")

    environment = Environment(user_classes=[Echo], host=url)
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=users)
    while environment.stats.get("connect", "websocket").num_requests < users:
        gevent.sleep(0.01)
    environment.stats.reset_all()
    gevent.sleep(seconds)
    stats = environment.stats.get("echo", "websocket")
    count = stats.num_requests - stats.num_failures
    runner.quit()
    return count


def start_server() -> tuple[subprocess.Popen[str], str]:
    if not WS_SERVER_MODULES.exists():
        raise SystemExit(f"error: no Node ws server: run npm install --prefix {WS_SERVER_MODULES.parent} ws@8")
    process = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), "node", "-e", NODE_ECHO_SERVER],
        cwd=WS_SERVER_MODULES.parent, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if len(line) != 3 or line[0] != "READY":
        process.kill()
        raise SystemExit(f"error: the Node ws server did not start: {line}")
    return process, f"ws://{line[2]}"


def run_child(kind: str, url: str, users: int, seconds: float) -> int:
    command = [
        "taskset", "-c", str(CLIENT_CPU), sys.executable, "-m", "bench.ws_user_throughput",
        "--child", kind, "--url", url, "--users", str(users), "--seconds", str(seconds),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: {kind} failed: {done.stderr.strip()[-500:]}")
    return int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("raw", "locust"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = raw_loop if args.child == "raw" else websocket_user
        print(measure(args.url, args.users, args.seconds))
        return
    server, url = start_server()
    labels = {"raw": "(a) raw websocket-client + gevent", "locust": "(b) WebSocketUser, headless Locust"}
    samples: dict[str, list[int]] = {kind: [] for kind in labels}
    try:
        for _ in range(args.rounds):  # alternating rounds, so a noisy neighbour hits both sides alike
            for kind in labels:
                samples[kind].append(run_child(kind, url, args.users, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    rates = {kind: statistics.median(counts) / args.seconds for kind, counts in samples.items()}
    print(f"{args.users} connections, median of {args.rounds} alternating {args.seconds:g} s rounds; "
          f"client on CPU {CLIENT_CPU}, server on CPU {SERVER_CPU}")  # fmt: skip
    for kind, label in labels.items():
        print(f"{label:<38} {rates[kind]:>9.0f} round trips/s  {rates[kind] / rates['raw']:>5.2f} x (a)")


if __name__ == "__main__":
    main()
