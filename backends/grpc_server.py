"""Reference gRPC server: hello, compute, echo (unary and streaming), server stream, admin counters.

``python -m backends.grpc_server [--host 127.0.0.1] [--port 50051]``. Also serves grpc.health.v1 and
server reflection. Built on grpc.aio, one event loop in one process: measured faster than the
thread-pool server (see README, "Measured figures"). Faults: see ``backends.grpc_faults``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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
    announce_ready,
    check_tls_pair,
    fail,
    non_negative_float,
    probability,
    read_file_bytes,
)
from backends.compute import MAX_HASH_ROUNDS, hash_rounds
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc

log = logging.getLogger("backends.grpc_server")

#: Methods under this prefix are counted and can be faulted; Admin, health and reflection are not.
COUNTED_PREFIX = "/loadtest.v1."
ADMIN_PREFIX = "/loadtest.v1.Admin/"
MAX_STREAM_PAYLOAD = 16 * 1024 * 1024


@dataclass
class MethodCounters:
    """Mutable per-method tallies; field names mirror ``loadtest.v1.MethodCounters``."""

    received: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    messages_sent: int = 0
    messages_received: int = 0


@dataclass
class TrafficCounters:
    """Everything the server has seen since the last reset. Touched only from the event loop."""

    methods: dict[str, MethodCounters] = field(default_factory=dict)
    peers: set[str] = field(default_factory=set)

    def for_method(self, method: str) -> MethodCounters:
        counters = self.methods.get(method)
        if counters is None:
            counters = self.methods[method] = MethodCounters()
        return counters

    def snapshot(self) -> pb.Counters:
        reply = pb.Counters(distinct_peers=len(self.peers))
        for method, c in self.methods.items():
            reply.methods[method].CopyFrom(pb.MethodCounters(**vars(c)))
        return reply

    def reset(self) -> pb.Counters:
        """Clear every tally; return what they were."""
        before = self.snapshot()
        self.methods.clear()
        self.peers.clear()
        return before


class _CallTally:
    """Tracks one call's outcome and books it in the counters exactly once, when gRPC says the call is done."""

    def __init__(self, counters: MethodCounters) -> None:
        self.counters = counters
        self.outcome = "cancelled"  # until the handler says otherwise
        counters.received += 1

    def on_done(self, context: grpc.aio.ServicerContext) -> None:
        if context.cancelled():
            self.counters.cancelled += 1
        elif self.outcome == "completed":
            self.counters.completed += 1
        elif self.outcome == "failed":
            self.counters.failed += 1
        else:
            self.counters.cancelled += 1


class TrafficInterceptor(grpc.aio.ServerInterceptor):
    """Counts and faults every loadtest.v1 call (except Admin) in one place, for all four call kinds."""

    def __init__(self, counters: TrafficCounters, defaults: grpc_faults.FaultDefaults) -> None:
        self.counters = counters
        self.defaults = defaults

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(COUNTED_PREFIX) or method.startswith(ADMIN_PREFIX):
            return handler
        return self._wrap(handler, method)

    async def _begin(self, method: str, context: grpc.aio.ServicerContext) -> tuple[_CallTally, Any]:
        counters = self.counters.for_method(method)
        tally = _CallTally(counters)
        self.counters.peers.add(context.peer())
        context.add_done_callback(tally.on_done)
        try:
            fault = grpc_faults.decide(context.invocation_metadata() or (), self.defaults)
        except grpc_faults.FaultSpecError as exc:
            tally.outcome = "failed"
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000.0)
        if fault.status is not None and fault.after_messages is None:
            tally.outcome = "failed"
            await context.abort(fault.status, fault.message)
        return tally, fault

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        begin = self._begin

        async def fail_after_limit(tally: _CallTally, fault: Any, context: grpc.aio.ServicerContext) -> None:
            tally.outcome = "failed"
            await context.abort(fault.status, fault.message)

        if not handler.request_streaming and not handler.response_streaming:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                tally, _ = await begin(method, context)
                reply = await inner_uu(request, context)
                tally.outcome = "completed"
                return reply

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )

        if not handler.request_streaming:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                tally, fault = await begin(method, context)
                sent = 0
                async for reply in inner_us(request, context):
                    if fault.after_messages is not None and sent >= fault.after_messages:
                        await fail_after_limit(tally, fault, context)
                    yield reply
                    sent += 1
                    tally.counters.messages_sent += 1
                if fault.after_messages is not None:
                    await fail_after_limit(tally, fault, context)
                tally.outcome = "completed"

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )

        def limited_requests(
            requests: AsyncIterator[Any], tally: _CallTally, fault: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async def generate() -> AsyncIterator[Any]:
                read = 0
                async for request in requests:
                    if fault.after_messages is not None and read >= fault.after_messages:
                        await fail_after_limit(tally, fault, context)
                    read += 1
                    tally.counters.messages_received += 1
                    yield request
                if fault.after_messages is not None:
                    await fail_after_limit(tally, fault, context)

            return generate()

        if not handler.response_streaming:
            inner_su = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                tally, fault = await begin(method, context)
                reply = await inner_su(limited_requests(requests, tally, fault, context), context)
                tally.outcome = "completed"
                return reply

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )

        inner_ss = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            tally, fault = await begin(method, context)
            async for reply in inner_ss(limited_requests(requests, tally, fault, context), context):
                yield reply
                tally.counters.messages_sent += 1
            tally.outcome = "completed"

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer
        )


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


async def serve(args: argparse.Namespace) -> None:
    counters = TrafficCounters()
    defaults = grpc_faults.FaultDefaults(args.fault_delay_ms, args.fault_error_rate, args.fault_status)
    server = grpc.aio.server(
        interceptors=[TrafficInterceptor(counters, defaults)],
        options=[
            ("grpc.so_reuseport", 0),  # a port in use must be an error, not a silently shared socket
            ("grpc.max_receive_message_length", args.max_message_bytes),
            ("grpc.max_send_message_length", args.max_message_bytes),
        ],
    )
    pb_grpc.add_HelloServicer_to_server(HelloService(), server)
    pb_grpc.add_ComputeServicer_to_server(ComputeService(), server)
    pb_grpc.add_EchoServicer_to_server(EchoService(), server)
    pb_grpc.add_StreamServicer_to_server(StreamService(), server)
    pb_grpc.add_AdminServicer_to_server(AdminService(counters), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    credentials = server_credentials(args)
    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {address}: port in use or address not available") from exc
    if port == 0:
        raise StartupError(f"cannot listen on {address}: port in use or address not available")

    await server.start()
    announce_ready("grpcs" if credentials else "grpc", args.host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=1.0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except StartupError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
