"""What the benches share: servers started pinned to a CPU, CPU time from /proc, the grpc-js server, a bench's
own child processes and the window they print, the steady calls/s of a headless Locust run with the CPU use of
load generator and server over that window, and interleaved rounds of the contenders of a comparison.

Servers run as ``taskset -c CPU <command>`` so every thread they ever start stays on that CPU (pinning a
running process with ``sched_setaffinity`` moves only its main thread, not grpc's poller threads). They
announce themselves with the reference backends' ``READY <scheme> <host>:<port>`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# backends/ and loadtest/ are not installed (the distribution ships only locust_ext): run them from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust_ext.testing import parse_ready_line, stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
LOAD_CPU = 0
SERVER_CPU = 1
GRPC_JS_PREFIX = REPO_ROOT / ".cache" / "grpc-js-server"
GRPC_JS_PACKAGES = ("@grpc/grpc-js@1.14.7", "@grpc/proto-loader@0.8.1")
#: Whole seconds a headless Locust run spends spawning, left out of its steady window ...
LOCUST_SPAWN_S = 2
#: ... and how much longer than the counted seconds it runs (spawning, and the last second's stop).
LOCUST_EXTRA_S = 3
SAMPLE_EVERY_S = 0.2


def can_pin() -> bool:
    """True when there are two CPUs to split between load and server, and taskset to do it."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pinned(command: Sequence[str], cpu: int) -> list[str]:
    """``command`` prefixed with ``taskset -c cpu`` (unchanged when pinning is impossible)."""
    return ["taskset", "-c", str(cpu), *command] if can_pin() else list(command)


def placement() -> str:
    if can_pin():
        return f"load on CPU {LOAD_CPU}, server on CPU {SERVER_CPU} (taskset)"
    return "no taskset or one CPU: load and server share the machine (ratios only)"


def python_env() -> dict[str, str]:
    """Environment for Python children: the repository importable, output unbuffered."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Window:
    """Successful calls counted between two Unix times."""

    calls: int
    start: float
    end: float

    @property
    def rate(self) -> float:
        return self.calls / (self.end - self.start)


def start_child(script: str, *args: str) -> subprocess.Popen[str]:
    """``python script *args`` pinned to the load CPU, the repository importable: a bench's own child process,
    which prints its window as its last line of output (:func:`print_window`, read by :func:`child_window`)."""
    return subprocess.Popen(
        pinned([sys.executable, script, *args], LOAD_CPU), cwd=REPO_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=python_env(),
    )  # fmt: skip


def print_window(window: Window) -> None:
    """A child's last line of output: its window, ``{"calls": ..., "start": ..., "end": ...}`` (Unix seconds)."""
    print(json.dumps({"calls": window.calls, "start": window.start, "end": window.end}), flush=True)


def child_window(process: subprocess.Popen[str]) -> Window:
    """Waits for a bench's own child process and returns the window it printed as its last line of output
    (:func:`print_window`)."""
    stdout, stderr = process.communicate(timeout=120)
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the child printed no window: {(stderr or '').strip()[-500:]}")
    return Window(**json.loads(lines[-1]))


@dataclass
class Sample:
    """One measured run: calls/s over its window and the CPU shares over the same window."""

    calls_per_s: float
    load_cpu: float
    server_cpu: float


@dataclass
class Contender:
    """One row of a comparison: how to start a run against a target (target, users, seconds), how to read its
    counted window, and the samples of its rounds."""

    key: str
    label: str
    run: Callable[[str, int, float], subprocess.Popen[str]]
    window: Callable[[subprocess.Popen[str]], Window]
    samples: list[Sample] = field(default_factory=list)

    def median(self, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(sample) for sample in self.samples)

    def per_s(self) -> float:
        return self.median(lambda s: s.calls_per_s)

    def per_cpu_s(self) -> float:
        return self.median(lambda s: s.calls_per_s / s.load_cpu)


