"""The reference WebSocket backend over real loopback sockets: every message type, faults, counters, TLS, limits."""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import websocket
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.sync.client import connect as sync_connect

from backends.compute import hash_rounds
from backends.kit import running_backend
from locust_ext.testing import Backend
from tests.support import REPO_ROOT

SERVER = [sys.executable, "-m", "backends.websocket_server"]


# Helpers


def http_json(backend: Backend, path: str, context: ssl.SSLContext | None = None) -> dict[str, Any]:
    scheme = "https" if context else "http"
    with urllib.request.urlopen(f"{scheme}://{backend.address}{path}", timeout=5, context=context) as response:
        assert response.headers["Content-Type"] == "application/json"
        result: dict[str, Any] = json.loads(response.read())
    return result


def stats(backend: Backend) -> dict[str, Any]:
    return http_json(backend, "/stats")


def wait_for_open_connections(backend: Backend, expected: int, timeout: float = 10.0) -> dict[str, Any]:
    """Counters once the server sees ``expected`` open connections (closes are noticed asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        tallies = stats(backend)
        if tallies["connections_open"] == expected or time.monotonic() > deadline:
            return tallies
        time.sleep(0.02)


def reset_when_idle(backend: Backend) -> None:
    """Start a test from zero: wait until earlier connections are gone, then reset the counters."""
    assert wait_for_open_connections(backend, 0)["connections_open"] == 0
    http_json(backend, "/stats/reset")


@contextmanager
def connected(backend: Backend, **options: Any) -> Iterator[websocket.WebSocket]:
    """A websocket-client connection that is always closed."""
    client = websocket.create_connection(backend.url, timeout=10, **options)
    try:
        yield client
    finally:
        client.close()


def ask(ws: websocket.WebSocket, request: dict[str, Any] | str) -> dict[str, Any]:
    ws.send(request if isinstance(request, str) else json.dumps(request))
    reply: dict[str, Any] = json.loads(ws.recv())
    return reply


@pytest.fixture
def ws(ws_backend: Backend) -> Iterator[websocket.WebSocket]:
    reset_when_idle(ws_backend)
    with connected(ws_backend) as client:
        yield client


# Message types


def test_echo_returns_the_same_object_and_counts_match(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    sent = [{"type": "echo", "id": i, "payload": {"n": i, "text": "é" * i}} for i in range(30)]
    for request in sent:
        assert ask(ws, request) == request
    tallies = stats(ws_backend)
    assert tallies["received_text"] == tallies["sent_text"] == 30
    assert tallies["requests"] == {"echo": 30}
    assert (tallies["errors"], tallies["received_binary"], tallies["sent_binary"]) == (0, 0, 0)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 1024 * 1024])
def test_binary_frames_are_echoed_as_binary(ws: websocket.WebSocket, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    ws.send_binary(payload)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY and data == payload


def test_ping_is_answered_with_pong_and_the_same_ts(ws: websocket.WebSocket) -> None:
    assert ask(ws, {"type": "ping", "id": "p1", "ts": 1712.25}) == {"type": "pong", "id": "p1", "ts": 1712.25}


def test_protocol_level_ping_gets_a_pong_frame(ws: websocket.WebSocket) -> None:
    ws.ping(b"are-you-there")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and data == b"are-you-there"


def test_compute_returns_hash_rounds_as_hex(ws: websocket.WebSocket) -> None:
    reply = ask(ws, {"type": "compute", "id": 7, "n": 1000, "seed": "abc"})
    assert reply == {"type": "compute", "id": 7, "result": hash_rounds(1000, b"abc").hex()}


def test_compute_over_the_cap_is_an_error_reply(ws: websocket.WebSocket) -> None:
    reply = ask(ws, {"type": "compute", "id": 8, "n": 10**12})
    assert reply["type"] == "error" and reply["id"] == 8 and "compute.n" in reply["error"]


def test_stream_sends_count_messages_in_order_with_send_times(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    before = time.time()
    ws.send(json.dumps({"type": "stream", "id": "s", "count": 6, "interval_ms": 20, "size": 33}))
    messages = [json.loads(ws.recv()) for _ in range(6)]
    after = time.time()
    assert [m["seq"] for m in messages] == list(range(6))
    assert all(m["type"] == "stream" and m["id"] == "s" and m["data"] == "x" * 33 for m in messages)
    stamps = [m["sent_at"] for m in messages]
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after
    assert stamps[-1] - stamps[0] >= 5 * 0.020 - 0.002  # five gaps of 20 ms on the server's schedule
    tallies = stats(ws_backend)
    assert (tallies["received_text"], tallies["sent_text"], tallies["requests"]) == (1, 6, {"stream": 1})


def test_quick_request_overtakes_a_running_stream(ws: websocket.WebSocket) -> None:
    ws.send(json.dumps({"type": "stream", "id": "slow", "count": 3, "interval_ms": 200, "size": 0}))
    assert json.loads(ws.recv())["seq"] == 0
    assert ask(ws, {"type": "ping", "id": "quick", "ts": 1}) == {"type": "pong", "id": "quick", "ts": 1}
    assert [json.loads(ws.recv())["seq"] for _ in range(2)] == [1, 2]


def test_counts_from_concurrent_clients_add_up(ws_backend: Backend) -> None:
    reset_when_idle(ws_backend)
    clients, per_client = 4, 50

    def client_run() -> None:
        with sync_connect(ws_backend.url) as client:
            for i in range(per_client):
                client.send(json.dumps({"type": "echo", "id": i}))
                assert json.loads(client.recv(timeout=10))["id"] == i
            client.send(b"bin")
            assert client.recv(timeout=10) == b"bin"

    threads = [threading.Thread(target=client_run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    tallies = wait_for_open_connections(ws_backend, 0)
    assert tallies["connections_opened"] == tallies["connections_closed"] == clients
    assert tallies["received_text"] == tallies["sent_text"] == clients * per_client
    assert tallies["received_binary"] == tallies["sent_binary"] == clients


def test_compression_is_offered_only_with_the_flag(ws_backend: Backend) -> None:
    with sync_connect(ws_backend.url) as plain:
        assert plain.protocol.extensions == []
    with running_backend("websocket", ["--compression"]) as backend, sync_connect(backend.url) as deflated:
        assert [extension.name for extension in deflated.protocol.extensions] == ["permessage-deflate"]
        deflated.send(json.dumps({"type": "echo", "id": 1, "payload": "z" * 5000}))
        assert json.loads(deflated.recv(timeout=10))["payload"] == "z" * 5000


# Counters


def test_stats_and_reset_messages_are_not_counted(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    ask(ws, {"type": "echo", "id": 1})
    first = ask(ws, {"type": "stats", "id": "a"})
    second = ask(ws, {"type": "stats", "id": "b"})
    assert (first["type"], first["id"], second["id"]) == ("stats", "a", "b")
    assert first["received_text"] == second["received_text"] == 1
    assert first["sent_text"] == second["sent_text"] == 1
    before_reset = ask(ws, {"type": "reset", "id": "r"})
    assert before_reset["type"] == "reset" and before_reset["requests"] == {"echo": 1}
    after = stats(ws_backend)
    assert (after["received_text"], after["sent_text"], after["requests"]) == (0, 0, {})
    assert after["connections_open"] == 1  # a gauge: reset keeps it


def test_http_stats_reset_returns_previous_counts(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    ask(ws, {"type": "ping", "id": 1, "ts": 0})
    previous = http_json(ws_backend, "/stats/reset")
    assert previous["requests"] == {"ping": 1} and previous["connections_opened"] == 1
    assert stats(ws_backend)["requests"] == {}


def test_connections_opened_and_closed_are_counted(ws_backend: Backend) -> None:
    reset_when_idle(ws_backend)
    with ExitStack() as stack:
        for _ in range(5):
            stack.enter_context(connected(ws_backend))
        assert wait_for_open_connections(ws_backend, 5)["connections_opened"] == 5
    tallies = wait_for_open_connections(ws_backend, 0)
    assert (tallies["connections_opened"], tallies["connections_closed"]) == (5, 5)


# Bad input


BAD_REQUESTS = [
    ("{not json", None, "malformed JSON"),
    ("[1, 2]", None, "JSON object, not list"),
    ('"text"', None, "JSON object, not str"),
    ('{"id": 1}', 1, "missing 'type'"),
    ('{"type": "echo"}', None, "missing 'id'"),
    ('{"type": "launch", "id": 2}', 2, "unknown type 'launch'"),
    ('{"type": "ping", "id": 3}', 3, "ping.ts"),
    ('{"type": "stream", "id": 4, "count": "many"}', 4, "stream.count"),
    ('{"type": "stream", "id": 5, "count": 1, "interval_ms": -1}', 5, "stream.interval_ms"),
    ('{"type": "compute", "id": 6, "n": 1.5}', 6, "compute.n"),
    ('{"type": "echo", "id": 7, "fault": {"delay": 5}}', 7, "fault: unknown key 'delay'"),
    ('{"type": "echo", "id": 8, "fault": {"drop": "yes"}}', 8, "fault.drop"),
    ('{"type": "echo", "id": 9, "fault": {"error": "x", "rate": 2}}', 9, "fault.rate"),
    ("[" * 100_000, None, "malformed JSON"),
]


def test_bad_input_is_answered_while_other_clients_keep_being_served(ws_backend: Backend) -> None:
    reset_when_idle(ws_backend)
    with connected(ws_backend) as bad, connected(ws_backend) as good:
        for number, (text, request_id, complaint) in enumerate(BAD_REQUESTS):
            reply = ask(bad, text)
            assert reply["type"] == "error" and complaint in reply["error"], (text[:40], reply)
            assert reply.get("id") == request_id and ("id" in reply) == (request_id is not None)
            assert ask(good, {"type": "echo", "id": number}) == {"type": "echo", "id": number}
        assert ask(bad, {"type": "echo", "id": "still"}) == {"type": "echo", "id": "still"}
    tallies = wait_for_open_connections(ws_backend, 0)
    assert tallies["errors"] == len(BAD_REQUESTS)
    assert tallies["received_text"] == tallies["sent_text"] == 2 * len(BAD_REQUESTS) + 1
    assert tallies["requests"] == {"echo": len(BAD_REQUESTS) + 1}


@pytest.fixture(scope="module")
def small_backend() -> Iterator[Backend]:
    with running_backend("websocket", ["--max-size", "1000"]) as backend:
        yield backend


def test_oversize_frames_get_an_error_reply_and_the_connection_lives(small_backend: Backend) -> None:
    with connected(small_backend) as client:
        text_reply = ask(client, json.dumps({"type": "echo", "id": 1, "payload": "y" * 1500}))
        assert text_reply["type"] == "error" and "exceeds --max-size 1000" in text_reply["error"]
        wide = ask(
            client, json.dumps({"type": "echo", "id": 2, "payload": "é" * 600}, ensure_ascii=False)
        )  # 640 characters, 1240 bytes
        assert wide["type"] == "error" and "1240 bytes" in wide["error"]
        client.send_binary(b"z" * 1001)
        assert "binary message of 1001 bytes" in json.loads(client.recv())["error"]
        assert ask(client, {"type": "echo", "id": 3, "payload": "ok"})["payload"] == "ok"
        stream = ask(client, {"type": "stream", "id": 4, "count": 1, "size": 1001})
        assert stream["type"] == "error" and "stream.size" in stream["error"]


def test_a_frame_far_over_the_limit_closes_with_1009(small_backend: Backend) -> None:
    with sync_connect(small_backend.url) as client:
        client.send(b"z" * 4001)
        with pytest.raises(ConnectionClosedError) as closed:
            client.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


# Faults


def test_per_message_delay_postpones_only_that_reply(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    started = time.perf_counter()
    ws.send(json.dumps({"type": "echo", "id": "late", "fault": {"delay_ms": 150}}))
    assert ask(ws, {"type": "echo", "id": "early"})["id"] == "early"
    assert json.loads(ws.recv())["id"] == "late"
    assert time.perf_counter() - started >= 0.150
    assert stats(ws_backend)["injected_delays"] == 1


def test_per_message_error_is_an_error_reply_with_the_id(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    reply = ask(ws, {"type": "compute", "id": 5, "n": 1, "fault": {"error": "overloaded"}})
    assert reply == {"type": "error", "id": 5, "error": "overloaded"}
    tallies = stats(ws_backend)
    assert (tallies["injected_errors"], tallies["errors"], tallies["sent_text"]) == (1, 0, 1)


def test_per_message_error_rate_is_honoured(ws: websocket.WebSocket, ws_backend: Backend) -> None:
    replies = [ask(ws, {"type": "echo", "id": i, "fault": {"error": "coin", "rate": 0.5}}) for i in range(200)]
    errors = sum(reply["type"] == "error" for reply in replies)
    assert 50 <= errors <= 150  # binomial(200, 0.5): outside this band about once in 10^12 runs
    assert stats(ws_backend)["injected_errors"] == errors


def test_per_message_drop_closes_without_handshake(ws_backend: Backend) -> None:
    reset_when_idle(ws_backend)
    with sync_connect(ws_backend.url) as client:
        client.send(json.dumps({"type": "echo", "id": 1, "fault": {"drop": True}}))
        with pytest.raises(ConnectionClosedError) as closed:
            client.recv(timeout=10)
    assert closed.value.rcvd is None and closed.value.sent is None  # no close frame either way: code 1006
    with connected(ws_backend) as other:
        assert ask(other, {"type": "echo", "id": 2}) == {"type": "echo", "id": 2}
    tallies = wait_for_open_connections(ws_backend, 0)
    assert (tallies["drops"], tallies["connections_closed"]) == (1, 2)


def test_flag_faults_apply_to_every_request_and_binary_frames() -> None:
    with running_backend("websocket", ["--fault-error-rate", "1"]) as backend, connected(backend) as client:
        assert ask(client, {"type": "echo", "id": 1}) == {"type": "error", "id": 1, "error": "injected fault"}
        client.send_binary(b"abc")
        assert json.loads(client.recv()) == {"type": "error", "error": "injected fault"}
        assert ask(client, {"type": "echo", "id": 2, "fault": {}})["type"] == "error"
        assert ask(client, {"type": "echo", "id": 3, "fault": {"error": "x", "rate": 0}}) == {
            "type": "echo",
            "id": 3,
            "fault": {"error": "x", "rate": 0},
        }
        assert ask(client, {"type": "stats", "id": 4})["injected_errors"] == 3  # stats itself is never faulted


def test_flag_drop_rate_and_delay() -> None:
    with running_backend("websocket", ["--fault-drop-rate", "1", "--fault-delay-ms", "50"]) as backend:
        with connected(backend) as client:
            started = time.perf_counter()
            client.send(json.dumps({"type": "ping", "id": 1, "ts": 0}))
            with pytest.raises(websocket.WebSocketConnectionClosedException):
                client.recv()
            assert time.perf_counter() - started >= 0.050
        tallies = wait_for_open_connections(backend, 0)
        assert (tallies["drops"], tallies["injected_delays"]) == (1, 1)


# TLS


def write_self_signed_pair(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_wss_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = write_self_signed_pair(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    trust.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
    with running_backend("websocket", ["--tls-cert", str(cert), "--tls-key", str(key)]) as backend:
        assert backend.scheme == "wss" and backend.url.startswith("wss://")
        with connected(backend, sslopt={"context": trust}) as client:
            assert ask(client, {"type": "echo", "id": "tls"}) == {"type": "echo", "id": "tls"}
        assert http_json(backend, "/stats", context=trust)["requests"] == {"echo": 1}
        with pytest.raises(websocket.WebSocketException):
            websocket.create_connection(backend.url.replace("wss://", "ws://"), timeout=5).recv()


# Lifecycle and startup errors


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_closes_open_connections_with_1001(signum: signal.Signals) -> None:
    with running_backend("websocket") as backend, sync_connect(backend.url) as client:
        client.send(json.dumps({"type": "echo", "id": 1}))
        client.recv(timeout=10)
        backend.process.send_signal(signum)
        with pytest.raises(ConnectionClosedOK) as closed:
            client.recv(timeout=10)
        assert backend.process.wait(10) == 0
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVER, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in named:
        assert text in lines[0], lines[0]


def test_unknown_flag_is_one_line_and_non_zero() -> None:
    assert_one_line_failure(run_server("--port", "0", "--bogus"), "unrecognized arguments: --bogus")


def test_bad_flag_value_is_one_line_and_non_zero() -> None:
    assert_one_line_failure(run_server("--port", "0", "--fault-drop-rate", "1.5"), "--fault-drop-rate", "1.5")


def test_port_in_use_is_one_line_and_non_zero() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_failure(run_server("--port", str(port)), f"127.0.0.1:{port}", "in use")


def test_missing_tls_file_is_one_line_and_non_zero(tmp_path: Path) -> None:
    cert, _ = write_self_signed_pair(tmp_path)
    missing = tmp_path / "absent.pem"
    result = run_server("--port", "0", "--tls-cert", str(cert), "--tls-key", str(missing))
    assert_one_line_failure(result, "--tls-key", str(missing))


def test_unreadable_tls_file_is_one_line_and_non_zero(tmp_path: Path) -> None:
    _, key = write_self_signed_pair(tmp_path)
    result = run_server("--port", "0", "--tls-cert", str(tmp_path), "--tls-key", str(key))  # a directory
    assert_one_line_failure(result, "--tls-cert", str(tmp_path))


def test_garbage_tls_file_and_lone_cert_are_one_line_and_non_zero(tmp_path: Path) -> None:
    cert, key = write_self_signed_pair(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert_one_line_failure(run_server("--port", "0", "--tls-cert", str(garbage), "--tls-key", str(key)), "PEM")
    assert_one_line_failure(run_server("--port", "0", "--tls-cert", str(cert)), "--tls-key")


# Many idle connections


async def open_idle_connections(url: str, count: int, batch: int) -> list[ClientConnection]:
    """``count`` open connections, opened ``batch`` at a time; on any failure, closes what it opened."""
    opened: list[ClientConnection] = []
    try:
        for start in range(0, count, batch):
            attempts = [
                async_connect(url, ping_interval=None, compression=None) for _ in range(min(batch, count - start))
            ]
            results = await asyncio.gather(*attempts, return_exceptions=True)
            opened += [result for result in results if isinstance(result, ClientConnection)]
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                raise failures[0]
    except BaseException:
        await asyncio.gather(*(connection.close() for connection in opened))
        raise
    return opened


def test_holds_two_thousand_idle_connections_and_keeps_serving(ws_backend: Backend) -> None:
    reset_when_idle(ws_backend)
    count = 2000

    async def scenario() -> None:
        idle = await open_idle_connections(ws_backend.url, count, batch=100)
        try:
            tallies = await asyncio.to_thread(wait_for_open_connections, ws_backend, count)
            assert (tallies["connections_open"], tallies["connections_opened"]) == (count, count)
            await idle[-1].send(json.dumps({"type": "echo", "id": "last"}))
            assert json.loads(await idle[-1].recv()) == {"type": "echo", "id": "last"}
            with connected(ws_backend) as fresh:
                assert ask(fresh, {"type": "ping", "id": 1, "ts": 0})["type"] == "pong"
        finally:
            await asyncio.gather(*(connection.close() for connection in idle))

    asyncio.run(scenario())
    assert wait_for_open_connections(ws_backend, 0)["connections_closed"] == count + 1
