"""SayHello calls/s from one load-generator core: GrpcUser against raw grpcio clients and the docs' interceptor user.

``.venv/bin/python bench/grpc_user_throughput.py [--rounds 3] [--seconds 5] [--users 50]``

The load generator is pinned to one CPU, the server to the other: @grpc/grpc-js (bench/grpc_js_server.js)
when node is installed, else the minimal sync grpcio server of bench/grpc_backend_throughput.py — the
fastest of that bench. Each variant runs ``--users`` concurrent callers, each on its own TCP connection:

a. raw grpcio sync stubs under gevent (``init_gevent``), N greenlets, no Locust;
b. GrpcUser in a headless Locust run (bench/locustfile_grpc_hello.py ``GrpcUserHello``);
c. the Locust docs' pattern: ``grpc.intercept_channel`` + an interceptor firing the event (``InterceptorHello``);
d. raw ``grpc.aio``, N coroutines: the Python ceiling.

Raw clients warm up for a second, then count ``--seconds``; Locust runs for ``--seconds`` + 3 s and only the
whole seconds after the first two (spawning) and before the last (stopping) count, from ``--json-file``.
Rounds interleave the variants; medians are printed with the CPU use of server and load generator over
each counted window (the server is not the limit while its share stays well under 100%), and calls per
CPU-second of the load generator, which other processes on a shared machine disturb less than calls/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    LOAD_CPU,
    Sample,
    Window,
    grpc_js_command,
    locust_window,
    measure,
    pinned,
    placement,
    python_env,
    start_locust,
    start_server,
)

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile_grpc_hello.py"
WARM_UP_S = 1.0
MAX_CALLS = 10_000_000


@dataclass
class Variant:
    key: str
    label: str
    run: Callable[[str, int, float], subprocess.Popen[str]]
    window: Callable[[subprocess.Popen[str]], Window]
    samples: list[Sample] = field(default_factory=list)

    def median(self, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(sample) for sample in self.samples)


# --- raw clients (child processes pinned to the load CPU) -------------------------------------------------


def run_gevent(target: str, users: int, seconds: float) -> Window:
    """(a) N greenlets, each with its own channel, calling SayHello through sync stubs on grpc's gevent loop."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import grpc
    import grpc.experimental.gevent

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    grpc.experimental.gevent.init_gevent()
    channels = [grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(users)]
    request = pb.HelloRequest(name="bench")
    window_start = time.time() + WARM_UP_S
    window_end = window_start + seconds
    counted = 0

    def caller(channel: grpc.Channel) -> None:
        nonlocal counted
        say_hello = pb_grpc.HelloStub(channel).SayHello
        while (now := time.time()) < window_end and counted < MAX_CALLS:
            say_hello(request, timeout=30)
            if now >= window_start:
                counted += 1

    gevent.joinall([gevent.spawn(caller, channel) for channel in channels])
    for channel in channels:
        channel.close()
    return Window(counted, window_start, window_end)


def run_aio(target: str, users: int, seconds: float) -> Window:
    """(d) N coroutines, each with its own grpc.aio channel, calling SayHello."""
    import asyncio

    import grpc

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    async def drive() -> Window:
        options = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(users)]
        request = pb.HelloRequest(name="bench")
        window_start = time.time() + WARM_UP_S
        window_end = window_start + seconds
        counted = 0

        async def caller(channel: grpc.aio.Channel) -> None:
            nonlocal counted
            say_hello = pb_grpc.HelloStub(channel).SayHello
            while (now := time.time()) < window_end and counted < MAX_CALLS:
                await say_hello(request, timeout=30)
                if now >= window_start:
                    counted += 1

        await asyncio.gather(*(caller(channel) for channel in channels))
        for channel in channels:
            await channel.close()
        return Window(counted, window_start, window_end)

    return asyncio.run(drive())


def raw_child(kind: str) -> Callable[[str, int, float], subprocess.Popen[str]]:
    def run(target: str, users: int, seconds: float) -> subprocess.Popen[str]:
        command = [sys.executable, __file__, "--raw", kind, "--target", target]
        command += ["--users", str(users), "--seconds", str(seconds)]
        return subprocess.Popen(pinned(command, LOAD_CPU), stdout=subprocess.PIPE, text=True, env=python_env())

    return run


