"""A gRPC server whose reflection service wants a token: the reference services, reflection v1 and/or v1alpha.

``python -m tests.reflection_server --port 0 [--token T] [--reflection both|v1|v1alpha] [--tls-cert P --tls-key P]``

Reflection calls without ``x-reflection-token: T`` are refused (UNAUTHENTICATED); the calls themselves need no
token. ``/test.ReflectionCounts/Get`` answers (JSON bytes) how many reflection calls each service path got,
refused ones included, so tests can count lookups at the server. ``grpc.reflection.v1`` is served by grpcio's
v1alpha servicer under the v1 name: the two protocols share their messages field for field.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha._async import ReflectionServicer

from backends.grpc_server import SERVICE_NAMES, ComputeService, EchoService, HelloService, StreamService
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import Backend, announce_ready, running_server

REPO_ROOT = Path(__file__).resolve().parent.parent

TOKEN_KEY = "x-reflection-token"
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
#: The reflection method paths, as the counts name them.
V1 = f"/{V1_SERVICE}/ServerReflectionInfo"
V1ALPHA = f"/{V1ALPHA_SERVICE}/ServerReflectionInfo"


class ReflectionGate(grpc.aio.ServerInterceptor):
    """Counts reflection calls per service path and refuses those without the token."""

    def __init__(self, token: str | None, counts: Counter[str]) -> None:
        self.token = token
        self.counts = counts

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        if not method.startswith("/grpc.reflection."):
            return await continuation(details)
        self.counts[method] += 1
        metadata = dict(details.invocation_metadata or ())
        if self.token is not None and metadata.get(TOKEN_KEY) != self.token:

            async def refuse(_requests: Any, context: grpc.aio.ServicerContext) -> None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"reflection needs {TOKEN_KEY}")

            return grpc.stream_stream_rpc_method_handler(refuse)
        return await continuation(details)


async def serve(args: argparse.Namespace) -> None:
    counts: Counter[str] = Counter()
    server = grpc.aio.server(interceptors=[ReflectionGate(args.token, counts)])
    pb_grpc.add_HelloServicer_to_server(HelloService(), server)
    pb_grpc.add_ComputeServicer_to_server(ComputeService(), server)
    pb_grpc.add_EchoServicer_to_server(EchoService(), server)
    pb_grpc.add_StreamServicer_to_server(StreamService(), server)
    names = (*SERVICE_NAMES[:4], V1ALPHA_SERVICE if args.reflection != "v1" else V1_SERVICE)
    servicer = ReflectionServicer(names)
    if args.reflection in ("both", "v1alpha"):
        reflection.enable_server_reflection(names, server)
    if args.reflection in ("both", "v1"):
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    V1_SERVICE,
                    {
                        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                            servicer.ServerReflectionInfo,
                            request_deserializer=rpb.ServerReflectionRequest.FromString,
                            response_serializer=rpb.ServerReflectionResponse.SerializeToString,
                        )
                    },
                ),
            )
        )

    async def get_counts(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return json.dumps(dict(counts)).encode()

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.ReflectionCounts", {"Get": grpc.unary_unary_rpc_method_handler(get_counts)}
            ),
        )
    )
    if args.tls_cert:
        credentials = grpc.ssl_server_credentials([(Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes())])
        port = server.add_secure_port(f"127.0.0.1:{args.port}", credentials)
    else:
        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    announce_ready("grpcs" if args.tls_cert else "grpc", "127.0.0.1", port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(grace=0.5)


@dataclass
class ReflectionServer:
    """A running reflection test server and the reflection calls it counted."""

    server: Backend

    @property
    def address(self) -> str:
        return self.server.address

    def reflection_calls(self) -> dict[str, int]:
        """Reflection calls the server got, per method path (refused ones included)."""
        with grpc.insecure_channel(self.address) as channel:
            answer = channel.unary_unary("/test.ReflectionCounts/Get")(b"", timeout=10)
        counts: dict[str, int] = json.loads(answer)
        return counts


@contextmanager
def reflection_server(*args: str) -> Iterator[ReflectionServer]:
    """The server on a free port (``args``: its flags), always stopped."""
    command = [sys.executable, "-m", "tests.reflection_server", "--port", "0", *args]
    with running_server(command, kind="grpc", cwd=REPO_ROOT) as server:
        yield ReflectionServer(server)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reflection_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help=f"{TOKEN_KEY} value reflection calls must carry")
    parser.add_argument("--reflection", choices=("both", "v1", "v1alpha"), default="both")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
