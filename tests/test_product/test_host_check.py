"""The host is checked when it is known: at start-up headless, on the web UI's form, on a worker at spawn.

Settings that do not depend on the host (a TLS file) are refused at start-up in every process, workers too.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from locust_ext.testing import Backend, free_port, locust_command, run_locust, running_locust
from tests.support import FOR_TESTS, server_calls

NO_HOST = FOR_TESTS / "no_host.py"


@pytest.mark.parametrize(
    ("user_class", "expected"),
    [
        ("NoHostGrpc", "error: NoHostGrpc: no host; set `host = "),
        ("NoHostWebSocket", "error: NoHostWebSocket: no host: set `host = "),
    ],
)
def test_a_headless_run_without_a_host_stops_before_load_with_one_line(user_class: str, expected: str) -> None:
    result = run_locust(locust_command(NO_HOST, user_class, "--headless", "-u", "1", "-t", "5s", "--skip-log-setup"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in result.stderr and "Ramping to" not in result.stderr


def test_a_host_of_the_wrong_scheme_stops_a_headless_run(ws_backend: Backend) -> None:
    result = run_locust(
        locust_command(NO_HOST, "NoHostGrpc", "--headless", "-u", "1", "-t", "5s", "-H", ws_backend.url)
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: NoHostGrpc: host 'ws://")


def test_a_worker_with_an_unreadable_tls_file_is_refused_at_start_up() -> None:
    """The worker stops on its own settings as soon as it has joined its master, before any spawn."""
    port = str(free_port())
    worker = locust_command(FOR_TESTS / "tls_file_missing.py", "--worker", "--master-port", port)
    with running_locust(_plain_master(port, "grpc://127.0.0.1:1")) as master, running_locust(worker) as process:
        assert process.wait(timeout=40) == 2
        _, worker_err = process.communicate()
        master.wait(timeout=40)
    assert worker_err.strip().splitlines()[-1] == (
        "error: MissingCa.root_certificates = '/nonexistent/ca.pem': cannot read: No such file or directory"
    )


def _plain_master(port: str, host: str) -> list[str]:
    """A headless master of plain_no_host.py (no suite user classes, so it checks no host) for one worker."""
    master = locust_command(FOR_TESTS / "plain_no_host.py", "--headless", "-u", "1", "-t", "4s", "-H", host)
    return [*master, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--expect-workers", "1"]


def test_a_worker_takes_its_host_from_the_master_and_quits_on_one_it_cannot_use(tmp_path: Path) -> None:
    """The master (a plain user class of the same name) sends a WebSocket URL to a gRPC worker: the worker says
    so in one line and quits with exit 2; it was started, as users start workers, without --host."""
    port = str(free_port())
    worker = locust_command(NO_HOST, "--worker", "--master-host", "127.0.0.1", "--master-port", port)
    with (
        running_locust(worker) as worker_process,
        running_locust(_plain_master(port, "ws://127.0.0.1:1")) as master_process,
    ):
        assert worker_process.wait(timeout=40) == 2
        _, worker_err = worker_process.communicate()
        master_process.wait(timeout=40)
    assert "worker quits: NoHostGrpc: host 'ws://127.0.0.1:1': scheme must be grpc:// or grpcs://" in worker_err
    assert "Traceback" not in worker_err


def _post_swarm(web: str, **form: str) -> dict[str, object]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{web}/swarm", data=data), timeout=10) as response:
        reply: dict[str, object] = json.loads(response.read())
    return reply


def _wait_until_serving(web: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(web, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_web_ui_refuses_a_bad_host_from_its_form_and_keeps_serving(grpc_backend: Backend) -> None:
    """Started with no --host, as the web UI is: a wrong host is refused in the form's reply, nothing runs,
    and the next submission with the right host starts the run."""
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    server_calls(grpc_backend, reset=True)
    command = locust_command(NO_HOST, "NoHostGrpc", "--web-host", "127.0.0.1", "--web-port", str(port))
    with running_locust(command) as process:
        _wait_until_serving(web)
        refused = _post_swarm(web, user_count="2", spawn_rate="2", host="ws://127.0.0.1:1")
        assert refused["success"] is False
        assert (
            refused["message"] == "NoHostGrpc: host 'ws://127.0.0.1:1': scheme must be grpc:// or grpcs://, not ws://"
        )
        empty = _post_swarm(web, user_count="2", spawn_rate="2", host="")
        assert empty["success"] is False and "no host" in str(empty["message"])
        time.sleep(1)
        assert server_calls(grpc_backend) == 0 and process.poll() is None

        started = _post_swarm(web, user_count="2", spawn_rate="2", host=grpc_backend.address)
        assert started["success"] is True
        deadline = time.monotonic() + 20
        while server_calls(grpc_backend) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server_calls(grpc_backend) > 0
        urllib.request.urlopen(urllib.request.Request(f"{web}/stop", data=b""), timeout=10).close()


def test_processes_without_a_host_stop_with_their_forked_workers(tmp_path: Path) -> None:
    """``--processes 2`` forks workers before the master checks the host: refusing the run stops them too."""
    marker = str(tmp_path / "processes-no-host")
    port = str(free_port())  # not Locust's default 5557: other runs on the machine may hold it
    command = locust_command(
        NO_HOST, "NoHostGrpc", "--headless", "--processes", "2", "-u", "2", "-t", "3s",
        "--master-bind-port", port, "--master-port", port,
    )  # fmt: skip
    result = run_locust([*command, "--json-file", marker], timeout=30)
    assert result.returncode == 2
    assert "error: NoHostGrpc: no host; set `host = " in result.stderr
    deadline = time.monotonic() + 10
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "forked workers outlived their master"


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process)
    return found
