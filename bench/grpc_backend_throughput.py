"""SayHello calls/s of the reference gRPC backend, per server core, next to the server designs it was chosen over.

``.venv/bin/python bench/grpc_backend_throughput.py [--rounds 3] [--seconds 4] [--concurrency 256]``

A grpc.aio client process pinned to one CPU keeps ``--concurrency`` calls in flight over several connections.
Two loads, all servers in one run, rounds interleaved so drift on a shared machine hits each alike, medians:

* *plain*: SayHello as fast as the server answers. Servers pinned to the other CPU (``taskset``):
  the reference backend (grpc.aio; counting and faults wrapped around each handler; health, reflection) with
  one process, and with ``--workers 2`` on that same core (what sharing the port and counters costs); a minimal
  grpc.aio Hello server (what counting costs); minimal sync grpcio thread-pool servers with a small and a large
  pool; bench/grpc_js_server.js on @grpc/grpc-js when node is installed. Then the reference backend with
  ``--workers 2`` spread over both CPUs, competing with the client for the load CPU (a machine with two
  cores cannot give it two of its own; its per-core figure is the one to compare).
* *delayed*: ``--delayed-concurrency`` calls in flight, each delayed ``--delay-ms`` by ``x-fault-delay-ms``
  (what tests and fault-injection runs do): a server that holds a thread per waiting call is capped at
  pool size / delay, one that does not reaches concurrency / delay.

"per core" is calls/s divided by the server's CPU use (all its processes and threads) over the window; a
server is the limit when its CPU is near 100% of its cores while the client's is not.
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
from pathlib import Path

from _common import (
    LOAD_CPU,
    SERVER_CPU,
    Server,
    cpu_seconds,
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
SMALL_POOL = 16
LARGE_POOL = 256
WINDOW_LINE = "WINDOW"


@dataclass
class Sample:
    """One client run against one server."""

    calls_per_s: float
    client_cpu: float
    server_cpu: float

    @property
    def per_core(self) -> float:
        """Calls per second of server CPU time."""
        return self.calls_per_s / self.server_cpu if self.server_cpu else 0.0


@dataclass
class Load:
    """What the client does: calls in flight, and the x-fault-delay-ms each asks for (0: none)."""

    name: str
    concurrency: int
    delay_ms: float = 0.0


@dataclass
class Row:
    server: Server
    load: Load
    samples: list[Sample] = field(default_factory=list)

    def median(self, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(sample) for sample in self.samples)


# --- the client (a child process pinned to the load CPU) --------------------------------------------------


async def drive(target: str, seconds: float, concurrency: int, delay_ms: float) -> dict[str, float]:
    """Keep ``concurrency`` SayHello calls in flight for a warm-up and then ``seconds``; count the window's calls."""
    import grpc

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

    options = [("grpc.use_local_subchannel_pool", 1)]  # one TCP connection per channel
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(CHANNELS)]
    stubs = [pb_grpc.HelloStub(channel) for channel in channels]
    request = pb.HelloRequest(name="bench")
    metadata = (("x-fault-delay-ms", f"{delay_ms:g}"),) if delay_ms else None
    loop = asyncio.get_running_loop()
    window_start = loop.time() + WARM_UP_S
    window_end = window_start + seconds
    counted = 0

    async def caller(stub: pb_grpc.HelloStub) -> None:
        nonlocal counted
        while loop.time() < window_end and counted < MAX_CALLS_PER_WINDOW:
            await stub.SayHello(request, timeout=10, metadata=metadata)
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


def client_main(target: str, seconds: float, concurrency: int, delay_ms: float) -> None:
    print(json.dumps(asyncio.run(drive(target, seconds, concurrency, delay_ms))), flush=True)


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and every live descendant (``--workers`` servers do their work in children)."""
    total = cpu_seconds(pid)
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        total += sum(process_tree_cpu_seconds(int(child)) for child in children.read_text().split())
    return total


def measure(server: Server, seconds: float, load: Load) -> Sample:
    """Run one pinned client process against ``server``; server CPU is sampled over the client's window."""
    command = [sys.executable, __file__, "--client", server.address, "--seconds", str(seconds)]
    command += ["--concurrency", str(load.concurrency), "--delay-ms", str(load.delay_ms)]
    client = subprocess.Popen(pinned(command, LOAD_CPU), stdout=subprocess.PIPE, text=True, env=python_env())
    try:
        assert client.stdout is not None
        if client.stdout.readline().strip() != WINDOW_LINE:
            raise RuntimeError(f"client against {server.name} failed before its window")
        server_cpu_before = process_tree_cpu_seconds(server.process.pid)
        result_line = client.stdout.readline()
        server_cpu = process_tree_cpu_seconds(server.process.pid) - server_cpu_before
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


