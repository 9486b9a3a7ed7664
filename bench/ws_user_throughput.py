"""Echo round trips per second on one client core: raw websocket-client under gevent vs WebSocketUser in Locust
vs Artillery's ws engine.

``python -m bench.ws_user_throughput [--users 20] [--seconds 5] [--no-artillery]`` (repository root)

The server is a Node ``ws`` echo server (install once with
``npm install --prefix .cache/ws-server --no-audit --no-fund ws@8``), pinned to one CPU; each client runs in
its own process pinned to the other, one after the other, same concurrency, same JSON echo message:

(a) a raw loop: N greenlets, each sending a message and reading its reply with websocket-client
(b) WebSocketUser in a headless Locust run (LocalRunner, wait_time 0), counted with environment.stats
(c) Artillery's ws engine (artillery@ARTILLERY_VERSION, installed into .cache/artillery on first use; skipped
    with a note when node/npm or the install is unavailable): N virtual users, each connected once, then
    sending the echo message with ``match`` on its ``id``, which makes Artillery wait for the reply before
    the next send; counted with ``websocket.messages_received`` from Artillery's JSON report

Printed side by side as round trips per second and as ratios to (a) and (c).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

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

# Artillery
#: The newest Artillery that runs on Node 20 (2.0.22 and later need Node >= 22.13).
ARTILLERY_VERSION = "2.0.21"
ARTILLERY_PREFIX = REPO_ROOT / ".cache" / "artillery"
ARTILLERY_PACKAGE = ARTILLERY_PREFIX / "node_modules" / "artillery"
#: Seconds from a worker's first virtual user to the start of its window: every user connects in the first.
ARTILLERY_RAMP_S = 2.0
#: Artillery's reply timeout (s). Every awaited send leaves a timer of this length behind, which holds the
#: process open after the run, so keep it short: loopback replies take well under a millisecond.
ARTILLERY_REPLY_TIMEOUT_S = 2
#: Preloaded into Artillery's node: 2.0.21 sends a "test run" event to PostHog even with
#: ARTILLERY_DISABLE_TELEMETRY set; its telemetry falls back to a no-op when posthog-node cannot be loaded,
#: which keeps every run on 127.0.0.1.
ARTILLERY_OFFLINE_JS = """
const Module = require('module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'posthog-node') throw new Error('posthog-node is disabled by bench/ws_user_throughput.py');
  return resolve.call(this, request, ...rest);
};
"""
#: Artillery processor: each worker thread opens its window ARTILLERY_RAMP_S after its first virtual user
#: connected and closes it WINDOW_MS later; users send only inside it (a reply in flight at its end still
#: arrives and is counted, as in (a)). Artillery runs os.cpus() - 1 worker threads, one on two CPUs; with
#: more, their windows start within milliseconds of each other, all on the one pinned CPU.
ARTILLERY_WINDOW_JS = """
'use strict';
const RAMP_MS = %(ramp_ms)d;
const WINDOW_MS = %(window_ms)d;
let windowStart = null;

function waitForWindow(context, events, next) {
  const now = Date.now();
  if (windowStart === null) windowStart = now + RAMP_MS;
  if (now > windowStart) events.emit('counter', 'bench.late_vusers', 1);
  context.vars.windowEnd = windowStart + WINDOW_MS;
  setTimeout(next, Math.max(0, windowStart - now));
}

function inWindow(context, next) {
  return next(Date.now() < context.vars.windowEnd);
}

module.exports = { waitForWindow, inWindow };
"""


class ArtilleryUnavailable(Exception):
    """(c) cannot run here; the message says why."""


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


def installed_artillery() -> str | None:
    """The version of Artillery in .cache/artillery, if any."""
    try:
        version = json.loads((ARTILLERY_PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def tree_megabytes(root: Path) -> float:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink()) / 1e6


def artillery_command() -> list[str]:
    """The command that runs Artillery's CLI, installing the pinned version first when it is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise ArtilleryUnavailable("node/npm not found")
    if installed_artillery() != ARTILLERY_VERSION:
        print(f"installing artillery@{ARTILLERY_VERSION} into {ARTILLERY_PREFIX.relative_to(REPO_ROOT)} ...")
        # No install scripts: the ws engine needs none, and they would fetch Playwright's browsers.
        install = [
            npm, "install", "--prefix", str(ARTILLERY_PREFIX), "--no-audit", "--no-fund", "--ignore-scripts",
            f"artillery@{ARTILLERY_VERSION}",
        ]  # fmt: skip
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        started = time.perf_counter()
        try:
            done = subprocess.run(install, capture_output=True, text=True, timeout=600, env=env, check=False)
        except subprocess.TimeoutExpired as error:
            raise ArtilleryUnavailable("npm install did not finish in 600 s") from error
        if done.returncode != 0 or installed_artillery() != ARTILLERY_VERSION:
            raise ArtilleryUnavailable(f"npm install failed: {done.stderr.strip()[-300:]}")
        print(
            f"installed artillery@{ARTILLERY_VERSION} in {time.perf_counter() - started:.0f} s "
            f"({tree_megabytes(ARTILLERY_PREFIX):.0f} MB of files)"
        )
    return [node, "--require", "./offline.js", str(ARTILLERY_PACKAGE / "bin" / "run"), "run"]


