"""SayHello calls/s of the reference gRPC backend on one core, next to the server designs it was chosen over.

``.venv/bin/python bench/grpc_backend_throughput.py [--rounds 3] [--seconds 4] [--concurrency 256]``

Each server runs pinned to one CPU (``taskset``); a grpc.aio client process pinned to the other CPU keeps
``--concurrency`` calls in flight over several connections. Servers compared, all in one run, rounds
interleaved so drift on a shared machine hits each alike, medians reported:

* the reference backend as shipped (grpc.aio, one event loop, counting/fault interceptor, health, reflection);
* a minimal grpc.aio Hello server (the same design without the interceptor: what the extras cost);
* a minimal sync grpcio Hello server on a thread pool (the design the reference backend was chosen over);
* bench/grpc_js_server.js on @grpc/grpc-js, when node is installed.

A server is the limit when its CPU column is near 100% while the client's is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent import futures
from contextlib import ExitStack
from dataclasses import dataclass, field

from _common import (
    LOAD_CPU,
    Server,
    grpc_js_command,
    pinned,
    placement,
    python_env,
    reference_backend_command,
    start_server,
)

CHANNELS = 8
MAX_CALLS_PER_WINDOW = 5_000_000
WARM_UP_S = 0.5
SYNC_WORKERS = 16
WINDOW_LINE = "WINDOW"


@dataclass
class Sample:
    """One client run against one server."""

    calls_per_s: float
    client_cpu: float
    server_cpu: float


@dataclass
class Row:
    server: Server
    samples: list[Sample] = field(default_factory=list)

    def median(self, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(sample) for sample in self.samples)


# --- the client (a child process pinned to the load CPU) --------------------------------------------------


async def drive(target: str, seconds: float, concurrency: int) -> dict[str, float]:
    """Keep ``concurrency`` SayHello calls in flight for a warm-up and then ``seconds``; count the window's calls."""
    import grpc

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    options = [("grpc.use_local_subchannel_pool", 1)]  # one TCP connection per channel
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(CHANNELS)]
    stubs = [pb_grpc.HelloStub(channel) for channel in channels]
    request = pb.HelloRequest(name="bench")
    loop = asyncio.get_running_loop()
    window_start = loop.time() + WARM_UP_S
    window_end = window_start + seconds
    counted = 0

    async def caller(stub: pb_grpc.HelloStub) -> None:
        nonlocal counted
        while loop.time() < window_end and counted < MAX_CALLS_PER_WINDOW:
            await stub.SayHello(request, timeout=10)
            if loop.time() >= window_start:
                counted += 1

    async def window() -> tuple[float, float]:
        await asyncio.sleep(WARM_UP_S)
        print(WINDOW_LINE, flush=True)
        return time.perf_counter(), time.process_time()

    window_task = asyncio.ensure_future(window())
    await asyncio.gather(*(caller(stubs[i % CHANNELS]) for i in range(concurrency)))
    started, cpu_started = window_task.result()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    for channel in channels:
        await channel.close()
    return {"calls": counted, "elapsed": elapsed, "cpu": cpu}


def client_main(target: str, seconds: float, concurrency: int) -> None:
    print(json.dumps(asyncio.run(drive(target, seconds, concurrency))), flush=True)


