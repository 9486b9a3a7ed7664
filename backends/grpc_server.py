"""Reference gRPC server: hello, compute, echo (unary and streaming), server stream, admin counters.

``python -m backends.grpc_server [--host 127.0.0.1] [--port 50051] [--workers N]``. Also serves grpc.health.v1
and server reflection (v1alpha; ``--no-reflection`` turns it off). Each process is one grpc.aio event loop;
``--workers N`` runs N of them on one port (``backends.grpc_workers``) with shared counters
(``backends.grpc_counters``). Chosen by measurement (``bench/grpc_backend_throughput.py``, README "Why this
server implementation"). Counting and faults: ``backends.grpc_traffic`` and ``backends.grpc_faults``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable

# grpc core logs its own copy of startup errors (e.g. a port in use) to stderr; we report them in one line.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from backends import grpc_faults
from backends.common import (
    OneLineParser,
    StartupError,
    add_common_arguments,
    check_tls_pair,
    non_negative_float,
    probability,
    read_file_bytes,
    run_backend,
)
from backends.compute import MAX_HASH_ROUNDS, hash_rounds
from backends.grpc_counters import SharedBlock, TrafficCounters
from backends.grpc_traffic import CountingRegistrar, Traffic
from backends.grpc_workers import claim_port, listen_address, run_workers
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import announce_ready

log = logging.getLogger("backends.grpc_server")

MAX_STREAM_PAYLOAD = 16 * 1024 * 1024
MAX_WORKERS = 64
ORPHAN_CHECK_S = 1.0


class HelloService(pb_grpc.HelloServicer):
    async def SayHello(self, request: pb.HelloRequest, context: grpc.aio.ServicerContext) -> pb.HelloReply:
        return pb.HelloReply(message=f"Hello, {request.name or 'world'}!")


class ComputeService(pb_grpc.ComputeServicer):
    async def Hash(self, request: pb.ComputeRequest, context: grpc.aio.ServicerContext) -> pb.ComputeReply:
        if request.rounds > MAX_HASH_ROUNDS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"rounds {request.rounds} exceeds {MAX_HASH_ROUNDS}")
        return pb.ComputeReply(rounds=request.rounds, digest=hash_rounds(request.rounds, request.seed))


class EchoService(pb_grpc.EchoServicer):
    async def Echo(self, request: pb.EchoRequest, context: grpc.aio.ServicerContext) -> pb.EchoReply:
        return pb.EchoReply(payload=request.payload)

    async def EchoClientStream(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: grpc.aio.ServicerContext
    ) -> pb.EchoSummary:
        count = total = 0
        async for request in request_iterator:
            count += 1
            total += len(request.payload)
        return pb.EchoSummary(message_count=count, total_bytes=total)

    async def EchoBidi(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.EchoReply]:
        seq = 0
        async for request in request_iterator:
            yield pb.EchoReply(payload=request.payload, seq=seq)
            seq += 1


class StreamService(pb_grpc.StreamServicer):
    async def Subscribe(
        self, request: pb.StreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamMessage]:
        if request.payload_size > MAX_STREAM_PAYLOAD:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"payload_size {request.payload_size} exceeds {MAX_STREAM_PAYLOAD}",
            )
        payload = b"x" * request.payload_size
        interval = request.interval_ms / 1000.0
        for seq in range(request.count):
            if seq and interval:
                await asyncio.sleep(interval)
            yield pb.StreamMessage(seq=seq, sent_at_unix_nanos=time.time_ns(), payload=payload)


class AdminService(pb_grpc.AdminServicer):
    def __init__(self, counters: TrafficCounters) -> None:
        self.counters = counters

    async def GetCounters(self, request: pb.GetCountersRequest, context: grpc.aio.ServicerContext) -> pb.Counters:
        return self.counters.snapshot()

    async def ResetCounters(self, request: pb.ResetCountersRequest, context: grpc.aio.ServicerContext) -> pb.Counters:
        return self.counters.reset()


SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["Hello"].full_name,
    pb.DESCRIPTOR.services_by_name["Compute"].full_name,
    pb.DESCRIPTOR.services_by_name["Echo"].full_name,
    pb.DESCRIPTOR.services_by_name["Stream"].full_name,
    pb.DESCRIPTOR.services_by_name["Admin"].full_name,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m backends.grpc_server", description=__doc__.splitlines()[0])
    add_common_arguments(parser, default_port=50051)
    parser.add_argument("--tls-client-ca", metavar="PEM", help="CA for client certificates; enables mTLS")
    faults = parser.add_argument_group("fault injection for every call (metadata x-fault-* overrides)")
    faults.add_argument("--fault-delay-ms", type=non_negative_float, default=0.0, help="delay before answering")
    faults.add_argument("--fault-error-rate", type=probability, default=0.0, help="chance a call fails, 0-1")
    faults.add_argument("--fault-status", default="UNAVAILABLE", help="status for --fault-error-rate failures")
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT); counters add up across them (default 1)",
    )
    parser.add_argument(
        "--no-reflection",
        action="store_true",
        help="do not serve server reflection (for clients that must work from .proto files or a protoset)",
    )
    parser.add_argument(
        "--max-message-bytes", type=int, default=64 * 1024 * 1024, help="largest message accepted or sent"
    )
    args = parser.parse_args(argv)
    try:
        args.fault_status = grpc_faults.parse_status(args.fault_status)
    except grpc_faults.FaultSpecError as exc:
        parser.error(f"--fault-status: {exc}")
    return args


def server_credentials(args: argparse.Namespace) -> grpc.ServerCredentials | None:
    """TLS (and mTLS when a client CA is given) credentials, or None for plaintext."""
    check_tls_pair(args)
    if args.tls_client_ca and not args.tls_cert:
        raise StartupError("--tls-client-ca needs --tls-cert and --tls-key")
    if not args.tls_cert:
        return None
    cert = read_file_bytes(args.tls_cert, "--tls-cert")
    key = read_file_bytes(args.tls_key, "--tls-key")
    client_ca = read_file_bytes(args.tls_client_ca, "--tls-client-ca")
    assert cert is not None and key is not None
    try:
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
    except Exception as exc:  # grpc raises bare RuntimeError/TypeError for bad PEM
        raise StartupError(f"--tls-cert/--tls-key: not a usable PEM certificate and key: {exc}") from exc


def worker_count(text: str) -> int:
    """argparse type: a number of worker processes, 1-64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is outside 1-{MAX_WORKERS}")
    return value