def start_locust(
    locustfile: Path, user_class: str, target: str, users: int, seconds: float, json_stem: Path, *args: str
) -> subprocess.Popen[str]:
    """A headless Locust run pinned to the load CPU: ``users`` at once, ``seconds`` counted (see
    :func:`locust_window`), its report in ``json_stem``.json; ``args`` are more Locust flags."""
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary"]
    command += ["-u", str(users), "-r", str(users), "-t", f"{seconds + LOCUST_EXTRA_S:g}s", "--host", target]
    command += ["--json-file", str(json_stem), "--loglevel", "WARNING", *args, user_class]
    return subprocess.Popen(
        pinned(command, LOAD_CPU), cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def locust_window(
    json_stem: Path, request_type: str | None = None, per_call: int = 1
) -> Callable[[subprocess.Popen[str]], Window]:
    """Waits for a run of :func:`start_locust` and counts its successful calls in the steady whole seconds
    (after spawning, before the last second's stop), from the per-second counts of its ``--json-file``
    report, which is then removed: every row, or only those of ``request_type`` (derived rows left out),
    each call counted ``per_call`` times (messages per streaming call)."""

    def window(process: subprocess.Popen[str]) -> Window:
        _, stderr = process.communicate(timeout=120)
        return _steady_window(json_stem, stderr, request_type, per_call)

    return window


def _steady_window(json_stem: Path, stderr: str, request_type: str | None, per_call: int) -> Window:
    json_file = json_stem.with_suffix(".json")
    if not json_file.exists():
        raise RuntimeError(f"locust wrote no {json_file.name}: {stderr.strip()[-500:]}")
    entries = [e for e in json.loads(json_file.read_text()) if request_type is None or e["method"] == request_type]
    json_file.unlink()
    per_second: dict[int, int] = {}
    for entry in entries:
        failed = entry["num_fail_per_sec"]
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(second)] = per_second.get(int(second), 0) + count - failed.get(second, 0)
    seconds = sorted(per_second)[LOCUST_SPAWN_S:-1]
    if not seconds:
        raise RuntimeError(f"locust recorded too few seconds: {stderr.strip()[-500:]}")
    return Window(sum(per_second[s] for s in seconds) * per_call, seconds[0], seconds[-1] + 1)


@dataclass
class Server:
    """A pinned server process and where it listens."""

    name: str
    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        stop_process(self.process, timeout)