def measure(server: Server, seconds: float, concurrency: int) -> Sample:
    """Run one pinned client process against ``server``; server CPU is sampled over the client's window."""
    command = [sys.executable, __file__, "--client", server.address]
    command += ["--seconds", str(seconds), "--concurrency", str(concurrency)]
    client = subprocess.Popen(pinned(command, LOAD_CPU), stdout=subprocess.PIPE, text=True, env=python_env())
    try:
        assert client.stdout is not None
        if client.stdout.readline().strip() != WINDOW_LINE:
            raise RuntimeError(f"client against {server.name} failed before its window")
        server_cpu_before = server.cpu_seconds()
        result_line = client.stdout.readline()
        server_cpu = server.cpu_seconds() - server_cpu_before
        client.wait(30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if client.returncode != 0 or not result_line:
        raise RuntimeError(f"client against {server.name} exited {client.returncode}")
    result = json.loads(result_line)
    elapsed = result["elapsed"]
    return Sample(result["calls"] / elapsed, result["cpu"] / elapsed, server_cpu / elapsed)


# --- bench-only servers (child processes pinned to the server CPU) ----------------------------------------


def serve_sync() -> None:
    """Minimal sync grpcio Hello server on a thread pool."""
    import grpc

    from backends.common import announce_ready
    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    class Hello(pb_grpc.HelloServicer):
        def SayHello(self, request: pb.HelloRequest, context: grpc.ServicerContext) -> pb.HelloReply:
            return pb.HelloReply(message=f"Hello, {request.name or 'world'}!")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SYNC_WORKERS))
    pb_grpc.add_HelloServicer_to_server(Hello(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    announce_ready("grpc", "127.0.0.1", port)
    server.wait_for_termination()  # SIGTERM ends the process


async def serve_aio() -> None:
    """Minimal grpc.aio Hello server: the reference backend's design without its interceptor and extras."""
    import grpc

    from backends.common import announce_ready
    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    class Hello(pb_grpc.HelloServicer):
        async def SayHello(self, request: pb.HelloRequest, context: grpc.aio.ServicerContext) -> pb.HelloReply:
            return pb.HelloReply(message=f"Hello, {request.name or 'world'}!")

    server = grpc.aio.server()
    pb_grpc.add_HelloServicer_to_server(Hello(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    announce_ready("grpc", "127.0.0.1", port)
    await server.wait_for_termination()


# --- the comparison ---------------------------------------------------------------------------------------


def start_servers(stack: ExitStack) -> list[Server]:
    own = [sys.executable, __file__, "--serve"]
    launches: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("reference backend (grpc.aio)", reference_backend_command(), None),
        ("minimal grpc.aio server", [*own, "aio"], None),
        (f"minimal sync server, {SYNC_WORKERS} threads", [*own, "sync"], None),
    ]
    node = grpc_js_command()
    if node is not None:
        launches.append(("@grpc/grpc-js server (node)", *node))
    servers = []
    for name, command, env in launches:
        server = start_server(name, command, env=env)
        stack.callback(server.stop)
        servers.append(server)
    return servers


def compare(rounds: int, seconds: float, concurrency: int) -> None:
    with ExitStack() as stack:
        rows = [Row(server) for server in start_servers(stack)]
        print(f"SayHello calls/s per server on one core ({placement()})")
        print(f"grpc.aio client: {concurrency} calls in flight, {CHANNELS} connections; {rounds} x {seconds:g} s")
        for round_index in range(rounds):
            # Rotate the order every round so no server always runs first (or right after another).
            order = rows[round_index % len(rows) :] + rows[: round_index % len(rows)]
            for row in order:
                row.samples.append(measure(row.server, seconds, concurrency))
            rates = ", ".join(f"{row.samples[-1].calls_per_s:,.0f}" for row in rows)
            print(f"  round {round_index + 1}/{rounds} calls/s: {rates}")
    reference = rows[0].median(lambda s: s.calls_per_s)
    print()
    print(f"{'server':<36} {'calls/s':>9} {'vs ref':>7} {'server CPU':>10} {'client CPU':>10}  (medians)")
    for row in rows:
        rate = row.median(lambda s: s.calls_per_s)
        print(
            f"{row.server.name:<36} {rate:>9,.0f} {rate / reference:>7.2f}"
            f" {row.median(lambda s: s.server_cpu):>10.0%} {row.median(lambda s: s.client_cpu):>10.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server (max 20)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per client run (max 30)")
    parser.add_argument("--concurrency", type=int, default=256, help="calls in flight from the client")
    parser.add_argument("--client", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=["sync", "aio"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (1 <= args.rounds <= 20 and 0 < args.seconds <= 30 and 1 <= args.concurrency <= 1024):
        parser.error("--rounds must be 1-20, --seconds in (0, 30], --concurrency 1-1024")
    if args.serve == "sync":
        serve_sync()
    elif args.serve == "aio":
        asyncio.run(serve_aio())
    elif args.client:
        client_main(args.client, args.seconds, args.concurrency)
    else:
        compare(args.rounds, args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