async def serve(
    args: argparse.Namespace, port: int, block: SharedBlock, share_port: bool, on_ready: Callable[[], None]
) -> None:
    """Serve on ``port`` until SIGINT/SIGTERM (or until the supervising process is gone, when ``share_port``)."""
    counters = TrafficCounters(block)
    defaults = grpc_faults.FaultDefaults(args.fault_delay_ms, args.fault_error_rate, args.fault_status)
    server = grpc.aio.server(
        options=[
            # Only our own workers share a port (grpc_workers claimed it first); otherwise a port in use is an error.
            ("grpc.so_reuseport", int(share_port)),
            ("grpc.max_receive_message_length", args.max_message_bytes),
            ("grpc.max_send_message_length", args.max_message_bytes),
        ],
    )
    counted = CountingRegistrar(server, Traffic(counters, defaults))
    pb_grpc.add_HelloServicer_to_server(HelloService(), counted)
    pb_grpc.add_ComputeServicer_to_server(ComputeService(), counted)
    pb_grpc.add_EchoServicer_to_server(EchoService(), counted)
    pb_grpc.add_StreamServicer_to_server(StreamService(), counted)
    pb_grpc.add_AdminServicer_to_server(AdminService(counters), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if not args.no_reflection:
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    credentials = server_credentials(args)
    address = listen_address(args.host, port)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {address}: port in use or address not available") from exc
    if bound == 0:
        raise StartupError(f"cannot listen on {address}: port in use or address not available")

    await server.start()
    on_ready()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    orphan_watch = loop.create_task(_stop_when_orphaned(os.getppid(), stop)) if share_port else None
    await stop.wait()
    if orphan_watch is not None:
        orphan_watch.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=1.0)


async def _stop_when_orphaned(parent: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once the supervising process is gone (killed without the chance to stop its workers)."""
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK_S)
    stop.set()


def run_server(
    args: argparse.Namespace, port: int, block: SharedBlock, share_port: bool, on_ready: Callable[[], None]
) -> None:
    """One server process's whole life (see :func:`serve`); also the target of each ``--workers`` process."""
    asyncio.run(serve(args, port, block, share_port, on_ready))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def serve_all() -> None:
        scheme = "grpcs" if server_credentials(args) else "grpc"  # bad TLS files fail here, before any worker starts
        port = claim_port(args.host, args.port)
        block = SharedBlock.create()
        announce = lambda: announce_ready(scheme, args.host, port)  # noqa: E731
        if args.workers == 1:
            run_server(args, port, block, False, announce)
        else:
            run_workers(run_server, args, port, block, announce)

    run_backend(serve_all)


if __name__ == "__main__":
    main()
