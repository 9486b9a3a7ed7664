"""A gRPC server for the native transport's conformance tests: grpcio's sync server, or grpc.aio's (``--aio``).

loadtest.v1's Hello, Echo and Stream services, steered by request metadata so one server covers every case:

- ``x-echo-*`` keys come back as initial and as trailing metadata (``-bin`` keys too);
- ``x-status`` / ``x-message`` end the call with that status code and details (after any messages);
- ``x-sleep-ms`` delays the answer (deadlines, cancellation); a call cancelled meanwhile is counted, and
  ``SayHello(name="cancelled")`` answers with that count.

``--gzip`` compresses every response; ``--tls-cert/--tls-key`` (and ``--tls-client-ca`` for mTLS) serve TLS.
Prints the test kit's ready line once it listens; stops on SIGTERM (a graceful stop: GOAWAY, then close).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: tests/test_grpc/ is two below it

import grpc

from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import announce_ready

LIMIT = 64 * 1024 * 1024
OPTIONS = [("grpc.max_receive_message_length", LIMIT), ("grpc.max_send_message_length", LIMIT)]
cancelled = 0


def _settings(context: Any) -> tuple[list[tuple[str, Any]], grpc.StatusCode | None, str, float]:
    echo, status, message, sleep_s = [], None, "", 0.0
    for key, value in context.invocation_metadata():
        if key.startswith("x-echo-"):
            echo.append((key, value))
        elif key == "x-status":
            status = grpc.StatusCode[value] if not value.isdigit() else _code(int(value))
        elif key == "x-message":
            message = value
        elif key == "x-sleep-ms":
            sleep_s = int(value) / 1000
    return echo, status, message, sleep_s


def _code(number: int) -> grpc.StatusCode:
    return next(code for code in grpc.StatusCode if code.value[0] == number)


class Sync(pb_grpc.HelloServicer, pb_grpc.EchoServicer, pb_grpc.StreamServicer):
    """The sync server's handlers (one thread per call)."""

    def _begin(self, context: Any) -> tuple[grpc.StatusCode | None, str]:
        global cancelled
        echo, status, message, sleep_s = _settings(context)
        if echo:
            context.send_initial_metadata(echo)
            context.set_trailing_metadata(echo)
        deadline = time.monotonic() + sleep_s
        while time.monotonic() < deadline:
            if not context.is_active():
                cancelled += 1
                return grpc.StatusCode.CANCELLED, ""
            time.sleep(0.005)
        return status, message

    def _end(self, context: Any, status: grpc.StatusCode | None, message: str) -> None:
        if status is not None and status is not grpc.StatusCode.OK:
            context.abort(status, message)

    def SayHello(self, request: pb.HelloRequest, context: Any) -> pb.HelloReply:
        if request.name == "cancelled":
            return pb.HelloReply(message=str(cancelled))
        status, message = self._begin(context)
        self._end(context, status, message)
        return pb.HelloReply(message=f"Hello, {request.name}!")

    def Echo(self, request: pb.EchoRequest, context: Any) -> pb.EchoReply:
        status, message = self._begin(context)
        self._end(context, status, message)
        return pb.EchoReply(payload=request.payload)

    def EchoClientStream(self, request_iterator: Any, context: Any) -> pb.EchoSummary:
        status, message = self._begin(context)
        count = total = 0
        for request in request_iterator:
            count, total = count + 1, total + len(request.payload)
        self._end(context, status, message)
        return pb.EchoSummary(message_count=count, total_bytes=total)

    def EchoBidi(self, request_iterator: Any, context: Any) -> Any:
        status, message = self._begin(context)
        for seq, request in enumerate(request_iterator):
            yield pb.EchoReply(payload=request.payload, seq=seq)
        self._end(context, status, message)

    def Subscribe(self, request: pb.StreamRequest, context: Any) -> Any:
        status, message = self._begin(context)
        for seq in range(request.count):
            if request.interval_ms:
                time.sleep(request.interval_ms / 1000)
            yield pb.StreamMessage(seq=seq, sent_at_unix_nanos=time.time_ns(), payload=b"x" * request.payload_size)
        self._end(context, status, message)


