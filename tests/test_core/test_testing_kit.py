"""The library's test kit (locust_ext.testing) with a server that is none of the reference backends.

Servers import the kit to print their ready line, so importing it must not load Locust (which patches the
standard library with gevent) or grpc: an asyncio server patched by gevent would misbehave.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from locust_ext.testing import BackendStartError, announce_ready, parse_ready_line, running_server, start_server

#: A one-connection echo server on a free port that announces itself with the kit's ready line.
ECHO_SERVER = """
import socket
from locust_ext.testing import announce_ready
listener = socket.create_server(("127.0.0.1", 0))
announce_ready("tcp", "127.0.0.1", listener.getsockname()[1])
connection, _ = listener.accept()
connection.sendall(connection.recv(64))
connection.recv(64)
"""


def test_importing_the_kit_loads_neither_locust_nor_gevent_nor_grpc() -> None:
    probe = "import sys, locust_ext.testing; print(sorted({'locust', 'gevent', 'grpc'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


@pytest.mark.parametrize(
    ("host", "line"), [("127.0.0.1", "READY grpc 127.0.0.1:50051"), ("::1", "READY grpc [::1]:50051")]
)
def test_the_ready_line_reads_back(host: str, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    announce_ready("grpc", host, 50051)
    printed = capsys.readouterr().out
    assert printed == f"{line}\n"
    assert parse_ready_line(printed) == ("grpc", host, 50051)


@pytest.mark.parametrize("line", ["", "READY", "READY grpc", "ready grpc 1.2.3.4:1", "READY grpc host:port", "x y z"])
def test_other_lines_are_not_ready_lines(line: str) -> None:
    assert parse_ready_line(line) is None


def test_any_server_that_announces_itself_is_started_and_always_stopped() -> None:
    with running_server([sys.executable, "-c", ECHO_SERVER], kind="echo") as server:
        assert (server.kind, server.scheme, server.host) == ("echo", "tcp", "127.0.0.1")
        assert server.url == f"tcp://127.0.0.1:{server.port}"
        with socket.create_connection((server.host, server.port), timeout=30) as connection:
            connection.sendall(b"ping")
            assert connection.recv(64) == b"ping"
    assert server.process.poll() is not None


def test_a_server_that_exits_instead_of_announcing_is_reported_with_its_output() -> None:
    command = [sys.executable, "-c", "import sys; print('starting'); sys.exit('port taken')"]
    with pytest.raises(BackendStartError, match="did not start: 'starting' port taken"):
        start_server(command)


def test_a_silent_server_is_killed_after_the_timeout() -> None:
    command = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(BackendStartError, match="did not start: ''"):
        start_server(command, timeout=0.5)
