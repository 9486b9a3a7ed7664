"""Network faults between Locust and a reference backend, both inside a network namespace the test creates:
a silent partition (packets dropped, no RST), an RST storm, a server that stops reading (SIGSTOP: the client's
send buffer fills) and a half-open connection after the server vanishes (killed while partitioned, so its FIN
and RST never arrive; a new server takes the port at the heal). For WebSocketUser (keepalive, request timeout,
reconnect) and GrpcUser (deadline, channel reconnect).

Each case checks: during the fault calls fail, fast (no call outlives its 1 s timeout by more than a
scheduling allowance) and under their named kinds; no call started during the fault succeeds; the first
success after the heal comes within the stated recovery bound; Locust stops on time; and Locust's successes
never exceed what the server handled (its own counters, summed over a killed server's life and its successor's).

The faults are iptables rules on the namespace's loopback that match 127.0.0.1 only; the backend listens on
every address of the namespace (which has nothing but its loopback), so the test reads the counters through
127.0.0.2, around the fault. Measured recovery times are in the README ("Network faults").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import Backend, json_stats, locust_command, start_server, stop_process
from tests.netns import Namespace, network_namespace, unavailable_reason
from tests.support import FOR_TESTS, REPO_ROOT

PORT = 50071
CLIENT_HOST = "127.0.0.1"  # what Locust connects to; the faults match it
QUERY_HOST = "127.0.0.2"  # the counters are read through this one, past the faults
FAULT_S = 4.0
#: Timeout of every call in net_faults.py; a call may outlive it by SLACK_S (a loaded machine's scheduling).
CALL_TIMEOUT_S = 1.0
SLACK_S = 2.0
#: The stated recovery bounds (first success after the heal; see recovery_bound); the README gives the times measured.
RECOVERY_BOUND_S = {"websocket": 8.0, "grpc": 15.0}
#: Failure kinds (the text before the first colon) allowed during and after a fault.
NAMED_FAILURES = {
    "websocket": {"timeout", "disconnect", "connect", "late"},
    "grpc": {"DEADLINE_EXCEEDED", "UNAVAILABLE"},
}
ECHO = {"websocket": "echo", "grpc": "/loadtest.v1.Echo/Echo"}
USER = {"websocket": "FaultWsUser", "grpc": "FaultGrpcUser"}
MODULE = {"websocket": "backends.websocket_server", "grpc": "backends.grpc_server"}
CALL_TYPES = {"websocket", "grpc"}  # the operations' own request types (derived ones have other types)


def recovery_bound(kind: str, fault: str, fault_s: float) -> float:
    """The stated recovery bound in seconds. GrpcUser's half-open connection (grpcio sends no keepalive by
    default) is found dead only when TCP retransmits to the new server and gets an RST, and TCP's retransmissions
    back off exponentially: the next comes at most as long after the heal as the fault lasted (``fault_s``)."""
    return RECOVERY_BOUND_S[kind] + (fault_s if (kind, fault) == ("grpc", "vanishes") else 0.0)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(0.1)


@dataclass
class Event:
    t: float
    type: str
    name: str
    ms: float
    error: str | None

    @property
    def start(self) -> float:
        return self.t - self.ms / 1000


def read_events(path: Path) -> list[Event]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [Event(**json.loads(line)) for line in lines if line.endswith("}")]


class Site:
    """The backend in the namespace (restartable on the same port) and its counters, read through QUERY_HOST."""

    def __init__(self, ns: Namespace, kind: str, payload: int) -> None:
        self.ns, self.kind, self.payload = ns, kind, payload
        self.backend: Backend | None = None
        self.handled_before = 0  # echo calls the servers stopped before this one handled

    def start(self) -> None:
        command = [sys.executable, "-m", MODULE[self.kind], "--host", "0.0.0.0", "--port", str(PORT)]
        self.backend = start_server(self.ns.command(command), kind=self.kind, cwd=REPO_ROOT)

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.process.send_signal(signal.SIGCONT)
            self.backend.stop()

    def handled(self) -> int:
        """Echo calls the server answered (WebSocket: echo requests received; gRPC: echo calls completed)."""
        if self.kind == "websocket":
            code = (
                "import json, urllib.request; "
                f"print(json.load(urllib.request.urlopen('http://{QUERY_HOST}:{PORT}/stats', timeout=10))"
                "['requests'].get('echo', 0))"
            )
        else:
            code = (
                "import grpc; from loadtest.v1 import loadtest_pb2 as pb, loadtest_pb2_grpc as pb_grpc; "
                f"channel = grpc.insecure_channel('{QUERY_HOST}:{PORT}'); "
                "counters = pb_grpc.AdminStub(channel).GetCounters(pb.GetCountersRequest(), timeout=10); "
                f"print(counters.methods['{ECHO['grpc']}'].completed)"
            )
        done = subprocess.run(
            self.ns.command([sys.executable, "-c", code]), cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return self.handled_before + int(done.stdout)


def inject(fault: str, ns: Namespace, site: Site) -> Callable[[], None]:
    """Start ``fault``; returns the heal."""
    assert site.backend is not None
    process = site.backend.process
    if fault == "partition":
        ns.partition(PORT, CLIENT_HOST)
        return ns.heal
    if fault == "reset_storm":
        ns.reset_storm(PORT, CLIENT_HOST)
        return ns.heal
    if fault == "stops_reading":
        process.send_signal(signal.SIGSTOP)
        return lambda: process.send_signal(signal.SIGCONT)
    assert fault == "vanishes"
    ns.partition(PORT, CLIENT_HOST)  # first, so the kernel's FIN/RST for the killed server's sockets never arrive
    site.handled_before = site.handled()
    process.kill()
    process.wait()

    def heal() -> None:
        site.start()
        ns.heal()

    return heal


@dataclass
class Outcome:
    events: list[Event]
    t_fault: float
    t_heal: float
    t_stop: float
    recovery_s: float
    report: list[dict[str, Any]]
    handled: int


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A namespace of the test's own; skips where none can be made (not root), except under CI=true (fails)."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with network_namespace() as ns:
        yield ns


def run_fault(ns: Namespace, kind: str, fault: str, tmp_path: Path) -> Outcome:
    payload = 256 * 1024 if fault == "stops_reading" else 64
    site = Site(ns, kind, payload)
    log, report = tmp_path / "events.jsonl", tmp_path / "report"
    scheme = "ws://" if kind == "websocket" else ""
    command = locust_command(
        FOR_TESTS / "net_faults.py", "--headless", "-u", "4", "-r", "4", "-t", "120s", "--stop-timeout", "3",
        "--only-summary", "--host", f"{scheme}{CLIENT_HOST}:{PORT}", "--json-file", str(report), USER[kind],
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NET_FAULTS_LOG": str(log), "NET_FAULTS_PAYLOAD": str(payload)}
    site.start()
    try:
        with open(tmp_path / "locust.out", "w") as out:
            locust = subprocess.Popen(ns.command(command), cwd=REPO_ROOT, env=env, stdout=out, stderr=out, text=True)
        try:

            def successes(after: float = 0.0) -> list[Event]:
                return [e for e in read_events(log) if e.name == ECHO[kind] and e.error is None and e.t > after]

            wait_for(lambda: len(successes()) >= 20, 60, "20 successful echo calls before the fault")
            heal = inject(fault, ns, site)
            t_fault = time.monotonic()
            time.sleep(FAULT_S)
            heal()
            t_heal = time.monotonic()
            first = wait_for(lambda: successes(t_heal), recovery_bound(kind, fault, t_heal - t_fault), "recovery")
            recovery_s = first[0].t - t_heal
            wait_for(lambda: len(successes(t_heal)) >= 10, 30, "10 successes after the heal")
            # Locust stops on time: SIGTERM, then at most --stop-timeout and the report.
            t_stop = time.monotonic()
            locust.send_signal(signal.SIGTERM)
            code = locust.wait(30)
        finally:
            stop_process(locust)
        assert code in (0, 1), (tmp_path / "locust.out").read_text()[-3000:]
        handled = site.handled()
    finally:
        site.stop()
    print(f"{kind} {fault}: recovered {recovery_s:.2f} s after the heal; the fault lasted {t_heal - t_fault:.1f} s")
    return Outcome(read_events(log), t_fault, t_heal, t_stop, recovery_s, json_stats(report), handled)


FAULTS = ["partition", "reset_storm", "stops_reading", "vanishes"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", ["websocket", "grpc"])
def test_calls_fail_fast_and_recover(namespace: Namespace, kind: str, fault: str, tmp_path: Path) -> None:
    outcome = run_fault(namespace, kind, fault, tmp_path)
    calls = [e for e in outcome.events if e.type in CALL_TYPES]
    # No hang: no call (connects included) outlived its timeout by more than the allowance.
    slow = [e for e in calls if e.ms > (CALL_TIMEOUT_S + SLACK_S) * 1000]
    assert not slow, slow[:5]
    # Every failure, during the fault and after, is named by its kind (a connect the stop interrupts is
    # "cancelled: closed while connecting").
    named = NAMED_FAILURES[kind]
    stopping = named | {"cancelled"}
    unnamed = [
        e
        for e in outcome.events
        if e.error and e.error.split(":")[0] not in (stopping if e.t >= outcome.t_stop else named)
    ]
    assert not unnamed, unnamed[:5]
    # The fault is seen, fast: echo calls fail within the first timeout plus the allowance, and keep failing.
    during = [e for e in calls if e.name == ECHO[kind] and outcome.t_fault < e.t <= outcome.t_heal]
    failed = [e for e in during if e.error]
    assert failed, "no echo call failed during the fault"
    assert failed[0].t - outcome.t_fault <= CALL_TIMEOUT_S + SLACK_S, failed[0]
    assert len(failed) >= 4, failed
    # Nothing started during the fault succeeded before the heal (a quarter second allows for the rule taking hold).
    impossible = [e for e in during if not e.error and e.start > outcome.t_fault + 0.25]
    assert not impossible, impossible[:5]
    # Nothing invented: Locust's successes never exceed what the server handled.
    (entry,) = [e for e in outcome.report if e["name"] == ECHO[kind]]
    assert 0 < entry["num_requests"] - entry["num_failures"] <= outcome.handled
