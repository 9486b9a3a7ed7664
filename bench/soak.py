"""Leak check: an hour-shaped soak scaled down (10 minutes by default), printing memory, open files and greenlets
of every Locust worker and backend once a minute, then each one's slope after warm-up in KiB/min.

``python -m bench.soak [--minutes 10] [--workers 2] [--users 40]`` (repository root; not part of CI)

The workload (bench/locustfile_soak.py): WebSocket users (echo, streams, pings) and gRPC users (unary,
client-streaming, server-streaming, bidi) on a master and ``--workers`` workers, under ``--shape churn``: every
10 s 30 % of the users leave (WebSocket connections and gRPC channels closed) and as many new ones connect.
The gRPC backend is restarted at 40 % of the run and the WebSocket backend at 60 % (same port; users see
failures, then reconnect). Workers are read from /proc (resident memory, descriptors, threads) and from the
master's ``/generator`` page (greenlets waiting on the hub, hub lag); backends from /proc. The master's log goes
to reports/soak-master.log, its generator report to reports/soak-generator.json.

Warm-up is the first 20 % of the run for workers (imports, first connections, allocator growth), and a minute
after its last (re)start for a backend; the slope is a least-squares fit of the samples (every 5 s) after it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust_ext.health.sampler import slope_per_min
from locust_ext.testing import Backend, free_port, locust_command, start_server, stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO_ROOT / "bench" / "locustfile_soak.py"
SAMPLE_S = 5.0
WORKER_WARMUP_SHARE = 0.2
BACKEND_WARMUP_S = 60.0
RESTARTS = (("grpc", 0.4), ("websocket", 0.6))


@dataclass
class Tracked:
    """One process followed through the soak: (seconds since start, rss bytes, fds, threads, greenlets)."""

    name: str
    samples: list[tuple[float, int, int, int, int | None]] = field(default_factory=list)
    started_at: float = 0.0

    def sample(self, pid: int, at: float, greenlets: int | None) -> None:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                self.samples.append(
                    (at, process.memory_info().rss, process.num_fds(), process.num_threads(), greenlets)
                )
        except psutil.Error:
            pass

    def slope(self, warm_until: float) -> tuple[float | None, int]:
        kept = [(at, rss) for at, rss, *_ in self.samples if at >= max(warm_until, self.started_at)]
        if len(kept) < 3:
            return None, len(kept)
        return slope_per_min(kept), len(kept)


def backend_command(kind: str, port: int) -> list[str]:
    module = "backends.grpc_server" if kind == "grpc" else "backends.websocket_server"
    return [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)]


def generator_page(web: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{web}/generator", timeout=5) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (OSError, ValueError):
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=40, help="users kept running (churned), all workers together")
    parser.add_argument("--print-every", type=float, default=60.0, help="seconds between printed rows (default 60)")
    args = parser.parse_args()
    run_s = args.minutes * 60
    ports = {"grpc": free_port(), "websocket": free_port()}
    backends: dict[str, Backend] = {kind: start_server(backend_command(kind, port)) for kind, port in ports.items()}
    web_port, master_port = free_port(), free_port()
    web = f"http://127.0.0.1:{web_port}"
    env = {"SOAK_WS_HOST": f"ws://127.0.0.1:{ports['websocket']}", "SOAK_GRPC_HOST": f"127.0.0.1:{ports['grpc']}"}
    full_env = {**os.environ, **env}
    out = Path("reports")
    out.mkdir(exist_ok=True)
    shape = f"churn:users={args.users},fraction=0.3,interval=10s,run_time={run_s:.0f}s"
    master_log = (out / "soak-master.log").open("w")  # a pipe nobody reads would fill and stall the master
    master = subprocess.Popen(
        locust_command(
            LOCUSTFILE, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--expect-workers", str(args.workers), "--web-host", "127.0.0.1", "--web-port", str(web_port),
            "--autostart", "--autoquit", "5", "--shape", shape, "--generator-report", str(out / "soak-generator.json"),
            "--json-file", str(out / "soak-stats"),
        ),
        env=full_env, stdout=master_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            locust_command(LOCUSTFILE, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)),
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    tracked = {f"worker-{i}": Tracked(f"worker-{i}") for i in range(args.workers)}
    tracked |= {f"{kind} backend": Tracked(f"{kind} backend") for kind in backends}
    restarts = {kind: share * run_s for kind, share in RESTARTS}
    when = f"gRPC backend at {restarts['grpc']:.0f} s, WebSocket backend at {restarts['websocket']:.0f} s"
    print(f"soak: {args.minutes:g} min, {args.workers} workers, {args.users} users churned 30 % every 10 s; {when}")
    header = f"{'t':>5}  {'process':<18}{'RSS MiB':>9}{'files':>7}{'threads':>8}{'greenlets':>10}{'lag p99':>9}"
    start = time.monotonic()
    next_print = 0.0
    try:
        while time.monotonic() - start < run_s + 10 and master.poll() is None:
            at = time.monotonic() - start
            for kind, moment in list(restarts.items()):
                if at >= moment:
                    del restarts[kind]
                    backends[kind].stop()
                    backends[kind] = start_server(backend_command(kind, ports[kind]))
                    tracked[f"{kind} backend"].started_at = at
                    print(f"{at:5.0f}s  restarted the {kind} backend")
            page = generator_page(web)
            for index, process in enumerate(workers):
                live = (page.get("processes", {}).get(f"worker-{index}") or {}).get("live") or {}
                greenlets = live.get("greenlets")
                tracked[f"worker-{index}"].sample(process.pid, at, int(greenlets) if greenlets is not None else None)
            for kind, backend in backends.items():
                tracked[f"{kind} backend"].sample(backend.process.pid, at, None)
            if at >= next_print:
                next_print += args.print_every
                print(header)
                for name, one in tracked.items():
                    if not one.samples:
                        continue
                    _, rss, files, threads, greenlets = one.samples[-1]
                    live = (page.get("processes", {}).get(name) or {}).get("live") or {}
                    lag = live.get("hub_lag_p99")
                    shown = [str(greenlets) if greenlets is not None else "-", f"{lag:.1f}" if lag is not None else "-"]
                    print(f"{at:5.0f}  {name:<18}{rss / 2**20:9.1f}{files:7d}{threads:8d}{shown[0]:>10}{shown[1]:>9}")
                sys.stdout.flush()
            time.sleep(SAMPLE_S)
    finally:
        try:
            master.wait(60)
        except subprocess.TimeoutExpired:
            master.kill()
        for process in workers:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for backend in backends.values():
            stop_process(backend.process)
        master_log.close()
    print(f"\nslopes after warm-up (workers: after {WORKER_WARMUP_SHARE:.0%} of the run; backends: "
          f"{BACKEND_WARMUP_S:.0f} s after their last start), KiB/min:")  # fmt: skip
    for name, one in tracked.items():
        warm = WORKER_WARMUP_SHARE * run_s if name.startswith("worker") else one.started_at + BACKEND_WARMUP_S
        slope, count = one.slope(warm)
        kept = [s for s in one.samples if s[0] >= max(warm, one.started_at)]
        file_range = f"files {kept[0][2]}->{kept[-1][2]}" if kept else ""
        seen = [s[4] for s in kept if s[4] is not None]
        waiting = f", greenlets {seen[0]}->{seen[-1]}" if seen else ""
        slope_text = f"{slope:+.1f}" if slope is not None else "-"
        print(f"  {name:<18} {slope_text:>8} KiB/min over {count} samples; {file_range}{waiting}")
    requests = (
        json.loads(Path(f"{out / 'soak-stats'}.json").read_text())
        if Path(f"{out / 'soak-stats'}.json").exists()
        else []
    )
    total = sum(entry["num_requests"] for entry in requests)
    failures = sum(entry["num_failures"] for entry in requests)
    print(f"requests {total}, failures {failures} (the backend restarts cause some); master exit {master.returncode}")


if __name__ == "__main__":
    main()
