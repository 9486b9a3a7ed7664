"""``--workers N``: processes share the port, counters add up exactly, one READY line, all stop together."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc

from backends.kit import running_backend
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import Backend
from tests.support import REPO_ROOT

HELLO = "/loadtest.v1.Hello/SayHello"
CONNECTIONS = 16  # the kernel spreads connections over the workers by hash: 16 all on one is a 2**-15 chance


def workers_of(backend: Backend) -> list[int]:
    pids = []
    for children in Path(f"/proc/{backend.process.pid}/task").glob("*/children"):
        pids += [int(pid) for pid in children.read_text().split()]
    # The spawn start method adds a resource-tracker child; the servers are the ones that listen.
    return [pid for pid in pids if sockets_on(pid, backend.port) is not None]


def sockets_on(pid: int, port: int) -> int | None:
    """How many TCP sockets of ``pid`` are on local ``port`` (listening or connected); None when it has none."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # grpc may listen on a dual-stack socket
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count or None


def test_counts_and_peers_add_up_exactly_across_workers() -> None:
    with running_backend("grpc", ["--workers", "2"]) as backend:
        channels = [
            grpc.insecure_channel(backend.address, options=[("loadtest.test-channel", index)])
            for index in range(CONNECTIONS)
        ]
        try:
            for channel in channels:
                for _ in range(5):
                    pb_grpc.HelloStub(channel).SayHello(pb.HelloRequest(), timeout=5)
            workers = workers_of(backend)
            # Both workers hold connections (each has its listener plus at least one accepted connection).
            assert len(workers) == 2 and all((sockets_on(pid, backend.port) or 0) >= 2 for pid in workers)
            admin = pb_grpc.AdminStub(channels[0])
            seen = admin.GetCounters(pb.GetCountersRequest())
            assert (seen.methods[HELLO].received, seen.methods[HELLO].completed) == (5 * CONNECTIONS,) * 2
            assert seen.distinct_peers == CONNECTIONS
            # A reset through one worker clears every worker's tallies and peers.
            admin.ResetCounters(pb.ResetCountersRequest())
            for channel in channels[:3]:
                pb_grpc.HelloStub(channel).SayHello(pb.HelloRequest(), timeout=5)
            seen = admin.GetCounters(pb.GetCountersRequest())
            assert (seen.methods[HELLO].received, seen.distinct_peers) == (3, 3)
        finally:
            for channel in channels:
                channel.close()


def test_sigterm_stops_every_worker() -> None:
    with running_backend("grpc", ["--workers", "3"]) as backend:
        workers = workers_of(backend)
        assert len(workers) == 3
        assert backend.stop() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()


def test_a_port_in_use_is_refused_before_any_worker_starts() -> None:
    with running_backend("grpc") as taken:
        result = subprocess.run(
            [sys.executable, "-m", "backends.grpc_server", "--port", str(taken.port), "--workers", "2"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2 and result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        assert f"127.0.0.1:{taken.port}" in line and "in use" in line
        # The first server is untouched: nobody joined its port.
        with grpc.insecure_channel(taken.address) as channel:
            pb_grpc.HelloStub(channel).SayHello(pb.HelloRequest(), timeout=5)


def test_workers_port_is_refused_to_a_later_server() -> None:
    with running_backend("grpc", ["--workers", "2"]) as shared:
        result = subprocess.run(
            [sys.executable, "-m", "backends.grpc_server", "--port", str(shared.port), "--workers", "2"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2 and "in use" in result.stderr


def test_bad_worker_count_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backends.grpc_server", "--port", "0", "--workers", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--workers" in line
