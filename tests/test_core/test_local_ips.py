"""``--local-ips``: the spec, refusals before load, and binding proven from the server's side.

WebSocket runs are checked against the backend's ``peers`` counter (connections opened per client address);
gRPC runs on the native transport against the server process's own accepted sockets (their remote addresses,
read from the kernel for that process) and its ``distinct_peers``. Port exhaustion is provoked in a network
namespace of its own, whose ephemeral port range is four ports wide.
"""

from __future__ import annotations

import json
import resource
import socket
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from backends.kit import REPO_ROOT, grpc_counters
from locust_ext.local_ips import MAX_ADDRESSES, SourceAddresses, connect_tcp, parse_local_ips
from locust_ext.testing import Backend, locust_command, run_distributed, run_locust, running_locust
from locust_ext.websocket.preflight import FdBudget, capacity_plan, ephemeral_port_range, preflight_messages
from tests import netns
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "local_ips_ws.py"
GRPC_LOCUSTFILE = FOR_TESTS / "local_ips_grpc.py"
SOURCES = "127.0.0.2-127.0.0.5"
SOURCE_LIST = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def ws_tallies(backend: Backend, *, reset: bool = False) -> dict:
    path = "/stats/reset" if reset else "/stats"
    with urllib.request.urlopen(f"http://{backend.host}:{backend.port}{path}", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_spec_lists_ranges_and_blocks_in_order_once() -> None:
    assert parse_local_ips("127.0.0.3, 127.0.0.2-127.0.0.4,127.0.1.0/30") == [
        "127.0.0.3",
        "127.0.0.2",
        "127.0.0.4",
        "127.0.1.1",
        "127.0.1.2",
    ]
    assert parse_local_ips("::1") == ["::1"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("127.0.0.9-127.0.0.2", "must follow the first"),
        ("127.0.0.2-::1", "same family"),
        ("127.0.0.300", "does not appear to be an IPv4 or IPv6 address"),
        ("127.0.0.0/8", f"more than {MAX_ADDRESSES}"),
        ("127.0.0.1-127.1.0.0", f"more than {MAX_ADDRESSES}"),
        ("192.0.2.10", "192.0.2.10 is not an address of this host"),
        (" , ", "no address"),
    ],
)
def test_bad_specs_are_named(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match="--local-ips") as caught:
        parse_local_ips(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_addresses_are_taken_in_turn_per_family() -> None:
    pool = SourceAddresses()
    pool.configure("127.0.0.2-127.0.0.3,::1")
    assert [pool.next_for(socket.AF_INET) for _ in range(5)] == ["127.0.0.2", "127.0.0.3"] * 2 + ["127.0.0.2"]
    assert pool.next_for(socket.AF_INET6) == "::1"
    pool.configure(None)
    assert pool.next_for(socket.AF_INET) is None


def _listener(family: int, host: str) -> socket.socket:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(8)
    return listener


@pytest.mark.parametrize(
    ("family", "listen_on", "target", "sources", "peer"),
    [
        (socket.AF_INET, "127.0.0.1", "127.0.0.1", None, "127.0.0.1"),  # numeric: no resolver trip
        (socket.AF_INET, "127.0.0.1", "127.0.0.1", "127.0.0.7", "127.0.0.7"),
        (socket.AF_INET, "127.0.0.1", "localhost", "127.0.0.8", "127.0.0.8"),  # a name: getaddrinfo
        (socket.AF_INET6, "::1", "::1", None, "::1"),
        (socket.AF_INET6, "::1", "::1", "::1", "::1"),
    ],
)
def test_connect_tcp_reaches_numeric_and_named_hosts_from_the_source_asked(
    family: int, listen_on: str, target: str, sources: str | None, peer: str
) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    pool = SourceAddresses()
    pool.configure(sources)
    with _listener(family, listen_on) as listener:
        port = listener.getsockname()[1]
        with connect_tcp((target, port), 5.0, pool) as client:
            accepted, address = listener.accept()
            accepted.close()
            assert address[0] == peer
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.parametrize("spec", ["192.0.2.10", "127.0.0.9-127.0.0.2", "127.0.0.0/8"])
def test_a_spec_that_cannot_work_stops_locust_before_load(ws_backend: Backend, spec: str) -> None:
    ws_tallies(ws_backend, reset=True)
    command = locust_command(LOCUSTFILE, "LocalIpsWs", "--headless", "-u", "2", "-t", "5s", "-H", ws_backend.url)
    done = run_locust([*command, "--local-ips", spec])
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--local-ips" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert ws_tallies(ws_backend)["connections_opened"] == 0


def test_grpcio_channels_with_local_ips_are_refused(grpc_backend: Backend) -> None:
    command = locust_command(GRPC_LOCUSTFILE, "LocalIpsGrpcio", "--headless", "-u", "2", "-t", "5s")
    done = run_locust([*command, "-H", grpc_backend.address, "--local-ips", SOURCES])
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: LocalIpsGrpcio: --local-ips needs the native transport (transport = 'native' or "
        "--grpc-transport native): grpcio channels cannot bind a source address"
    ]


def test_websocket_users_bind_round_robin_locally(ws_backend: Backend, tmp_path: Path) -> None:
    ws_tallies(ws_backend, reset=True)
    command = locust_command(LOCUSTFILE, "LocalIpsWs", "--headless", "-u", "8", "-r", "8", "-t", "4s")
    done = run_locust([*command, "-H", ws_backend.url, "--local-ips", SOURCES, "--json-file", str(tmp_path / "s")])
    assert done.returncode == 0, done.stderr[-3000:]
    tallies = ws_tallies(ws_backend)
    assert tallies["peers"] == dict.fromkeys(SOURCE_LIST, 2)
    assert tallies["connections_opened"] == 8


def test_websocket_users_bind_on_every_worker(ws_backend: Backend, tmp_path: Path) -> None:
    """Workers get the flag only from the master's spawn message (started with --worker --master-host alone)."""
    ws_tallies(ws_backend, reset=True)
    master = ["LocalIpsWs", "--headless", "-u", "8", "-r", "8", "-t", "4s", "-H", ws_backend.url]
    done = run_distributed(LOCUSTFILE, [*master, "--local-ips", SOURCES], workers=2, cwd=REPO_ROOT, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    tallies = ws_tallies(ws_backend)
    # Each worker takes the addresses in turn for its own four users.
    assert tallies["peers"] == dict.fromkeys(SOURCE_LIST, 2)


def _server_peer_addresses(server: psutil.Process) -> Counter[str]:
    listening = {conn.laddr.port for conn in server.net_connections("tcp") if conn.status == psutil.CONN_LISTEN}
    return Counter(
        conn.raddr.ip.removeprefix("::ffff:")  # an IPv4 client of a dual-stack listener
        for conn in server.net_connections("tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.raddr and conn.laddr.port in listening
    )


def test_native_grpc_users_bind_round_robin(grpc_backend: Backend) -> None:
    grpc_counters(grpc_backend, reset=True)
    server = psutil.Process(grpc_backend.process.pid)
    command = locust_command(GRPC_LOCUSTFILE, "LocalIpsGrpc", "--headless", "-u", "6", "-r", "6", "-t", "30s")
    seen: Counter[str] = Counter()
    with running_locust([*command, "-H", grpc_backend.address, "--local-ips", "127.0.0.2-127.0.0.4"]) as locust:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and sum(seen.values()) < 6 and locust.poll() is None:
            seen = _server_peer_addresses(server)
            time.sleep(0.2)
        locust.terminate()
        locust.communicate(timeout=30)
    assert seen == dict.fromkeys(["127.0.0.2", "127.0.0.3", "127.0.0.4"], 2)
    assert grpc_counters(grpc_backend).distinct_peers == 6


def test_native_grpc_users_bind_on_every_worker(grpc_backend: Backend) -> None:
    """Distributed as users run it (workers get only --worker --master-host): each worker takes the addresses in
    turn for its own users' connections, seen from the server's accepted sockets while the run holds them."""
    grpc_counters(grpc_backend, reset=True)
    server = psutil.Process(grpc_backend.process.pid)
    master = ["LocalIpsGrpc", "--headless", "-u", "6", "-r", "6", "-t", "12s", "-H", grpc_backend.address]
    seen: Counter[str] = Counter()
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(
            run_distributed, GRPC_LOCUSTFILE, [*master, "--local-ips", "127.0.0.2-127.0.0.4"], workers=2, timeout=90
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(seen.values()) < 6 and not run.done():
            seen = _server_peer_addresses(server)
            time.sleep(0.2)
        done = run.result()
    assert done.returncode == 0, done.stderr[-3000:]
    assert seen == dict.fromkeys(["127.0.0.2", "127.0.0.3", "127.0.0.4"], 2)
    assert grpc_counters(grpc_backend).distinct_peers == 6


@pytest.mark.skipif(netns.unavailable_reason() is not None, reason=str(netns.unavailable_reason()))
def test_no_free_local_port_is_a_named_connect_failure(tmp_path: Path) -> None:
    """Four ephemeral ports per source address: of ten users on one address, six cannot connect, by name."""
    with netns.network_namespace() as ns:
        ns.check(["sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40003"])
        server = [sys.executable, "-m", "backends.websocket_server", "--host", "127.0.0.1", "--port", "8090"]
        with running_locust(ns.command(server)):
            deadline = time.monotonic() + 20
            while "Listening" not in ns.check(["ss", "-tln"]) and ":8090" not in ns.check(["ss", "-tln"]):
                assert time.monotonic() < deadline, "the backend did not start listening"
                time.sleep(0.2)
            stem = tmp_path / "stats"
            command = locust_command(LOCUSTFILE, "LocalIpsWs", "--headless", "-u", "10", "-r", "10", "-t", "3s")
            command += ["-H", "ws://127.0.0.1:8090", "--local-ips", "127.0.0.2", "--json-file", str(stem)]
            command += ["--csv", str(stem)]
            done = run_locust(ns.command(command), cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = json.loads(Path(f"{stem}.json").read_text())
    connects = next(entry for entry in report if entry["name"] == "connect")
    assert connects["num_failures"] >= 6
    failures = Path(f"{stem}_failures.csv").read_text()
    assert "connect: no free local port (source 127.0.0.2)" in failures, failures


def test_preflight_counts_ports_over_the_source_addresses() -> None:
    ports = ephemeral_port_range()
    assert ports is not None
    per_source = ports[1] - ports[0] + 1
    budget = FdBudget(reserve=-(10**9))  # files aside: only the port message is under test
    users = 3 * per_source + 1
    (message,) = preflight_messages(users, "ws://127.0.0.1:8080", budget, sources=1)
    assert f"{per_source} ports per source address toward ws://127.0.0.1:8080" in message
    assert "≥ 4 source addresses (--local-ips" in message and "no free local port" in message
    (message,) = preflight_messages(users, "ws://127.0.0.1:8080", budget, sources=3)
    assert f"{3 * per_source} over the 3 addresses of --local-ips" in message
    assert preflight_messages(users, "ws://127.0.0.1:8080", budget, sources=4) == []


def test_capacity_plan_speaks_in_workers_and_addresses() -> None:
    plan = capacity_plan(100_000, 1, "ws://127.0.0.1:8080", files=20_000, reserve=100, ports=28_232, sources=1)
    assert plan == (
        "preflight: 100,000 users need ≥ 6 workers at 20,000 files each and ≥ 4 source addresses toward "
        "ws://127.0.0.1:8080 (this run has 1 worker and 1 source address); add more workers and --local-ips"
    )
    assert capacity_plan(100_000, 6, "ws://h:1", files=20_000, reserve=100, ports=28_232, sources=4) is None
    only_ports = capacity_plan(100_000, 6, "ws://h:1", files=20_000, reserve=100, ports=28_232, sources=2)
    assert only_ports is not None and "workers at" not in only_ports and only_ports.endswith("add --local-ips")


def test_strict_capacity_stops_a_run_that_cannot_fit_before_load(ws_backend: Backend) -> None:
    ws_tallies(ws_backend, reset=True)
    users = str(resource.getrlimit(resource.RLIMIT_NOFILE)[0] * 2)
    command = locust_command(LOCUSTFILE, "--headless", "-u", users, "-r", "1", "-t", "5s", "-H", ws_backend.url)
    done = run_locust([*command, "--local-ips", SOURCES, "--strict-capacity"])
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{int(users):,} users need ≥ 3 workers at" in errors[0], done.stderr[-2000:]
    assert ws_tallies(ws_backend)["connections_opened"] == 0
