"""The WebSocket backend's ``--workers N``: N processes on one port, the counters of all of them in every ``/stats``.

Real connections from several source addresses over loopback; the tallies must be exact whichever process
answers the ``/stats`` request (each is asked several times), a reset clears every process's tallies but not
the gauge, and every process runs at its hard open-file limit.
"""

from __future__ import annotations

import json
import resource
import socket
import time
import urllib.request
from collections.abc import Iterator

import psutil
import pytest
from websocket import WebSocket, create_connection

from backends.kit import running_backend
from backends.ws_workers import default_workers
from locust_ext.testing import Backend

WORKERS = 3
SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
PER_SOURCE = 8


def stats(backend: Backend, path: str = "/stats") -> dict:
    with urllib.request.urlopen(f"http://{backend.host}:{backend.port}{path}", timeout=10) as response:
        return dict(json.loads(response.read()))


def stats_from_every_answer(backend: Backend, times: int = 12) -> list[dict]:
    """``/stats`` asked ``times`` times on new connections: the kernel spreads them over the processes."""
    return [stats(backend) for _ in range(times)]


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    with running_backend("websocket", ["--workers", str(WORKERS)]) as started:
        yield started


def _workers(backend: Backend) -> list[psutil.Process]:
    """The server processes (multiprocessing's resource tracker is a child too, listening on nothing)."""
    return [
        child
        for child in psutil.Process(backend.process.pid).children()
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == backend.port for c in child.net_connections("tcp"))
    ]


def test_workers_share_the_port_at_the_hard_file_limit(backend: Backend) -> None:
    workers = _workers(backend)
    assert len(workers) == WORKERS
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for worker in workers:
        soft, worker_hard = worker.rlimit(psutil.RLIMIT_NOFILE)
        assert soft == worker_hard == hard
        listening = [c for c in worker.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.port for c in listening] == [backend.port]


def test_counters_are_summed_exactly_over_the_processes(backend: Backend) -> None:
    stats(backend, "/stats/reset")
    connections: list[WebSocket] = []
    try:
        for source in SOURCES:
            for _ in range(PER_SOURCE):
                sock = socket.create_connection((backend.host, backend.port), timeout=10, source_address=(source, 0))
                connections.append(create_connection(backend.url, timeout=10, socket=sock))
        for number, ws in enumerate(connections):
            ws.send(json.dumps({"type": "echo", "id": number, "payload": "x"}))
            assert json.loads(ws.recv())["id"] == number
        total = len(connections)
        holders = [
            w for w in _workers(backend) if any(c.status == psutil.CONN_ESTABLISHED for c in w.net_connections("tcp"))
        ]
        assert len(holders) > 1, "every connection landed on one process"
        for tallies in stats_from_every_answer(backend):
            assert tallies["connections_open"] == tallies["connections_opened"] == total
            assert tallies["requests"] == {"echo": total}
            assert tallies["received_text"] == tallies["sent_text"] == total
            assert tallies["peers"] == dict.fromkeys(SOURCES, PER_SOURCE)
        before = stats(backend, "/stats/reset")
        assert before["requests"] == {"echo": total}
        for tallies in stats_from_every_answer(backend):
            assert tallies["connections_open"] == total  # a gauge: the reset keeps it
            assert tallies["connections_opened"] == 0 and tallies["requests"] == {} and tallies["peers"] == {}
    finally:
        for ws in connections:
            ws.close()
    deadline = time.monotonic() + 20
    while stats(backend)["connections_open"] and time.monotonic() < deadline:
        time.sleep(0.1)
    for tallies in stats_from_every_answer(backend):
        assert tallies["connections_open"] == 0
        assert tallies["connections_closed"] == len(connections)


def test_stopping_the_server_stops_every_worker() -> None:
    with running_backend("websocket", ["--workers", "2"]) as other:
        workers = _workers(other)
        assert len(workers) == 2
        other.stop()
        _, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive


def test_default_workers_fit_the_files_per_process() -> None:
    assert default_workers(2, 100_000, 20_000) == 6
    assert default_workers(8, 1_000, 20_000) == 8
    assert default_workers(None, 30_000, 20_000) == 2