class CpuSampler(threading.Thread):
    """Samples (Unix time, server CPU s, load-generator CPU s) until the load generator exits."""

    def __init__(self, server: Server, load: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.server, self.load = server, load
        self.samples: list[tuple[float, float, float]] = []

    def run(self) -> None:
        while self.load.poll() is None:
            try:
                self.samples.append((time.time(), self.server.cpu_seconds(), cpu_seconds(self.load.pid)))
            except (OSError, IndexError):  # the load generator exited between poll() and the read
                return
            time.sleep(SAMPLE_EVERY_S)

    def shares(self, window: Window) -> tuple[float, float]:
        """(server, load generator) CPU share over the samples inside ``window``."""
        inside = [s for s in self.samples if window.start <= s[0] <= window.end]
        if len(inside) < 2:
            return float("nan"), float("nan")
        (t0, server0, load0), (t1, server1, load1) = inside[0], inside[-1]
        return (server1 - server0) / (t1 - t0), (load1 - load0) / (t1 - t0)


def measure(
    label: str, server: Server, process: subprocess.Popen[str], window: Callable[[subprocess.Popen[str]], Window]
) -> Sample:
    """Waits for a load-generator ``process`` to count its ``window`` while sampling both CPUs; always reaped."""
    sampler = CpuSampler(server, process)
    sampler.start()
    try:
        counted = window(process)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    sampler.join(5)
    if process.returncode not in (0, 1):  # Locust exits 1 when calls cut short at the stop failed
        raise RuntimeError(f"{label}: exit code {process.returncode}")
    server_cpu, load_cpu = sampler.shares(counted)
    return Sample(counted.rate, load_cpu, server_cpu)


def run_rounds(
    contenders: list[Contender],
    server: Server,
    target: str,
    rounds: int,
    seconds: float,
    users: int,
    unit: str = "per s",
    droppable: tuple[str, ...] = (),
    drop_on: tuple[type[Exception], ...] = (RuntimeError,),
) -> None:
    """Interleaved rounds (each round starts one contender later) against one ``server`` at ``target``, which is
    stopped at the end; a contender of ``droppable`` that fails with ``drop_on`` is dropped with a note, the
    others go on."""
    try:
        for round_index in range(rounds):
            shift = round_index % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                process = contender.run(target, users, seconds)
                try:
                    contender.samples.append(measure(contender.label, server, process, contender.window))
                except drop_on as error:
                    if contender.key not in droppable:
                        raise
                    print(f"note: dropping ({contender.key}) {contender.label}: {error}")
                    contenders.remove(contender)
            rates = ", ".join(f"{c.key}={c.samples[-1].calls_per_s:,.0f}" for c in contenders)
            print(f"  round {round_index + 1}/{rounds} {unit}: {rates}", flush=True)
    finally:
        server.stop()


def _ready_line(stream: IO[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        return stream.readline() if selector.select(timeout) else ""


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def start_server(
    name: str, command: Sequence[str], *, cpu: int = SERVER_CPU, env: dict[str, str] | None = None, timeout: float = 30
) -> Server:
    """Start ``command`` pinned to ``cpu`` and wait for its READY line; the caller must stop it."""
    process = subprocess.Popen(
        pinned(command, cpu),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or python_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    line = _ready_line(process.stdout, timeout)
    ready = parse_ready_line(line.strip())
    if ready is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"{name}: {' '.join(command)} did not start: {line!r} {process.stderr.read().strip()}")
    # Nobody reads the pipes from here on; keep them from filling up and blocking the server.
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
    return Server(name, process, ready[1], ready[2])


def reference_backend_command() -> list[str]:
    return [sys.executable, "-m", "backends.grpc_server", "--host", "127.0.0.1", "--port", "0"]


def grpc_js_command() -> tuple[list[str], dict[str, str]] | None:
    """(command, env) for bench/grpc_js_server.js, installing its npm packages once; None (and why) if unavailable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("note: node/npm not found; skipping the @grpc/grpc-js server")
        return None
    modules = GRPC_JS_PREFIX / "node_modules"
    if not (modules / "@grpc" / "grpc-js").is_dir():
        install = [npm, "install", "--prefix", str(GRPC_JS_PREFIX), "--no-audit", "--no-fund", *GRPC_JS_PACKAGES]
        result = subprocess.run(install, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            print(f"note: npm install failed; skipping the @grpc/grpc-js server: {result.stderr.strip()[-300:]}")
            return None
    script = REPO_ROOT / "bench" / "grpc_js_server.js"
    return [node, str(script), "--host", "127.0.0.1", "--port", "0"], {**os.environ, "NODE_PATH": str(modules)}


def grpc_js_or(name: str, command: list[str]) -> tuple[str, list[str], dict[str, str] | None]:
    """(name, command, env) of the gRPC server a bench measures against: the @grpc/grpc-js server when node is
    installed, else ``command`` (a Python server, no env of its own)."""
    node = grpc_js_command()
    if node is not None:
        return "@grpc/grpc-js (node)", *node
    return name, command, None


def add_round_arguments(
    parser: argparse.ArgumentParser, *, rounds: int, rounds_help: str, users: int, users_help: str
) -> None:
    """``--rounds`` (1-20), ``--seconds`` (2-60, counted per run, default 5) and ``--users`` (1-1000) of a
    comparison in interleaved rounds; :func:`check_round_arguments` checks them once parsed."""
    parser.add_argument("--rounds", type=int, default=rounds, help=f"{rounds_help} (1-20, default {rounds})")
    parser.add_argument("--seconds", type=float, default=5.0, help="counted seconds per run (2-60, default 5)")
    parser.add_argument("--users", type=int, default=users, help=f"{users_help} (1-1000, default {users})")


def check_round_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits through ``parser.error`` when ``--rounds``, ``--seconds`` or ``--users`` is out of range."""
    if not (1 <= args.rounds <= 20 and 2 <= args.seconds <= 60 and 1 <= args.users <= 1000):
        parser.error("--rounds must be 1-20, --seconds 2-60, --users 1-1000")
