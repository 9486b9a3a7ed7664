"""``--workers N``: N gRPC server processes on one port (SO_REUSEPORT among themselves), started and stopped together.

The kernel spreads incoming connections over the workers' listening sockets; the counters live in shared
memory (``backends.grpc_counters``), so every worker books into one set. Before any worker starts, the port is
bound once without SO_REUSEPORT: that refuses a port someone else listens on (even with SO_REUSEPORT) and turns
``--port 0`` into a concrete free port for every worker to share. One READY line is printed once every worker
listens; SIGTERM or SIGINT stops them all, and a worker whose supervisor has gone stops by itself.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from backends.common import StartupError
from backends.grpc_counters import SharedBlock

#: Runs one server until told to stop: (args, port, counters, share_port, on_ready) -> None; raises StartupError.
ServerTarget = Callable[[argparse.Namespace, int, SharedBlock, bool, Callable[[], None]], None]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def claim_port(host: str, port: int) -> int:
    """Bind ``host:port`` once without SO_REUSEPORT, then let it go: the port to serve on, or StartupError."""
    problem = f"cannot listen on {listen_address(host, port)}: port in use or address not available"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise StartupError(problem) from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            raise StartupError(problem) from exc
        return int(probe.getsockname()[1])


def _worker(target: ServerTarget, args: argparse.Namespace, port: int, block: SharedBlock, reply: Connection) -> None:
    """A worker process: serve, say READY (or the startup problem) through ``reply``."""
    try:
        target(args, port, block, True, lambda: reply.send(None))
    except StartupError as exc:
        reply.send(str(exc))
    except KeyboardInterrupt:
        pass


def run_workers(
    target: ServerTarget, args: argparse.Namespace, port: int, block: SharedBlock, announce: Callable[[], None]
) -> None:
    """Run ``args.workers`` processes of ``target`` on ``port``; ``announce`` once all listen; stop all on a signal."""
    context = multiprocessing.get_context("spawn")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous_wake = signal.set_wakeup_fd(wake_write)
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in (signal.SIGINT, signal.SIGTERM)}
    workers: list[BaseProcess] = []
    try:
        replies = []
        for _ in range(args.workers):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(target, args, port, block, send), daemon=True)
            process.start()
            send.close()  # the worker holds the only write end: its exit reads as EOF
            workers.append(process)
            replies.append(receive)
        if not _all_listening(replies, wake_read):
            return
        announce()
        woken = wait([wake_read, *(worker.sentinel for worker in workers)])
        if wake_read not in woken:
            dead = next(worker for worker in workers if worker.sentinel in woken)
            raise StartupError(f"a worker exited unexpectedly (exit code {dead.exitcode}); stopped the others")
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: the worker stops gracefully
        for worker in workers:
            worker.join(STOP_TIMEOUT_S)
            if worker.is_alive():
                worker.kill()
                worker.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_wake)
        os.close(wake_read)
        os.close(wake_write)


def _all_listening(replies: list[Connection], wake: int) -> bool:
    """True once every worker said READY, False on a signal; StartupError for the first problem a worker reports."""
    pending = list(replies)
    while pending:
        ready = wait([*pending, wake], timeout=READY_TIMEOUT_S)
        if not ready:
            raise StartupError(f"workers did not start listening within {READY_TIMEOUT_S:g} s")
        if wake in ready:
            return False
        for reply in ready:
            assert isinstance(reply, Connection)
            try:
                problem = reply.recv()
            except EOFError:
                problem = "a worker exited before listening"
            if problem is not None:
                raise StartupError(problem)
            pending.remove(reply)
    return True