class Aio(pb_grpc.HelloServicer, pb_grpc.EchoServicer, pb_grpc.StreamServicer):
    """The grpc.aio server's handlers (coroutines)."""

    async def _begin(self, context: Any) -> tuple[grpc.StatusCode | None, str]:
        global cancelled
        echo, status, message, sleep_s = _settings(context)
        if echo:
            await context.send_initial_metadata(echo)
            context.set_trailing_metadata(echo)
        if sleep_s:
            try:
                await asyncio.sleep(sleep_s)
            except asyncio.CancelledError:
                cancelled += 1
                raise
        return status, message

    async def _end(self, context: Any, status: grpc.StatusCode | None, message: str) -> None:
        if status is not None and status is not grpc.StatusCode.OK:
            await context.abort(status, message)

    async def SayHello(self, request: pb.HelloRequest, context: Any) -> pb.HelloReply:
        if request.name == "cancelled":
            return pb.HelloReply(message=str(cancelled))
        status, message = await self._begin(context)
        await self._end(context, status, message)
        return pb.HelloReply(message=f"Hello, {request.name}!")

    async def Echo(self, request: pb.EchoRequest, context: Any) -> pb.EchoReply:
        status, message = await self._begin(context)
        await self._end(context, status, message)
        return pb.EchoReply(payload=request.payload)

    async def EchoClientStream(self, request_iterator: Any, context: Any) -> pb.EchoSummary:
        status, message = await self._begin(context)
        count = total = 0
        async for request in request_iterator:
            count, total = count + 1, total + len(request.payload)
        await self._end(context, status, message)
        return pb.EchoSummary(message_count=count, total_bytes=total)

    async def EchoBidi(self, request_iterator: Any, context: Any) -> Any:
        status, message = await self._begin(context)
        seq = 0
        async for request in request_iterator:
            yield pb.EchoReply(payload=request.payload, seq=seq)
            seq += 1
        await self._end(context, status, message)

    async def Subscribe(self, request: pb.StreamRequest, context: Any) -> Any:
        status, message = await self._begin(context)
        for seq in range(request.count):
            if request.interval_ms:
                await asyncio.sleep(request.interval_ms / 1000)
            yield pb.StreamMessage(seq=seq, sent_at_unix_nanos=time.time_ns(), payload=b"x" * request.payload_size)
        await self._end(context, status, message)


def _credentials(args: argparse.Namespace) -> grpc.ServerCredentials | None:
    if not args.tls_cert:
        return None
    pair = [(Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes())]
    if args.tls_client_ca:
        return grpc.ssl_server_credentials(pair, Path(args.tls_client_ca).read_bytes(), require_client_auth=True)
    return grpc.ssl_server_credentials(pair)


def _bind(server: Any, args: argparse.Namespace) -> int:
    address = f"{args.host}:{args.port}"
    credentials = _credentials(args)
    return int(server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address))


def _add(server: Any, servicer: Any) -> None:
    pb_grpc.add_HelloServicer_to_server(servicer, server)
    pb_grpc.add_EchoServicer_to_server(servicer, server)
    pb_grpc.add_StreamServicer_to_server(servicer, server)


def run_sync(args: argparse.Namespace, compression: grpc.Compression | None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=64), options=OPTIONS, compression=compression)
    _add(server, Sync())
    port = _bind(server, args)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    announce_ready("grpc", args.host, port)
    stop.wait()
    server.stop(grace=args.grace).wait()


async def run_aio(args: argparse.Namespace, compression: grpc.Compression | None) -> None:
    server = grpc.aio.server(options=OPTIONS, compression=compression)
    _add(server, Aio())
    port = _bind(server, args)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    announce_ready("grpc", args.host, port)
    await stop.wait()
    await server.stop(grace=args.grace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--aio", action="store_true", help="grpc.aio's server instead of the sync one")
    parser.add_argument("--gzip", action="store_true", help="compress every response with gzip")
    parser.add_argument("--grace", type=float, default=0.5, help="seconds calls in flight get on SIGTERM")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-client-ca")
    args = parser.parse_args()
    compression = grpc.Compression.Gzip if args.gzip else None
    if args.aio:
        asyncio.run(run_aio(args, compression))
    else:
        run_sync(args, compression)


if __name__ == "__main__":
    main()
