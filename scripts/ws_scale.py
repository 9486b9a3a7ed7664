"""Many concurrent WebSocket connections from this one machine: ramp up, hold with keepalive, ramp down, measure.

    python scripts/ws_scale.py                        # 5,000 connections, to try it
    python scripts/ws_scale.py --connections 100000   # the IM-gateway target (about 5 minutes)

Starts the reference WebSocket backend with enough ``--workers`` for the connections (each process under its
hard open-file limit), a Locust master and enough workers (started with only ``--worker --master-host``),
ramps up, holds and ramps down (the shape in scripts/ws_scale_users.py) over ``--local-ips`` (8 source
addresses by default: 28,232 ephemeral ports each toward the one backend port). A share of the users echo a
message every few seconds; the others stay idle, kept alive by pings. Every second it samples the backend's
counters and the processes' memory; at the peak it counts the server's established sockets in the kernel
(``ss``). Prints, and writes as JSON: connections at peak (backend counters and kernel), ramp rate, connect
p50/p95, client and server memory and CPU per connection, drops, reconnects, message latency p99. Every process it
started is stopped at the end (also on SIGINT/SIGTERM), and killed when the run outlives ``--budget``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from locust_ext.testing import Backend, free_port, locust_command, start_server  # noqa: E402

SERVER = (sys.executable, "-m", "backends.websocket_server", "--host", "127.0.0.1", "--port", "0")
USERS_FILE = REPO / "scripts" / "ws_scale_users.py"
#: Connections per Locust worker / backend process: under 20,000 open files with room for their own.
PER_PROCESS = 17_000
KIB = 1024


@dataclass
class Sample:
    at: float
    open: int
    opened: int
    client_rss: int
    server_rss: int
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    master_cpu: float = 0.0


@dataclass
class Result:
    connections: int
    locust_workers: int
    backend_workers: int
    local_ips: str
    peak_open_backend: int = 0
    peak_established_kernel: int = 0
    ramp_rate_per_s: float = 0.0
    connect_p50_ms: float | None = None
    connect_p95_ms: float | None = None
    connect_failures: int = 0
    connect_failure_kinds: dict[str, int] = field(default_factory=dict)
    client_rss_peak_mib: float = 0.0
    client_kib_per_connection: float = 0.0
    client_kib_per_connection_over_idle: float = 0.0
    server_rss_peak_mib: float = 0.0
    server_kib_per_connection: float = 0.0
    server_kib_per_connection_over_idle: float = 0.0
    drops: int | None = None
    reconnects: int | None = None
    messages: int = 0
    message_p50_ms: float | None = None
    message_p99_ms: float | None = None
    client_cpu_ms_per_connect: float | None = None
    server_cpu_ms_per_connect: float | None = None
    master_cpu_ms_per_connect: float | None = None
    client_cpu_us_per_held_s: float | None = None
    server_cpu_us_per_held_s: float | None = None
    locust_exit_code: int | None = None
    elapsed_s: float = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5_000, help="connections to hold (default 5,000)")
    parser.add_argument("--local-ips", default="127.0.0.2-127.0.0.9", help="source addresses (default 8)")
    parser.add_argument("--ramp-rate", type=float, default=1_500.0, help="connections/s asked for (default 1,500)")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds at the peak (default 60)")
    parser.add_argument("--ramp-down", type=float, default=30.0, help="seconds to ramp down (default 30)")
    parser.add_argument("--message-share", type=float, default=0.02, help="share of users sending (default 0.02)")
    parser.add_argument("--message-interval", type=float, default=5.0, help="seconds between a sender's messages")
    parser.add_argument("--ping-interval", type=float, default=30.0, help="keepalive ping after this much silence")
    parser.add_argument("--locust-workers", type=int, default=0, help="default: one per 17,000 connections")
    parser.add_argument("--backend-workers", type=int, default=0, help="default: one per 17,000 connections")
    parser.add_argument("--budget", type=float, default=570.0, help="seconds before everything is killed")
    parser.add_argument("--out", default=str(REPO / "reports" / "ws_scale"), help="directory for logs and JSON")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.ramp_rate <= 0 or not 0 <= args.message_share <= 1:
        parser.error("--connections >= 1, --ramp-rate > 0 and --message-share in 0-1")
    return args


def _stats(backend: Backend) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{backend.host}:{backend.port}/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def _cpu(processes: list[psutil.Process]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _server_processes(backend: Backend) -> list[psutil.Process]:
    parent = psutil.Process(backend.process.pid)
    return [parent, *parent.children()]


def kernel_established(port: int) -> int:
    """Established server-side sockets on ``port``, counted by the kernel (``ss``)."""
    done = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, timeout=60
    )
    return sum(1 for line in done.stdout.splitlines() if line.strip())


def _csv_row(prefix: Path, name: str) -> dict[str, str] | None:
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        return None
    with path.open() as handle:
        return next((row for row in csv.DictReader(handle) if row["Name"] == name), None)


def _ms(row: dict[str, str] | None, column: str) -> float | None:
    if row is None or row.get(column) in (None, "", "N/A"):
        return None
    return float(row[column])


def _failure_kinds(prefix: Path, name: str) -> dict[str, int]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return {}
    with path.open() as handle:
        return {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(handle) if row["Name"] == name}


def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop a process this script started (its own process group): SIGTERM, then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _settled(processes: list[psutil.Process], deadline: float) -> None:
    """Wait until the workers have imported Locust and the suite (their memory stops growing): the idle baseline."""
    previous = -1
    while time.monotonic() < deadline:
        now = _rss(processes)
        if now == previous and now > 30 * 2**20 * len(processes):
            return
        previous = now
        time.sleep(1.0)


def run(args: argparse.Namespace) -> Result:
    started = time.monotonic()
    deadline = started + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.connections
    locust_workers = args.locust_workers or max(1, math.ceil(n / PER_PROCESS))
    backend_workers = args.backend_workers or max(1, math.ceil(n / PER_PROCESS))
    result = Result(n, locust_workers, backend_workers, args.local_ips)
    stages = f"up to {n} at {args.ramp_rate:g}/s, hold {args.hold:g} s, down in {args.ramp_down:g} s"
    env = {
        **os.environ,
        "WS_SCALE_USERS": str(n),
        "WS_SCALE_RATE": str(args.ramp_rate),
        "WS_SCALE_HOLD": str(args.hold),
        "WS_SCALE_DOWN": str(args.ramp_down),
        "WS_SCALE_MESSAGE_SHARE": str(args.message_share),
        "WS_SCALE_MESSAGE_INTERVAL": str(args.message_interval),
        "WS_SCALE_PING_INTERVAL": str(args.ping_interval),
    }
    prefix = out / "locust"
    backend = start_server(
        # No server pings: the clients keep their connections alive themselves (100,000 server pings every 20 s
        # are 5,000 frames/s each way, and a client starved of CPU for 20 s would be cut with 1011).
        [*SERVER, "--workers", str(backend_workers), "--ping-interval", "0", "--log-level", "WARNING"],
        kind="websocket",
        cwd=REPO,
        timeout=120,
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        master_port = str(free_port())
        worker_command = locust_command(USERS_FILE, "--worker", "--master-host", "127.0.0.1")
        worker_command += ["--master-port", master_port, "--loglevel", "WARNING"]
        for index in range(locust_workers):
            with (out / f"worker-{index}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(worker_command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True)
                )
        _settled([psutil.Process(process.pid) for process in processes], deadline=time.monotonic() + 60)
        master_command = locust_command(USERS_FILE, "--master", "--master-bind-host", "127.0.0.1")
        master_command += ["--master-bind-port", master_port, "--expect-workers", str(locust_workers)]
        master_command += ["--headless", "-H", backend.url, "--local-ips", args.local_ips]
        master_command += ["--csv", str(prefix), "--only-summary"]
        master_log = out / "master.log"
        with master_log.open("wb") as log:
            master = subprocess.Popen(master_command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True)
        processes.insert(0, master)
        print(
            f"backend {backend.url} ({backend_workers} processes), {locust_workers} Locust workers, "
            f"{stages}, --local-ips {args.local_ips}",
            flush=True,
        )
        samples = _sample_until_done(backend, master, processes, n, deadline, result)
        result.locust_exit_code = master.poll()
        _summarise(samples, result, prefix, master_log)
    finally:
        for process in processes:
            _stop(process)
        backend.stop(30)
        result.elapsed_s = round(time.monotonic() - started, 1)
    (out / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def _sample_until_done(
    backend: Backend,
    master: subprocess.Popen[bytes],
    processes: list[subprocess.Popen[bytes]],
    n: int,
    deadline: float,
    result: Result,
) -> list[Sample]:
    master_process, *clients = (psutil.Process(process.pid) for process in processes)
    servers = _server_processes(backend)
    samples: list[Sample] = []
    counted_at_peak = False
    last_print = 0.0
    while master.poll() is None and time.monotonic() < deadline:
        try:
            tallies = _stats(backend)
        except OSError:
            tallies = {"connections_open": -1, "connections_opened": -1}
        sample = Sample(
            time.monotonic(),
            tallies["connections_open"],
            tallies["connections_opened"],
            _rss(clients),
            _rss(servers),
            _cpu(clients),
            _cpu(servers),
            _cpu([master_process]),
        )
        samples.append(sample)
        if sample.open > result.peak_open_backend:
            result.peak_open_backend = sample.open
        if not counted_at_peak and sample.open >= n:
            counted_at_peak = True
            result.peak_established_kernel = kernel_established(backend.port)
        if sample.at - last_print >= 10:
            last_print = sample.at
            print(
                f"  open {sample.open:>7}  client {sample.client_rss / 2**20:7.0f} MiB  "
                f"server {sample.server_rss / 2**20:7.0f} MiB",
                flush=True,
            )
        time.sleep(1.0)
    if master.poll() is None:
        print("budget spent: stopping everything", flush=True)
    if not counted_at_peak and samples:
        result.peak_established_kernel = -1  # the peak was never reached; see peak_open_backend
    return samples


def _summarise(samples: list[Sample], result: Result, prefix: Path, master_log: Path) -> None:
    if not samples:
        return
    idle = next((s for s in samples if s.opened > 0), samples[0])
    before = samples[max(0, samples.index(idle) - 1)]
    peak = max(samples, key=lambda s: (s.open, -s.at))
    reached = next((s for s in samples if s.open >= 0.99 * peak.open), peak)
    if reached.at > before.at and reached.open > 0:
        result.ramp_rate_per_s = round(reached.open / (reached.at - before.at), 1)
    at_peak = [s for s in samples if s.open >= 0.99 * peak.open] or [peak]
    client = max(s.client_rss for s in at_peak)
    server = max(s.server_rss for s in at_peak)
    count = max(1, peak.open)
    result.client_rss_peak_mib = round(client / 2**20, 1)
    result.client_kib_per_connection = round(client / KIB / count, 2)
    result.client_kib_per_connection_over_idle = round((client - before.client_rss) / KIB / count, 2)
    result.server_rss_peak_mib = round(server / 2**20, 1)
    result.server_kib_per_connection = round(server / KIB / count, 2)
    result.server_kib_per_connection_over_idle = round((server - before.server_rss) / KIB / count, 2)
    _cpu_figures(samples, before, reached, peak, result)
    connect = _csv_row(prefix, "connect")
    result.connect_p50_ms, result.connect_p95_ms = _ms(connect, "50%"), _ms(connect, "95%")
    result.connect_failures = int(connect["Failure Count"]) if connect else 0
    result.connect_failure_kinds = _failure_kinds(prefix, "connect")
    echo = _csv_row(prefix, "echo")
    result.messages = int(echo["Request Count"]) if echo else 0
    result.message_p50_ms, result.message_p99_ms = _ms(echo, "50%"), _ms(echo, "99%")
    found = re.findall(r"WebSocket connections: (\d+) open, (\d+) drops, (\d+) reconnects", master_log.read_text())
    if found:
        result.drops, result.reconnects = int(found[-1][1]), int(found[-1][2])


def _cpu_figures(samples: list[Sample], before: Sample, reached: Sample, peak: Sample, result: Result) -> None:
    """CPU per connection: ms per connection opened during the ramp (from the last idle sample to the peak),
    and µs per open connection per second while held (from the peak to the last sample at it)."""
    if reached.open <= 0 or reached.at <= before.at:
        return
    result.client_cpu_ms_per_connect = round(1000 * (reached.client_cpu - before.client_cpu) / reached.open, 3)
    result.server_cpu_ms_per_connect = round(1000 * (reached.server_cpu - before.server_cpu) / reached.open, 3)
    result.master_cpu_ms_per_connect = round(1000 * (reached.master_cpu - before.master_cpu) / reached.open, 3)
    held = [s for s in samples if s.at >= reached.at and s.open >= 0.99 * peak.open]
    end = held[-1] if held else reached
    connection_seconds = peak.open * (end.at - reached.at)
    if connection_seconds > 0:
        result.client_cpu_us_per_held_s = round(1e6 * (end.client_cpu - reached.client_cpu) / connection_seconds, 2)
        result.server_cpu_us_per_held_s = round(1e6 * (end.server_cpu - reached.server_cpu) / connection_seconds, 2)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the clean-up in run() stops every process it started


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    result = run(args)
    width = max(len(key) for key in asdict(result))
    for key, value in asdict(result).items():
        print(f"{key:<{width}}  {value}")
    print(f"(logs and result.json in {args.out})")


if __name__ == "__main__":
    main()