def raw_window(process: subprocess.Popen[str]) -> Window:
    assert process.stdout is not None
    return Window(**json.loads(process.stdout.read()))


# --- Locust runs ------------------------------------------------------------------------------------------


def locust_child(user_class: str, json_stem: Path) -> Callable[[str, int, float], subprocess.Popen[str]]:
    def run(target: str, users: int, seconds: float) -> subprocess.Popen[str]:
        return start_locust(LOCUSTFILE, user_class, target, users, seconds, json_stem)

    return run


# --- measuring --------------------------------------------------------------------------------------------


def fastest_server() -> tuple[str, list[str], dict[str, str] | None]:
    node = grpc_js_command()
    if node is not None:
        return "@grpc/grpc-js (node)", *node
    sync_server = [sys.executable, str(HERE / "grpc_backend_throughput.py"), "--serve", "sync"]
    return "minimal sync grpcio server", sync_server, None


def compare(rounds: int, seconds: float, users: int) -> None:
    name, command, env = fastest_server()
    with tempfile.TemporaryDirectory(prefix="grpc-user-bench-") as scratch:
        variants = [
            Variant("a", "raw grpcio + gevent", raw_child("gevent"), raw_window),
            Variant("b", "GrpcUser (Locust)", *_locust("GrpcUserHello", Path(scratch))),
            Variant("c", "docs interceptor user (Locust)", *_locust("InterceptorHello", Path(scratch))),
            Variant("d", "raw grpc.aio", raw_child("aio"), raw_window),
        ]
        server = start_server(name, command, env=env)
        try:
            print(f"SayHello calls/s from one load-generator core ({placement()}); server: {name}")
            print(f"{users} concurrent callers, one connection each; {rounds} rounds x {seconds:g} s counted")
            for round_index in range(rounds):
                shift = round_index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    process = variant.run(server.address, users, seconds)
                    variant.samples.append(measure(variant.label, server, process, variant.window))
                rates = ", ".join(f"{v.key}={v.samples[-1].calls_per_s:,.0f}" for v in variants)
                print(f"  round {round_index + 1}/{rounds} calls/s: {rates}")
        finally:
            server.stop()
    print_table(variants)


def _locust(user_class: str, scratch: Path) -> tuple[Callable[..., subprocess.Popen[str]], Callable[..., Window]]:
    stem = scratch / user_class
    return locust_child(user_class, stem), locust_window(stem)


def print_table(variants: list[Variant]) -> None:
    rate = {v.key: v.median(lambda s: s.calls_per_s) for v in variants}
    per_cpu = {v.key: v.median(lambda s: s.calls_per_s / s.load_cpu) for v in variants}
    print()
    print(f"{'variant':<36} {'calls/s':>9} {'load CPU':>9} {'calls/CPU-s':>11} {'server CPU':>10}  (medians)")
    for v in variants:
        label = f"({v.key}) {v.label}"
        print(
            f"{label:<36} {rate[v.key]:>9,.0f} {v.median(lambda s: s.load_cpu):>9.0%} {per_cpu[v.key]:>11,.0f}"
            f" {v.median(lambda s: s.server_cpu):>10.0%}"
        )
    print()
    print(f"{'ratio':<5} {'calls/s':>8} {'calls/CPU-s':>12}   target")
    for key, target in (("a", ">= 0.90"), ("c", ">= 1.00"), ("d", ">= 0.80 (stretch)")):
        print(f"b/{key:<3} {rate['b'] / rate[key]:>8.2f} {per_cpu['b'] / per_cpu[key]:>12.2f}   {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant (max 20)")
    parser.add_argument("--seconds", type=float, default=5.0, help="counted seconds per run (2-60)")
    parser.add_argument("--users", type=int, default=50, help="concurrent callers (1-1000)")
    parser.add_argument("--raw", choices=["gevent", "aio"], help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (1 <= args.rounds <= 20 and 2 <= args.seconds <= 60 and 1 <= args.users <= 1000):
        parser.error("--rounds must be 1-20, --seconds 2-60, --users 1-1000")
    if args.raw:
        run = run_gevent if args.raw == "gevent" else run_aio
        window = run(args.target, args.users, args.seconds)
        print(json.dumps({"calls": window.calls, "start": window.start, "end": window.end}), flush=True)
    else:
        compare(args.rounds, args.seconds, args.users)


if __name__ == "__main__":
    main()