def serve_sync(threads: int) -> None:
    """Minimal sync grpcio Hello server on a thread pool; a delay asked for by metadata holds its thread."""
    import grpc

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
    from locust_ext.testing import announce_ready

    class Hello(pb_grpc.HelloServicer):
        def SayHello(self, request: pb.HelloRequest, context: grpc.ServicerContext) -> pb.HelloReply:
            delay_ms = dict(context.invocation_metadata()).get("x-fault-delay-ms")
            if delay_ms:
                time.sleep(float(delay_ms) / 1000.0)
            return pb.HelloReply(message=f"Hello, {request.name or 'world'}!")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    pb_grpc.add_HelloServicer_to_server(Hello(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    announce_ready("grpc", "127.0.0.1", port)
    server.wait_for_termination()  # SIGTERM ends the process


async def serve_aio() -> None:
    """Minimal grpc.aio Hello server: the reference backend's design without its interceptor and extras."""
    import grpc

    from loadtest.v1 import loadtest_pb2 as pb
    from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
    from locust_ext.testing import announce_ready

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


def start_servers(stack: ExitStack, plain: Load, delayed: Load) -> list[Row]:
    """Every server of the comparison, each with the loads it takes part in; all stopped when ``stack`` closes."""
    own = [sys.executable, __file__, "--serve"]
    reference = reference_backend_command()
    both_cpus = ["taskset", "-c", f"{LOAD_CPU},{SERVER_CPU}"]  # widens start_server's one-CPU pin to both
    launches: list[tuple[str, list[str], dict[str, str] | None, tuple[Load, ...]]] = [
        ("reference backend", reference, None, (plain, delayed)),
        ("reference --workers 2, one core", [*reference, "--workers", "2"], None, (plain,)),
        ("minimal grpc.aio server", [*own, "aio"], None, (plain,)),
        (f"minimal sync server, {SMALL_POOL} threads", [*own, "sync", "--threads", str(SMALL_POOL)], None, (plain,)),
        (
            f"minimal sync server, {LARGE_POOL} threads",
            [*own, "sync", "--threads", str(LARGE_POOL)],
            None,
            (plain, delayed),
        ),
    ]
    node = grpc_js_command()
    if node is not None:
        launches.append(("@grpc/grpc-js server (node)", *node, (plain,)))
    launches.append(("reference --workers 2, both cores", [*both_cpus, *reference, "--workers", "2"], None, (plain,)))
    rows: list[Row] = []
    for name, command, env, loads in launches:
        server = start_server(name, command, env=env)
        stack.callback(server.stop)
        rows.extend(Row(server, load) for load in loads)
    return rows


def compare(rounds: int, seconds: float, plain: Load, delayed: Load) -> None:
    with ExitStack() as stack:
        rows = start_servers(stack, plain, delayed)
        print(f"SayHello calls/s per server ({placement()})")
        print(f"grpc.aio client, {CHANNELS} connections; {rounds} x {seconds:g} s; loads:")
        print(f"  plain: {plain.concurrency} calls in flight")
        print(
            f"  delayed: {delayed.concurrency} calls in flight, each delayed {delayed.delay_ms:g} ms"
            f" (at most {delayed.concurrency * 1000 / delayed.delay_ms:,.0f} calls/s)"
        )
        for round_index in range(rounds):
            # Rotate the order every round so no server always runs first (or right after another).
            order = rows[round_index % len(rows) :] + rows[: round_index % len(rows)]
            for row in order:
                row.samples.append(measure(row.server, seconds, row.load))
            rates = ", ".join(f"{row.samples[-1].calls_per_s:,.0f}" for row in rows)
            print(f"  round {round_index + 1}/{rounds} calls/s: {rates}")
    reference = rows[0].median(lambda s: s.calls_per_s)
    print()
    header = (
        f"{'load':<8} {'server':<36} {'calls/s':>9} {'vs ref':>7} {'per core':>9} {'server CPU':>10} {'client CPU':>10}"
    )
    print(f"{header}  (medians)")
    for load in (plain, delayed):
        for row in (row for row in rows if row.load is load):
            rate = row.median(lambda s: s.calls_per_s)
            print(
                f"{load.name:<8} {row.server.name:<36} {rate:>9,.0f} {rate / reference:>7.2f}"
                f" {row.median(lambda s: s.per_core):>9,.0f}"
                f" {row.median(lambda s: s.server_cpu):>10.0%} {row.median(lambda s: s.client_cpu):>10.0%}"
            )
        reference = next(row for row in rows if row.load is delayed).median(lambda s: s.calls_per_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server (max 20)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per client run (max 30)")
    parser.add_argument("--concurrency", type=int, default=256, help="calls in flight, plain load")
    parser.add_argument("--delayed-concurrency", type=int, default=1000, help="calls in flight, delayed load")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="x-fault-delay-ms of each delayed call")
    parser.add_argument("--client", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=["sync", "aio"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=SMALL_POOL, help=argparse.SUPPRESS)
    args = parser.parse_args()
    concurrencies_ok = 1 <= args.concurrency <= 2048 and 1 <= args.delayed_concurrency <= 2048
    if not (
        1 <= args.rounds <= 20 and 0 < args.seconds <= 30 and concurrencies_ok and (args.delay_ms > 0 or args.client)
    ):
        parser.error("--rounds must be 1-20, --seconds in (0, 30], concurrencies 1-2048, --delay-ms > 0")
    if args.serve == "sync":
        serve_sync(args.threads)
    elif args.serve == "aio":
        asyncio.run(serve_aio())
    elif args.client:
        client_main(args.client, args.seconds, args.concurrency, args.delay_ms)
    else:
        plain = Load("plain", args.concurrency)
        delayed = Load("delayed", args.delayed_concurrency, args.delay_ms)
        compare(args.rounds, args.seconds, plain, delayed)


if __name__ == "__main__":
    main()
