"""How fast the reference WebSocket backend echoes on one core, and what 10,000 idle connections cost it.

``python -m bench.ws_backend_throughput [--seconds 5] [--idle 10000]`` (from the repository root)

Throughput: the server is pinned to one CPU and a driver process to another. The driver speaks raw
WebSocket frames over plain sockets (pre-masked frames, several connections, a window of requests in
flight on each), so the client costs little next to the server and the figure is the server's. Every run
checks the server's counters against what the driver sent. Idle connections: separate client processes
(each under the 20,000 open-file limit) open them; the table gives the server's resident memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import socket
import time
import urllib.request
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import cpu_seconds

if TYPE_CHECKING:
    from locust_ext.testing import Backend

SERVER_CPU = 1
DRIVER_CPU = 0
MASK = b"\x1f\x2e\x3d\x4c"
MAX_MESSAGES_PER_RUN = 20_000_000
IDLE_CLIENT_PROCESSES = 4


@dataclass(frozen=True)
class Scenario:
    """One throughput measurement: what is sent, on how many connections, how many in flight on each."""

    name: str
    frame: bytes
    connections: int
    window: int


def client_frame(payload: bytes, binary: bool) -> bytes:
    """A masked client frame (RFC 6455 section 5.2) carrying ``payload``."""
    opcode = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        header = bytes([opcode, 0x80 | size])
    elif size < 1 << 16:
        header = bytes([opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    masked = bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))
    return header + MASK + masked


def open_websocket(host: str, port: int) -> tuple[socket.socket, bytearray]:
    """A connected socket past the opening handshake, and whatever bytes followed the handshake reply."""
    sock = socket.create_connection((host, port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    received = bytearray()
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"{host}:{port} closed the connection during the handshake")
        received += chunk
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"{host}:{port} refused the upgrade: {head.splitlines()[0]!r}")
    return sock, bytearray(rest)


def take_data_frames(buffer: bytearray) -> int:
    """Remove every complete server frame from ``buffer``; return how many were text or binary frames."""
    count = offset = 0
    while len(buffer) - offset >= 2:
        opcode, size = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F
        start = offset + 2
        if size == 126:
            size, start = int.from_bytes(buffer[start : start + 2], "big"), start + 2
        elif size == 127:
            size, start = int.from_bytes(buffer[start : start + 8], "big"), start + 8
        if start + size > len(buffer):
            break
        offset = start + size
        count += opcode in (0x1, 0x2)
    del buffer[:offset]
    return count


def drive(host: str, port: int, scenario: Scenario, seconds: float, results: Any) -> None:
    """Driver process: keep ``window`` requests in flight on every connection for ``seconds``; report counts."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {DRIVER_CPU})
    connections = [open_websocket(host, port) for _ in range(scenario.connections)]
    burst = scenario.frame * scenario.window
    started = time.perf_counter()
    deadline = started + seconds
    for sock, _ in connections:
        sock.sendall(burst)
    in_flight = [scenario.window] * len(connections)
    sent, received = sum(in_flight), 0
    while any(in_flight):
        # Refill each connection as soon as its window is answered, so the server never runs dry.
        for index, (sock, buffer) in enumerate(connections):
            if not in_flight[index]:
                continue
            answered = take_data_frames(buffer)
            while answered < in_flight[index]:
                chunk = sock.recv(1 << 18)
                if not chunk:
                    raise ConnectionError("the server closed a connection during the run")
                buffer += chunk
                answered += take_data_frames(buffer)
            received += answered
            in_flight[index] = 0
            if time.perf_counter() < deadline and sent < MAX_MESSAGES_PER_RUN:
                sock.sendall(burst)
                in_flight[index] = scenario.window
                sent += scenario.window
    elapsed = time.perf_counter() - started
    for sock, _ in connections:
        sock.close()
    results.put((sent, received, elapsed))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def http_stats(backend: Backend, path: str = "/stats") -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{backend.address}{path}", timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def measure(backend: Backend, scenario: Scenario, seconds: float) -> tuple[float, float]:
    """(messages per second, server CPU share) for one scenario; fails if the server lost or added a message."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    http_stats(backend, "/stats/reset")
    cpu_before = cpu_seconds(backend.process.pid)
    driver = context.Process(target=drive, args=(backend.host, backend.port, scenario, seconds, results))
    driver.start()
    try:
        sent, received, elapsed = results.get(timeout=seconds + 60)
    finally:
        driver.join(30)
        if driver.is_alive():
            driver.kill()
    server_cpu = cpu_seconds(backend.process.pid) - cpu_before
    tallies = http_stats(backend)
    server_received = tallies["received_text"] + tallies["received_binary"]
    if not (sent == received == server_received):
        raise RuntimeError(
            f"{scenario.name}: driver sent {sent}, got {received} back, server counted {server_received}"
        )
    return received / elapsed, server_cpu / elapsed


def pin_server(backend: Backend) -> str:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(backend.process.pid, {SERVER_CPU})
        return f"server pinned to CPU {SERVER_CPU}, driver to CPU {DRIVER_CPU}"
    return "one CPU only: server and driver share it (figures are lower bounds)"


def scenarios() -> list[Scenario]:
    def echo(payload_size: int) -> bytes:
        message = {"type": "echo", "id": 1, "payload": "p" * payload_size}
        return client_frame(json.dumps(message).encode(), binary=False)

    ping = client_frame(json.dumps({"type": "ping", "id": 1, "ts": 0.0}).encode(), binary=False)
    return [
        Scenario("JSON echo, 64 B payload", echo(64), connections=8, window=32),
        Scenario("binary echo, 64 B", client_frame(b"b" * 64, binary=True), connections=8, window=32),
        Scenario("JSON ping -> pong", ping, connections=8, window=32),
        Scenario("JSON echo, 4 KiB payload", echo(4096), connections=8, window=32),
        Scenario("JSON echo, 64 B, one in flight", echo(64), connections=1, window=1),
    ]


def running_ws_backend() -> Any:
    """The test kit's backend launcher, imported only in the parent process.

    Importing ``locust_ext`` loads Locust, which patches sockets and threads with gevent; the driver and
    client processes import this module too, and must run on plain blocking sockets and real threads.
    """
    from backends.kit import running_backend

    return running_backend("websocket")


def throughput_table(seconds: float) -> None:
    with running_ws_backend() as backend:
        placement = pin_server(backend)
        print(f"Echo throughput of the WebSocket backend ({placement}; {seconds:g} s per row)")
        print(f"{'scenario':<34} {'conns':>5} {'window':>6} {'messages/s':>11} {'server CPU':>10} {'vs row 1':>8}")
        first = 0.0
        for scenario in scenarios():
            rate, cpu_share = measure(backend, scenario, seconds)
            first = first or rate
            print(
                f"{scenario.name:<34} {scenario.connections:>5} {scenario.window:>6} {rate:>11,.0f}"
                f" {cpu_share:>10.0%} {rate / first:>8.2f}"
            )


def hold_idle(host: str, port: int, count: int, opened: Any, release: Event) -> None:
    """Client process: open ``count`` connections, report, keep them idle until ``release``, then close."""
    sockets = []
    try:
        for _ in range(count):
            sockets.append(open_websocket(host, port)[0])
        opened.put(len(sockets))
        release.wait(120)
    except OSError as exc:
        opened.put(f"{len(sockets)} opened, then: {exc}")
    finally:
        for sock in sockets:
            sock.close()


def wait_for_open(backend: Backend, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        now_open = int(http_stats(backend)["connections_open"])
        if now_open == expected or time.monotonic() > deadline:
            return now_open
        time.sleep(0.2)


def idle_table(total: int) -> None:
    context = multiprocessing.get_context("spawn")
    opened, release = context.Queue(), context.Event()
    share = -(-total // IDLE_CLIENT_PROCESSES)
    counts = [min(share, total - i * share) for i in range(IDLE_CLIENT_PROCESSES) if total > i * share]
    with running_ws_backend() as backend:
        pid = backend.process.pid
        rss_before = rss_mib(pid)
        started = time.perf_counter()
        clients = [
            context.Process(target=hold_idle, args=(backend.host, backend.port, count, opened, release))
            for count in counts
        ]
        for client in clients:
            client.start()
        try:
            reports = [opened.get(timeout=300) for _ in clients]
            failures = [report for report in reports if not isinstance(report, int)]
            now_open = wait_for_open(backend, total, timeout=60)
            opening_s = time.perf_counter() - started
            rss_after = rss_mib(pid)
            sock, _ = open_websocket(backend.host, backend.port)
            sock.sendall(client_frame(json.dumps({"type": "ping", "id": 1, "ts": 0}).encode(), binary=False))
            reply = bytearray(sock.recv(4096))
            still_serving = b'"pong"' in reply and take_data_frames(reply) == 1
            sock.close()
        finally:
            release.set()
            for client in clients:
                client.join(60)
                if client.is_alive():
                    client.kill()
        closed_to = wait_for_open(backend, 0, timeout=60)
    print()
    print(f"Idle connections held by the WebSocket backend ({len(clients)} client processes)")
    print(f"{'connections open':<38} {now_open:>10,}")
    print(f"{'time to open them all':<38} {opening_s:>9.1f}s")
    print(f"{'server RSS before':<38} {rss_before:>8.1f} MiB")
    print(f"{'server RSS with them open':<38} {rss_after:>8.1f} MiB")
    print(f"{'server memory per idle connection':<38} {(rss_after - rss_before) * 1024 / max(now_open, 1):>8.1f} KiB")
    print(f"{'answers a new client meanwhile':<38} {'yes' if still_serving else 'NO':>10}")
    print(f"{'open after the clients closed':<38} {closed_to:>10,}")
    if failures or now_open != total:
        raise SystemExit(f"expected {total} idle connections, the server saw {now_open}: {failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput row (max 10)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections to hold (0 skips)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 10:
        parser.error(f"--seconds {args.seconds}: must be in (0, 10]")
    throughput_table(args.seconds)
    if args.idle:
        idle_table(args.idle)


if __name__ == "__main__":
    main()
