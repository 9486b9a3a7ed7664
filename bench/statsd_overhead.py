"""What the StatsD mirror costs: calls/s of a gRPC load loop with the mirror off vs on, in one run.

A gevent loop fires one Locust request event per SayHello call to the reference gRPC backend on loopback
(plain grpcio stub, gRPC's gevent integration), as fast as it can. Rounds alternate mirror off / on so
drift on a shared machine hits both alike; the mirror sends to a local UDP socket nobody reads (the
kernel drops what overflows, as a busy StatsD would). Then a microbench: request events per second
through the listener alone, against the `statsd` package's pipeline doing the same sends.

    .venv/bin/python -m bench.statsd_overhead [--rounds 3] [--seconds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Callable

import gevent
import grpc
import grpc.experimental.gevent
import locust  # noqa: F401  (gevent monkey-patching first)
import statsd
from locust.env import Environment

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.statsd import MirrorConfig, StatsdMirror
from locust_ext.statsd.naming import request_lines
from locust_ext.statsd.sender import MAX_DATAGRAM_BYTES, DatagramBatcher
from locust_ext.testing import running_backend

grpc.experimental.gevent.init_gevent()

METHOD = "/loadtest.v1.Hello/SayHello"
MAX_CALLS_PER_ROUND = 2_000_000


class Failed(Exception):
    """Fired for every 10th microbench event, so the failure path is measured too."""


def load_round(stub: pb_grpc.HelloStub, environment: Environment, seconds: float, concurrency: int) -> float:
    """Calls per second of ``concurrency`` greenlets calling SayHello and firing request events."""
    fire = environment.events.request.fire
    request = pb.HelloRequest(name="bench")
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    def worker(index: int) -> None:
        while time.perf_counter() < deadline and counts[index] < MAX_CALLS_PER_ROUND:
            started = time.perf_counter()
            reply = stub.SayHello(request, timeout=5)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            fire(
                request_type="grpc",
                name=METHOD,
                response_time=elapsed_ms,
                response_length=reply.ByteSize(),
                exception=None,
                context={},
            )
            counts[index] += 1

    started = time.perf_counter()
    gevent.joinall([gevent.spawn(worker, i) for i in range(concurrency)])
    return sum(counts) / (time.perf_counter() - started)


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
    parser.add_argument("--rounds", type=int, default=3, help="off/on round pairs (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="greenlets calling (default 8)")
    parser.add_argument("--events", type=int, default=300_000, help="microbench events (default 300000)")
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink_socket, running_backend("grpc") as backend:
        sink_socket.bind(("127.0.0.1", 0))
        sink = ("127.0.0.1", int(sink_socket.getsockname()[1]))
        with grpc.insecure_channel(backend.address) as channel:
            stub = pb_grpc.HelloStub(channel)
            load_round(stub, Environment(), 0.5, args.concurrency)  # warm up the channel
            off: list[float] = []
            on: list[float] = []
            for _ in range(args.rounds):
                off.append(load_round(stub, Environment(), args.seconds, args.concurrency))
                mirrored = Environment()
                mirror = StatsdMirror(mirrored, MirrorConfig(*sink), DatagramBatcher(socket.AF_INET, sink))
                mirror.start()
                on.append(load_round(stub, mirrored, args.seconds, args.concurrency))
                mirror.close()
                print(f"round: mirror off {off[-1]:,.0f} calls/s, on {on[-1]:,.0f} calls/s", flush=True)
        off_median, on_median = statistics.median(off), statistics.median(on)
        print(f"gRPC load loop, median of {args.rounds}: off {off_median:,.0f} calls/s, on {on_median:,.0f} calls/s")
        print(f"mirror on / off = {on_median / off_median:.3f} (overhead {100 * (1 - on_median / off_median):.1f} %)")
        mirror_rate, pipeline_rate = microbench(sink, args.events)
        print(
            f"listener alone: {mirror_rate:,.0f} events/s ({1e6 / mirror_rate:.2f} us/event); "
            f"statsd package pipeline: {pipeline_rate:,.0f} events/s; mirror / pipeline = "
            f"{mirror_rate / pipeline_rate:.2f}"
        )


if __name__ == "__main__":
    main()
