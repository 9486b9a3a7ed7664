"""Reference WebSocket server: echo, compute, stream and ping over a JSON text protocol, with faults and counters.

``python -m backends.websocket_server [--host 127.0.0.1] [--port 8080]``. Built on the ``websockets``
asyncio server, one event loop in one process. The protocol is in ``backends.ws_session``, the faults in
``backends.ws_faults``, rooms and delivery faults in ``backends.ws_rooms``, the counters in
``backends.ws_counters``; HTTP ``GET /stats`` and
``GET /stats/reset`` read and reset the counters without opening a WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import ssl
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from backends import ws_faults
from backends.common import (
    OneLineParser,
    StartupError,
    add_common_arguments,
    check_tls_pair,
    non_negative_float,
    probability,
    raise_open_file_limit,
    read_file_bytes,
    run_backend,
)
from backends.ws_counters import WsCounters
from backends.ws_rooms import DeliveryFaults, Rooms
from backends.ws_session import ServerState, Session
from locust_ext.testing import announce_ready

__all__ = ["HARD_SIZE_FACTOR", "STATS_PATH", "STATS_RESET_PATH", "main", "parse_args"]

log = logging.getLogger("backends.websocket_server")

STATS_PATH = "/stats"
STATS_RESET_PATH = "/stats/reset"
#: Messages up to --max-size are served; larger ones up to this many times --max-size get an error reply
#: and the connection lives on; beyond that the library closes the connection with 1009 (message too big),
#: so one client cannot make the server buffer without bound.
HARD_SIZE_FACTOR = 4
#: How long a closing handshake may take at shutdown before the connection is dropped.
CLOSE_TIMEOUT_S = 2.0
#: Pending-connection queue: bursts of thousands of connects must not wait for SYN retries.
LISTEN_BACKLOG = 4096


def _fewer_collections() -> None:
    """Python's cycle collector walks every object it tracks in each full collection, and a growing server sets
    one off at every quarter of growth: with thousands of connections that was 42 % of the CPU of a ramp to
    10,000 (0.45 -> 0.29 ms per connection without it). What was built at start-up is left out of collections
    (``freeze``), and young collections come every 50,000 allocations instead of 700; cycles are still
    collected."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m backends.websocket_server", description=__doc__.splitlines()[0])
    add_common_arguments(parser, default_port=8080)
    parser.add_argument(
        "--max-size",
        type=_positive_int,
        default=1024 * 1024,
        metavar="BYTES",
        help=f"largest message served; up to {HARD_SIZE_FACTOR}x this gets an error reply (default 1 MiB)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="server processes sharing the port (SO_REUSEPORT), counters summed; rooms are per process (default 1)",
    )
    parser.add_argument(
        "--ping-interval",
        type=non_negative_float,
        default=20.0,
        metavar="SECONDS",
        help="server keepalive pings; a connection whose pong is 20 s late is closed 1011 (0: none; default 20)",
    )
    parser.add_argument(
        "--compression", action="store_true", help="offer permessage-deflate (off: it costs CPU and memory)"
    )
    faults = parser.add_argument_group("fault injection for every request (a request's 'fault' object overrides)")
    faults.add_argument("--fault-delay-ms", type=non_negative_float, default=0.0, help="delay before answering")
    faults.add_argument("--fault-error-rate", type=probability, default=0.0, help="chance of an error reply, 0-1")
    faults.add_argument(
        "--fault-drop-rate", type=probability, default=0.0, help="chance of dropping the connection (no close), 0-1"
    )
    rooms = parser.add_argument_group(
        "delivery faults for every publication (a publication's 'delivery_fault' object overrides)"
    )
    rooms.add_argument("--delivery-drop-rate", type=probability, default=0.0, help="share of deliveries not sent")
    rooms.add_argument(
        "--delivery-duplicate-rate", type=probability, default=0.0, help="share of deliveries sent twice"
    )
    rooms.add_argument(
        "--delivery-reorder-rate",
        type=probability,
        default=0.0,
        help="share of deliveries held back and sent after the publisher's next one to the same member",
    )
    rooms.add_argument(
        "--delivery-reorder-hold-ms",
        type=non_negative_float,
        default=1000.0,
        help="longest a delivery is held back; then it is sent in order (default 1000)",
    )
    args = parser.parse_args(argv)
    if args.delivery_drop_rate + args.delivery_duplicate_rate + args.delivery_reorder_rate > 1.0:
        parser.error("--delivery-drop-rate + --delivery-duplicate-rate + --delivery-reorder-rate must not exceed 1")
    return args


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A server TLS context from --tls-cert/--tls-key, or None for plain ws://."""
    check_tls_pair(args)
    if not args.tls_cert:
        return None
    read_file_bytes(args.tls_cert, "--tls-cert")  # a missing or unreadable file is named in the error
    read_file_bytes(args.tls_key, "--tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(
            f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: not a usable PEM certificate and key: {exc}"
        ) from exc
    return context


def stats_over_http(counters: WsCounters) -> Callable[[ServerConnection, Request], Response | None]:
    """A ``process_request`` hook answering GET /stats and /stats/reset with JSON; other paths go on to WebSocket."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == STATS_PATH:
            tallies = counters.snapshot()
        elif path == STATS_RESET_PATH:
            tallies = counters.reset()
        else:
            return None
        response = connection.respond(200, json.dumps(tallies) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    return process_request


async def run(
    args: argparse.Namespace, counters: WsCounters | None = None, on_ready: Callable[[int], None] | None = None
) -> None:
    """Listen, announce READY (or call ``on_ready`` with the port: a ``--workers`` process, which shares the
    port), serve until SIGINT/SIGTERM, then close every connection with 1001."""
    _fewer_collections()
    fd_limit = raise_open_file_limit()
    log.info("open-file limit %d", fd_limit)
    context = tls_context(args)
    counters = counters or WsCounters()
    faults = DeliveryFaults(args.delivery_drop_rate, args.delivery_duplicate_rate, args.delivery_reorder_rate)
    state = ServerState(
        counters=counters,
        faults=ws_faults.FaultDefaults(args.fault_delay_ms, args.fault_error_rate, args.fault_drop_rate),
        max_size=args.max_size,
        rooms=Rooms(counters, faults, args.delivery_reorder_hold_ms / 1000.0),
    )

    async def handler(connection: ServerConnection) -> None:
        remote = connection.remote_address
        state.counters.peer_opened(str(remote[0]) if remote else "unknown")
        await Session(connection, state).run()

    try:
        server = await serve(
            handler,
            args.host,
            args.port,
            ssl=context,
            compression="deflate" if args.compression else None,
            process_request=stats_over_http(state.counters),
            max_size=HARD_SIZE_FACTOR * args.max_size,
            close_timeout=CLOSE_TIMEOUT_S,
            backlog=LISTEN_BACKLOG,
            reuse_port=on_ready is not None,
            ping_interval=args.ping_interval or None,
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc

    port = server.sockets[0].getsockname()[1]
    if on_ready is not None:
        on_ready(port)
    else:
        announce_ready("wss" if context else "ws", args.host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()  # close code 1001, going away
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers > 1:
        from backends import ws_workers  # only a multi-process server needs it (it imports this module)

        run_backend(lambda: ws_workers.serve(args, tls=tls_context(args) is not None))
        return
    run_backend(lambda: asyncio.run(run(args)))


if __name__ == "__main__":
    main()