def artillery_scenario(url: str, users: int) -> dict[str, Any]:
    """N virtual users on one connection each, sending the echo message and awaiting the reply with its id."""
    message = {
        "type": MESSAGE["type"],
        "id": "{{ $loopCount }}",
        "payload": MESSAGE["payload"],
    }  # Artillery's template turns the loop index into a number
    return {
        "config": {
            "target": url,
            "processor": "./window.js",
            "timeout": ARTILLERY_REPLY_TIMEOUT_S,
            "phases": [{"duration": 1, "arrivalCount": users}],
        },
        "scenarios": [
            {
                "name": "echo",
                "engine": "ws",
                "flow": [
                    {"function": "waitForWindow"},
                    {
                        "loop": [
                            {"send": {"payload": message, "match": {"json": "$.id", "value": "{{ $loopCount }}"}}}
                        ],
                        "whileTrue": "inWindow",
                    },
                ],
            }
        ],
    }


def artillery_round(command: list[str], url: str, users: int, seconds: float) -> int:
    """(c): one pinned Artillery run; returns the echo replies it received inside the window (its own count)."""
    with tempfile.TemporaryDirectory(prefix="ws-bench-artillery-") as directory:
        folder = Path(directory)
        (folder / "offline.js").write_text(ARTILLERY_OFFLINE_JS)
        window = {"ramp_ms": ARTILLERY_RAMP_S * 1000, "window_ms": seconds * 1000}
        (folder / "window.js").write_text(ARTILLERY_WINDOW_JS % window)
        (folder / "echo.yml").write_text(yaml.safe_dump(artillery_scenario(url, users), sort_keys=False))
        pinned = ["taskset", "-c", str(CLIENT_CPU), *command, "--output", "report.json", "echo.yml"]
        env = {**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true"}
        try:
            done = subprocess.run(
                pinned, cwd=folder, capture_output=True, text=True, env=env, timeout=seconds + 120, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise ArtilleryUnavailable(f"artillery run did not finish in {seconds + 120:g} s") from error
        report = folder / "report.json"
        if done.returncode != 0 or not report.exists():
            output = (done.stderr.strip() or done.stdout.strip())[-500:]
            raise ArtilleryUnavailable(f"artillery run exited with {done.returncode}: {output}")
        counters: dict[str, int] = json.loads(report.read_text())["aggregate"]["counters"]
    received = counters.get("websocket.messages_received", 0)
    trouble = {name: count for name, count in counters.items() if name.startswith("errors.")}
    trouble.update({name: counters[name] for name in ("vusers.failed", "bench.late_vusers") if counters.get(name)})
    if trouble:
        print(f"note: (c) Artillery reported {trouble}")
    if received == 0:
        raise ArtilleryUnavailable(f"artillery received no replies: {counters}")
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-artillery", action="store_true", help="leave out (c)")
    parser.add_argument("--child", choices=("raw", "locust"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = raw_loop if args.child == "raw" else websocket_user
        print(measure(args.url, args.users, args.seconds))
        return
    labels = {
        "raw": "(a) raw websocket-client + gevent",
        "locust": "(b) WebSocketUser, headless Locust",
        "artillery": f"(c) Artillery {ARTILLERY_VERSION} ws engine",
    }
    artillery: list[str] | None = None
    if args.no_artillery:
        del labels["artillery"]
    else:
        try:
            artillery = artillery_command()
        except ArtilleryUnavailable as error:
            print(f"note: skipping (c) Artillery: {error}")
            del labels["artillery"]
    server, url = start_server()
    samples: dict[str, list[int]] = {kind: [] for kind in labels}
    try:
        for _ in range(args.rounds):  # alternating rounds, so a noisy neighbour hits all sides alike
            for kind in list(labels):
                if kind != "artillery":
                    samples[kind].append(run_child(kind, url, args.users, args.seconds))
                    continue
                assert artillery is not None
                try:
                    samples[kind].append(artillery_round(artillery, url, args.users, args.seconds))
                except ArtilleryUnavailable as error:
                    print(f"note: dropping (c) Artillery: {error}")
                    del labels[kind], samples[kind]
    finally:
        server.terminate()
        server.wait(10)
    rates = {kind: statistics.median(counts) / args.seconds for kind, counts in samples.items()}
    print(f"{args.users} connections, median of {args.rounds} alternating {args.seconds:g} s rounds; "
          f"client on CPU {CLIENT_CPU}, server on CPU {SERVER_CPU}")  # fmt: skip
    for kind, label in labels.items():
        low, high = (min(samples[kind]) / args.seconds, max(samples[kind]) / args.seconds)
        print(
            f"{label:<38} {rates[kind]:>9.0f} round trips/s  {rates[kind] / rates['raw']:>5.2f} x (a)"
            f"  (rounds {low:.0f}-{high:.0f})"
        )
    if "artillery" in rates:
        print(f"(b) / (c): {rates['locust'] / rates['artillery']:.2f}")
        print(
            "(c) is Artillery's own websocket.messages_received count over the window: echo replies, each awaited "
            "(send with match on the reply's id) before that virtual user's next send, so one in flight per user, "
            "as in (a) and (b)."
        )


if __name__ == "__main__":
    main()
