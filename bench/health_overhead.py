"""What generator health sampling costs: the sampler's CPU time per second in a process holding many open
sockets and sleeping greenlets (its probes grow with both: /proc/self/fd is listed once a second).

``python -m bench.health_overhead [--seconds 10] [--files 2000] [--greenlets 1000]`` (repository root)

Alternates rounds without and with a started :class:`~locust_ext.health.HealthSampler` in one process that
otherwise only sleeps, and prints the process's CPU time per wall second for each; the difference is the
sampler's cost. Also times its probes one by one.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent
import locust  # noqa: F401  (gevent's patches, as in a Locust process)

from locust_ext.health import HealthSampler


def cpu_per_second(seconds: float, sampler: HealthSampler | None) -> float:
    if sampler is not None:
        sampler.reset()
        sampler.start()
    wall, cpu = time.perf_counter(), time.process_time()
    gevent.sleep(seconds)
    used = (time.process_time() - cpu) / (time.perf_counter() - wall)
    if sampler is not None:
        sampler.stop()
    return used * 1000


def probe_us(call: object, rounds: int = 200) -> float:
    assert callable(call)
    start = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--greenlets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sockets = [socket.socket() for _ in range(args.files)]
    sleepers = [gevent.spawn(gevent.sleep, 3600) for _ in range(args.greenlets)]
    try:
        sampler = HealthSampler()
        without, with_ = [], []
        for _ in range(args.rounds):
            without.append(cpu_per_second(args.seconds, None))
            with_.append(cpu_per_second(args.seconds, sampler))
        print(f"{args.files} open sockets, {args.greenlets} sleeping greenlets, {args.rounds} x {args.seconds:g} s:")
        for label, values in (("without", without), ("with", with_)):
            rounds = ", ".join(f"{value:.2f}" for value in values)
            print(f"  CPU ms per s {label} sampler: {statistics.median(values):.2f} ({rounds})")
        print(
            f"  sampler: {statistics.median(with_) - statistics.median(without):.2f} ms of CPU per s "
            f"({(statistics.median(with_) - statistics.median(without)) / 10:.3f} % of a core)"
        )
        tick, report = probe_us(sampler.tick), probe_us(sampler.report)
        print(f"  once-a-second probes: {tick:.0f} us; a report (every 3 s): {report:.0f} us")
    finally:
        gevent.killall(sleepers)
        for sock in sockets:
            sock.close()


if __name__ == "__main__":
    main()
