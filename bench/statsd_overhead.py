"""What the StatsD mirror costs: GrpcUser calls/s of a headless Locust run on one core, mirror off vs on.

The load generator is one Locust process running bench/locustfile_grpc_hello.py ``GrpcUserHello`` (``--users``
callers, no wait, one connection each) pinned to one CPU; the server is pinned to the other: @grpc/grpc-js
(bench/grpc_js_server.js) when node is installed, else the reference backend. With the mirror on, Locust sends
to a loopback UDP socket nobody reads (the kernel drops what overflows, as a busy StatsD would). Rounds run
off and on back to back, alternating which goes first, so drift on a shared machine hits both alike; calls/s
count the steady whole seconds of each run (from ``--json-file``). Medians and the ratio on / off (target
>= 0.95), with the CPU use of load generator and server (the server is not the limit while its share stays
well under 100 %). Then a microbench: request events per second through the listener alone, against the
``statsd`` package's pipeline doing the same sends.

    .venv/bin/python bench/statsd_overhead.py [--rounds 5] [--seconds 5] [--users 50]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import locust  # noqa: F401  (gevent monkey-patching first)
import statsd
from _common import (
    Sample,
    add_round_arguments,
    check_round_arguments,
    grpc_js_or,
    locust_window,
    measure,
    placement,
    reference_backend_command,
    start_locust,
    start_server,
)
from locust.env import Environment

from locust_ext.statsd import MirrorConfig, StatsdMirror
from locust_ext.statsd.naming import request_lines
from locust_ext.statsd.sender import MAX_DATAGRAM_BYTES, DatagramBatcher

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile_grpc_hello.py"
METHOD = "/loadtest.v1.Hello/SayHello"
#: calls/s, load-generator CPU share, server CPU share: the columns of the table.
PICKS: tuple[Callable[[Sample], float], ...] = (
    lambda sample: sample.calls_per_s,
    lambda sample: sample.load_cpu,
    lambda sample: sample.server_cpu,
)


class Failed(Exception):
    """Fired for every 10th microbench event, so the failure path is measured too."""


def fastest_server() -> tuple[str, list[str], dict[str, str] | None]:
    return grpc_js_or("reference backend (grpc.aio)", reference_backend_command())


def load_table(rounds: int, seconds: float, users: int, sink: tuple[str, int]) -> None:
    """Interleaved off / on runs; prints each round, then medians and the ratio."""
    modes = {"off": [], "on": ["--statsd-host", sink[0], "--statsd-port", str(sink[1])]}
    samples: dict[str, list[Sample]] = {mode: [] for mode in modes}
    name, command, env = fastest_server()
    print(f"GrpcUser SayHello calls/s, one load-generator core ({placement()}); server: {name}")
    print(f"{users} users, no wait; {rounds} rounds x {seconds:g} s counted; mirror sends to a UDP sink on loopback")
    server = start_server(name, command, env=env)
    try:
        with tempfile.TemporaryDirectory(prefix="statsd-bench-") as scratch:
            stem = Path(scratch) / "run"
            for index in range(rounds):
                for mode in list(modes) if index % 2 == 0 else list(reversed(modes)):
                    process = start_locust(
                        LOCUSTFILE, "GrpcUserHello", server.address, users, seconds, stem, *modes[mode]
                    )
                    samples[mode].append(measure(f"mirror {mode}", server, process, locust_window(stem)))
                off, on = samples["off"][-1].calls_per_s, samples["on"][-1].calls_per_s
                print(f"  round {index + 1}/{rounds}: off {off:,.0f}, on {on:,.0f} calls/s", flush=True)
    finally:
        server.stop()
    medians = {mode: [statistics.median(map(pick, rows)) for pick in PICKS] for mode, rows in samples.items()}
    print()
    print(f"{'mirror':<7} {'calls/s':>9} {'load CPU':>9} {'server CPU':>10}  (medians)")
    for mode, (rate, load_cpu, server_cpu) in medians.items():
        print(f"{mode:<7} {rate:>9,.0f} {load_cpu:>9.0%} {server_cpu:>10.0%}")
    per_round = [on.calls_per_s / off.calls_per_s for off, on in zip(samples["off"], samples["on"], strict=True)]
    print(
        f"mirror on / off = {medians['on'][0] / medians['off'][0]:.3f} (medians; per round "
        f"{', '.join(f'{ratio:.3f}' for ratio in per_round)}); target >= 0.95"
    )


def events_per_second(handle: Callable[[int], None], events: int) -> float:
    started = time.perf_counter()
    for i in range(events):
        handle(i)
    return events / (time.perf_counter() - started)


def microbench(sink: tuple[str, int], events: int) -> tuple[float, float]:
    """(events/s through StatsdMirror.on_request, events/s through a statsd-package pipeline)."""
    mirror = StatsdMirror(Environment(), MirrorConfig(sink[0], sink[1]), DatagramBatcher(socket.AF_INET, sink))
    failure = Failed("UNAVAILABLE: bench")

    def through_mirror(i: int) -> None:
        mirror.on_request("grpc", METHOD, 0.347 + i % 7, exception=failure if i % 10 == 0 else None)

    lines = request_lines("locust", "grpc", METHOD, "none", 1.0)
    timer, success, failed = (line.split(":", 1)[0] for line in (lines.timer(0), lines.success, lines.failure))
    error = lines.error(failure).split(":", 1)[0]
    client = statsd.StatsClient(sink[0], sink[1], maxudpsize=MAX_DATAGRAM_BYTES)
    pipe = client.pipeline()

    def through_pipeline(i: int) -> None:
        pipe.timing(timer, 0.347 + i % 7)
        if i % 10 == 0:
            pipe.incr(failed)
            pipe.incr(error)
        else:
            pipe.incr(success)
        if i % 10 == 9:  # about one datagram's worth, like the mirror's batcher
            pipe.send()

    mirror_rate = events_per_second(through_mirror, events)
    pipeline_rate = events_per_second(through_pipeline, events)
    mirror.close()
    return mirror_rate, pipeline_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_round_arguments(parser, rounds=5, rounds_help="off/on round pairs", users=50, users_help="concurrent GrpcUsers")
    parser.add_argument("--events", type=int, default=300_000, help="microbench events (default 300000)")
    args = parser.parse_args()
    check_round_arguments(parser, args)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink_socket:
        sink_socket.bind(("127.0.0.1", 0))
        sink = ("127.0.0.1", int(sink_socket.getsockname()[1]))
        load_table(args.rounds, args.seconds, args.users, sink)
        mirror_rate, pipeline_rate = microbench(sink, args.events)
    print(
        f"listener alone: {mirror_rate:,.0f} events/s ({1e6 / mirror_rate:.2f} us/event); "
        f"statsd package pipeline: {pipeline_rate:,.0f} events/s; mirror / pipeline = "
        f"{mirror_rate / pipeline_rate:.2f}"
    )


if __name__ == "__main__":
    main()
