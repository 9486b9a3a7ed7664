"""A WebSocket session's read turn and frame layer: concurrent and cancelled requests, server control frames, TLS."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import locust  # noqa: F401 - patches the standard library (threading too) before sockets are made
import pytest
from locust.env import Environment
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve
from websockets.utils import apply_mask

from backends.kit import running_backend
from locust_ext import WebSocketUser
from locust_ext.testing import Backend
from locust_ext.websocket import WebSocketFailure, WebSocketSession
from locust_ext.websocket.frames import OP_TEXT
from locust_ext.websocket.gauges import counts_for
from tests.tls_certs import make_pki
from tests.ws_sessions import Recorder, open_session, server_stats, serving, session_greenlets, wait_for


class Scripted(WebSocketUser):
    """Sessions against the scripted servers below: no reconnect, so a drop is the end of the story."""

    reconnect = None
    request_timeout = 5.0


def read_turn(session: WebSocketSession) -> Any:
    """The greenlet whose turn it is to read the connection."""
    return session.read_turn.holder


def outcomes(recorder: Recorder, name: str) -> list[str | None]:
    return [failure for _, failure, _ in recorder.named(name)]


@contextmanager
def scripted_server(handler: Callable[[ServerConnection], None]) -> Iterator[str]:
    """A ``websockets`` server on a loopback port running ``handler`` per connection; yields its URL."""
    server = serve(handler, "127.0.0.1", 0, compression=None)
    url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    with serving(server):
        yield url


# Many greenlets sharing one connection


def test_every_reply_of_many_concurrent_requests_reaches_its_own_request_and_all_are_counted(
    environment: Environment, ws: WebSocketSession, ws_backend: Backend, recorder: Recorder
) -> None:
    greenlets, requests_each = 50, 20
    rng = random.Random(6455)
    delays = [[rng.choice((0, 0, 0, 5, 20, 40)) for _ in range(requests_each)] for _ in range(greenlets)]
    wrong: list[str] = []
    server_stats(ws_backend, reset=True)
    runner = environment.create_local_runner()  # hooks Locust's own statistics to the request event

    def user(number: int) -> None:
        for n in range(requests_each):
            tag = f"{number}:{n}"
            message: dict[str, Any] = {"type": "echo", "payload": tag}
            if delays[number][n]:
                message["fault"] = {"delay_ms": delays[number][n]}  # its reply overtaken by later ones
            if n % 4 == 0:
                message["id"] = f"own {tag}"  # ids chosen by the caller, besides the session's own
            reply = ws.request(message, name="echo")
            if reply["payload"] != tag or reply["id"] != message.get("id", reply["id"]):
                wrong.append(f"{tag} got {reply}")
        data = f"binary {number}".encode()
        if ws.request(data, name="binary", match=lambda message: message == data) != data:
            wrong.append(f"binary {number}")
        ws.ping()

    tasks = [gevent.spawn(user, number) for number in range(greenlets)]
    try:
        gevent.joinall(tasks, timeout=30, raise_error=True)
    finally:
        runner.quit()

    assert all(task.successful() for task in tasks)
    assert wrong == []
    sent = greenlets * requests_each
    assert outcomes(recorder, "echo") == [None] * sent
    assert outcomes(recorder, "binary") == [None] * greenlets
    assert outcomes(recorder, "ping") == [None] * greenlets
    assert {name for name, _, _ in recorder.events} == {"connect", "echo", "binary", "ping"}  # no push, no late
    stats = environment.stats.get("echo", "websocket")
    assert (stats.num_requests, stats.num_failures) == (sent, 0)
    served = server_stats(ws_backend)
    assert served["requests"]["echo"] == sent and served["sent_text"] == sent
    assert served["injected_delays"] == sum(1 for row in delays for delay in row if delay)
    assert served["received_binary"] == served["sent_binary"] == greenlets


# The read turn changing hands


def test_killing_the_request_that_holds_the_read_turn_passes_the_turn_to_the_waiting_ones(
    ws: WebSocketSession, recorder: Recorder
) -> None:
    holder = gevent.spawn(ws.request, {"type": "echo", "fault": {"delay_ms": 400}}, name="holder")
    gevent.sleep(0.05)
    assert read_turn(ws) is holder  # the first request to wait took the turn
    waiting = [
        gevent.spawn(ws.request, {"type": "echo", "payload": n, "fault": {"delay_ms": 150}}, name="waiting")
        for n in range(3)
    ]
    gevent.sleep(0.05)
    holder.kill()
    assert read_turn(ws) in (None, *waiting)
    gevent.sleep(0.02)
    assert read_turn(ws) in waiting  # handed to a waiting request, not to the idle reader

    assert [task.get(timeout=5)["payload"] for task in waiting] == [0, 1, 2]
    assert outcomes(recorder, "holder") == ["cancelled: user stopped mid-request"]
    assert outcomes(recorder, "waiting") == [None, None, None]
    wait_for(lambda: recorder.named("late reply"))  # the killed request's reply still comes, and is not lost
    assert outcomes(recorder, "late reply") == ["late: reply after its request gave up"]
    assert ws.request({"type": "echo", "payload": "after"}, name="after")["payload"] == "after"


def test_a_turn_handed_to_a_request_killed_at_the_same_moment_still_reaches_the_others(
    ws: WebSocketSession, recorder: Recorder
) -> None:
    holder = gevent.spawn(ws.request, {"type": "echo", "fault": {"delay_ms": 400}}, name="holder")
    gevent.sleep(0.05)
    next_in_line = gevent.spawn(ws.request, {"type": "echo", "fault": {"delay_ms": 400}}, name="next in line")
    gevent.sleep(0.02)
    survivor = gevent.spawn(
        ws.request, {"type": "echo", "payload": "kept", "fault": {"delay_ms": 150}}, name="survivor", timeout=2
    )
    gevent.sleep(0.02)
    holder.kill(block=False)  # the holder hands the turn to the next in line, which is being killed too
    next_in_line.kill(block=False)
    started = time.perf_counter()

    assert survivor.get(timeout=5)["payload"] == "kept"
    assert time.perf_counter() - started < 1.0  # its reply, not its timeout
    assert outcomes(recorder, "holder") == ["cancelled: user stopped mid-request"]
    assert outcomes(recorder, "next in line") == ["cancelled: user stopped mid-request"]
    assert outcomes(recorder, "survivor") == [None]


def test_a_request_that_times_out_holding_the_turn_hands_it_to_the_next_waiting_request(
    ws: WebSocketSession, recorder: Recorder
) -> None:
    impatient = gevent.spawn(ws.request, {"type": "echo", "fault": {"delay_ms": 400}}, name="impatient", timeout=0.1)
    gevent.sleep(0.03)
    assert read_turn(ws) is impatient
    holders: list[Any] = []
    sample = gevent.spawn_later(0.15, lambda: holders.append(read_turn(ws)))  # after the timeout, before the reply

    reply = ws.request({"type": "echo", "payload": "patient", "fault": {"delay_ms": 250}}, name="patient", timeout=3)

    sample.join(1)
    assert reply["payload"] == "patient"
    assert holders == [gevent.getcurrent()]
    with pytest.raises(WebSocketFailure, match=r"^timeout: no reply within 0.1 s$"):
        impatient.get(timeout=5)
    assert outcomes(recorder, "impatient") == ["timeout: no reply within 0.1 s"]
    assert outcomes(recorder, "patient") == [None]
    wait_for(lambda: recorder.named("late reply"))
    assert outcomes(recorder, "late reply") == ["late: reply after its request gave up"]


# Pushes


def test_a_push_handler_that_raises_fails_that_push_only_and_the_session_goes_on(
    ws: WebSocketSession, recorder: Recorder
) -> None:
    handled_on: list[Any] = []

    def handler(message: dict[str, Any]) -> None:
        handled_on.append(gevent.getcurrent())
        if message["seq"] % 2:
            raise ValueError(f"odd {message['seq']}")

    ws.on("stream", handler)
    ws.send({"type": "stream", "count": 5, "interval_ms": 20, "id": "feed"}, name="stream")
    # The pushes arrive while this request waits for a slower reply: the request's greenlet reads them.
    assert ws.request({"type": "echo", "payload": "busy", "fault": {"delay_ms": 200}}, name="busy")["payload"] == "busy"

    assert outcomes(recorder, "push stream") == [
        None,
        "error: push handler raised ValueError: odd 1",
        None,
        "error: push handler raised ValueError: odd 3",
        None,
    ]
    assert handled_on == [gevent.getcurrent()] * 5  # the greenlet holding the turn runs the handlers
    assert outcomes(recorder, "busy") == [None]
    assert ws.request({"type": "echo", "payload": "next"})["payload"] == "next"
    ws.send({"type": "stream", "count": 1, "id": "idle feed"}, name="stream")
    wait_for(lambda: len(handled_on) == 6)
    assert len(handled_on) == 6 and handled_on[5] is not gevent.getcurrent()  # idle: a short-lived reader
    assert outcomes(recorder, "push stream")[5] is None


# Control frames and fragments from a server scripted here


PING_PAYLOADS = [bytes(range(125)), b"\x00\xff idle", b""]  # the largest a control frame carries, binary, empty


def test_server_pings_are_answered_with_pongs_carrying_the_same_payload_while_waiting_and_while_idle(
    environment: Environment, recorder: Recorder
) -> None:
    def handler(connection: ServerConnection) -> None:
        for raw in connection:
            request = json.loads(raw)
            # While the request waits for this reply, its greenlet holds the turn and must answer the ping.
            ponged = connection.ping(PING_PAYLOADS[0]).wait(2)  # set only by a pong with this very payload
            connection.send(json.dumps({"type": "pinged", "id": request["id"], "ponged": ponged}))
            for payload in PING_PAYLOADS[1:]:
                time.sleep(0.05)  # the client is idle now: its io watcher must wake a reader
                connection.send(json.dumps({"type": "idle pinged", "ponged": connection.ping(payload).wait(2)}))

    pushes: list[Any] = []
    with scripted_server(handler) as url:
        session = open_session(environment, url, Scripted)
        session.on("idle pinged", pushes.append)
        reply = session.request({"type": "ping me"}, name="ping me")
        wait_for(lambda: len(pushes) == 2)
        session.close()

    assert reply["ponged"] is True
    assert pushes == [{"type": "idle pinged", "ponged": True}] * 2
    assert outcomes(recorder, "ping me") == [None]
    assert outcomes(recorder, "push idle pinged") == [None, None]
    assert recorder.named("disconnect") == []


def test_fragmented_server_messages_arrive_whole_as_replies_and_pushes(
    environment: Environment, recorder: Recorder
) -> None:
    text = "fragments of héllo wörld ✓ " * 40
    pongs: list[bool] = []

    def handler(connection: ServerConnection) -> None:
        for raw in connection:
            if isinstance(raw, bytes):  # a binary request: its reply in three binary fragments
                connection.send([raw[:1], raw[1:300], raw[300:]])
                continue
            reply = json.dumps({"type": "fragmented", "id": json.loads(raw)["id"], "text": text})

            def fragments(reply: str = reply) -> Iterator[str]:
                yield reply[:7]
                pinged = connection.ping(b"between fragments")  # a control frame inside the message
                yield reply[7:500]
                yield reply[500:]
                pongs.append(pinged.wait(2))

            connection.send(fragments())
            # A push in UTF-8 bytes cut inside a two-byte character: valid only once reassembled.
            push = json.dumps({"type": "split", "text": "é" * 20}, ensure_ascii=False).encode()
            cut = push.index("é".encode()) + 1
            connection.send([push[:cut], push[cut:]], text=True)

    pushes: list[Any] = []
    binary = bytes(range(256)) * 4
    with scripted_server(handler) as url:
        session = open_session(environment, url, Scripted)
        session.on("split", pushes.append)
        reply = session.request({"type": "fragmented"}, name="text")
        echoed = session.request(binary, name="binary", match=lambda message: isinstance(message, bytes))
        wait_for(lambda: pushes)
        session.close()

    assert reply["text"] == text
    assert echoed == binary
    assert pongs == [True]
    assert pushes == [{"type": "split", "text": "é" * 20}]
    assert outcomes(recorder, "text") == [None]
    assert recorder.named("binary") == [("binary", None, len(binary))]
    assert recorder.named("disconnect") == []


@pytest.mark.parametrize(
    ("code", "reason", "recorded", "while_waiting"),
    [
        (4000, "kicked", "disconnect: 4000 kicked", True),
        (1001, "", "disconnect: 1001 going away", False),
    ],
    ids=["custom code while a request waits", "going away while idle"],
)
def test_a_server_close_frame_is_echoed_and_recorded_as_a_disconnect_with_its_code(
    environment: Environment, recorder: Recorder, code: int, reason: str, recorded: str, while_waiting: bool
) -> None:
    echoed: list[Any] = []

    def handler(connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # raised by the loop when the close code is not 1000/1001
            for _ in connection:
                if not while_waiting:
                    time.sleep(0.05)
                connection.close(code, reason)  # returns once the client answered the close and hung up
        echoed.append(connection.protocol.close_rcvd)

    with scripted_server(handler) as url:
        session = open_session(environment, url, Scripted)
        if while_waiting:
            with pytest.raises(WebSocketFailure) as failed:
                session.request({"type": "please close"}, name="closed")
            assert str(failed.value) == recorded
            assert outcomes(recorder, "closed") == [recorded]
        else:
            session.send({"type": "please close"}, name="closed")
            wait_for(lambda: recorder.named("disconnect"))
        wait_for(lambda: echoed)
        session.close()

    assert outcomes(recorder, "disconnect") == [recorded]
    assert [(frame.code, frame.reason) for frame in echoed] == [(code, "")]  # the client echoed the code
    assert not session.connected and counts_for(environment).open == 0


@pytest.mark.parametrize(
    ("frame", "recorded"),
    [
        (b"\x81\x02\xff\xfe", "disconnect: protocol error: a text frame that is not UTF-8"),
        (b"\x8f\x00", "disconnect: protocol error: reserved opcode 0xf"),
        (b"\xc1\x01x", "disconnect: protocol error: reserved bits set with no extension negotiated"),
    ],
    ids=["text not UTF-8", "reserved opcode", "reserved bit"],
)
def test_a_broken_server_frame_ends_the_connection_as_a_protocol_error(
    environment: Environment, recorder: Recorder, frame: bytes, recorded: str
) -> None:
    def handler(connection: ServerConnection) -> None:
        for _ in connection:
            connection.socket.sendall(frame)  # raw bytes: websockets itself would never send these

    with scripted_server(handler) as url:
        session = open_session(environment, url, Scripted)
        with pytest.raises(WebSocketFailure) as failed:
            session.request({"type": "break"}, name="broken")
        session.close()

    assert str(failed.value) == recorded
    assert outcomes(recorder, "broken") == [recorded]
    assert outcomes(recorder, "disconnect") == [recorded]


# TLS


def test_large_binary_messages_round_trip_over_tls_while_small_requests_share_the_connection(
    environment: Environment, recorder: Recorder, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)

    class Trusting(WebSocketUser):
        tls_ca_file = str(pki.ca_cert)
        request_timeout = 10.0

    sizes = [200_000, 1_000_000, 200_000, 1_000_000]
    payloads = [bytes([n]) * 16 + os.urandom(size - 16) for n, size in enumerate(sizes)]

    def large(payload: bytes) -> bool:
        return bool(session.request(payload, name="large", match=lambda message: message == payload) == payload)

    def small(number: int) -> list[int]:
        return [session.request({"type": "echo", "n": number * 100 + n}, name="small")["n"] for n in range(20)]

    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    with running_backend("websocket", tls) as backend:
        session = open_session(environment, backend.url.replace("ws://", "wss://"), Trusting)
        tasks = [gevent.spawn(large, payload) for payload in payloads]
        chatter = [gevent.spawn(small, number) for number in range(3)]
        gevent.joinall([*tasks, *chatter], timeout=20, raise_error=True)
        session.close()

    assert [task.value for task in tasks] == [True] * len(sizes)
    assert [task.value for task in chatter] == [[number * 100 + n for n in range(20)] for number in range(3)]
    assert sorted(length for _, _, length in recorder.named("large")) == sorted(sizes)
    assert outcomes(recorder, "large") == [None] * len(sizes)
    assert outcomes(recorder, "small") == [None] * 60
    assert recorder.named("disconnect") == []


# Leaks


def test_closing_a_session_after_concurrent_killed_and_timed_out_requests_leaves_no_greenlet_or_fd(
    environment: Environment, ws_backend: Backend, recorder: Recorder
) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    session = open_session(environment, ws_backend.url)

    def chat(number: int) -> None:
        for n in range(10):
            session.request({"type": "echo", "n": n, "fault": {"delay_ms": (number * 7 + n) % 15}}, name="chat")
        session.ping()

    holder = gevent.spawn(session.request, {"type": "echo", "fault": {"delay_ms": 300}}, name="killed")
    gevent.sleep(0.02)
    tasks = [gevent.spawn(chat, number) for number in range(10)]
    late = gevent.spawn(session.request, {"type": "echo", "fault": {"delay_ms": 200}}, name="late", timeout=0.05)
    gevent.sleep(0.02)
    holder.kill()
    gevent.joinall([*tasks, late], timeout=10)
    wait_for(lambda: len(recorder.named("late reply")) == 2)
    session.close()

    assert all(task.successful() for task in tasks)
    assert outcomes(recorder, "chat") == [None] * 100
    assert outcomes(recorder, "killed") == ["cancelled: user stopped mid-request"]
    assert outcomes(recorder, "late") == ["timeout: no reply within 0.05 s"]
    assert outcomes(recorder, "late reply") == ["late: reply after its request gave up"] * 2
    assert counts_for(environment).open == 0
    assert session_greenlets() == []
    assert len(os.listdir("/proc/self/fd")) <= fds_before


# Regressions from a review of the read turn: frames read together, a turn holder held up or killed, frames cut short


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked server frame for raw writes: several frames in one write, or opcodes websockets refuses."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def text_frame(message: Any) -> bytes:
    return server_frame(OP_TEXT, json.dumps(message).encode())


def test_a_reply_read_together_with_a_broken_frame_answers_its_request_then_the_connection_ends_as_a_protocol_error(
    environment: Environment, recorder: Recorder
) -> None:
    def handler(connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in connection:
                reply = text_frame({"type": "echo", "id": json.loads(raw)["id"], "payload": "kept"})
                connection.socket.sendall(reply + b"\x83\x01x")  # one write (one read): the reply, then opcode 0x3

    with scripted_server(handler) as url:
        session = open_session(environment, url, Scripted)
        reply = session.request({"type": "echo"}, name="echo")
        wait_for(lambda: not session.connected)
        connected = session.connected
        session.close()

    assert reply["payload"] == "kept"
    assert outcomes(recorder, "echo") == [None]
    assert outcomes(recorder, "disconnect") == ["disconnect: protocol error: reserved opcode 0x3"]
    assert not connected and counts_for(environment).open == 0


def push_then_reply_server(nested_delay: float) -> Callable[[ServerConnection], None]:
    """A server for request ``a`` (answered last) then ``b``: a ``tick`` push and b's reply go out in one write, so
    the greenlet holding the read turn (a's) reads both at once and runs the push's handler before b's reply is
    dispatched. A ``nested`` request (the handler's) is answered after ``nested_delay`` s, in one write with a's
    reply; any other request at once."""

    def handler(connection: ServerConnection) -> None:
        ids: dict[str, Any] = {}
        with contextlib.suppress(ConnectionClosed, OSError):
            for raw in connection:
                request = json.loads(raw)
                kind = request["type"]
                ids[kind] = request["id"]
                if kind == "b":
                    connection.socket.sendall(text_frame({"type": "tick"}) + text_frame({"type": "b", "id": ids["b"]}))
                elif kind == "nested":
                    time.sleep(nested_delay)
                    replies = [{"type": "nested", "id": ids["nested"]}, {"type": "a", "id": ids["a"]}]
                    connection.socket.sendall(b"".join(text_frame(reply) for reply in replies))
                elif kind != "a":
                    connection.socket.sendall(text_frame({"type": kind, "id": request["id"]}))

    return handler


def test_a_push_handlers_nested_request_does_not_hold_up_a_reply_read_with_the_push(
    environment: Environment, recorder: Recorder
) -> None:
    nested_replies: list[Any] = []
    with scripted_server(push_then_reply_server(nested_delay=0.8)) as url:
        session = open_session(environment, url, Scripted)
        session.on("tick", lambda _: nested_replies.append(session.request({"type": "nested"}, name="nested")))
        holder = gevent.spawn(session.request, {"type": "a"}, name="a")
        gevent.sleep(0.05)
        assert read_turn(session) is holder
        started = time.perf_counter()
        reply = session.request({"type": "b"}, name="b", timeout=3)
        waited = time.perf_counter() - started
        held_reply = holder.get(timeout=5)
        session.close()

    assert reply["type"] == "b"
    assert waited < 0.4  # read with the push: not after the handler's nested request (0.8 s), nor its own timeout
    assert [message["type"] for message in nested_replies] == ["nested"]  # the nested request completed too
    assert held_reply["type"] == "a"
    for name in ("b", "nested", "push tick", "a"):
        assert outcomes(recorder, name) == [None], name
    assert recorder.named("disconnect") == []


def kill_the_turn_holder_in_a_push_handler(
    environment: Environment, recorder: Recorder, held_up_by: str
) -> tuple[Any, float, Any]:
    """Request a holds the read turn and reads a push and b's reply at once; the push's handler is held up (a nested
    request, or a sleep), and a's greenlet is killed there. Returns b's reply, how long b waited, a later reply."""
    in_handler = gevent.event.Event()

    def handler(_: Any) -> None:
        in_handler.set()
        if held_up_by == "nested request":
            session.request({"type": "nested"}, name="nested")
        else:
            gevent.sleep(3)  # handlers must not block; one that does, killed, must not take b's reply down with it

    with scripted_server(push_then_reply_server(nested_delay=0.5)) as url:
        session = open_session(environment, url, Scripted)
        session.on("tick", handler)
        holder = gevent.spawn(session.request, {"type": "a"}, name="a")
        gevent.sleep(0.05)
        assert read_turn(session) is holder
        started = time.perf_counter()
        other = gevent.spawn(session.request, {"type": "b"}, name="b", timeout=2)
        assert in_handler.wait(2)
        gevent.sleep(0.05)
        holder.kill()
        reply = other.get(timeout=5)
        waited = time.perf_counter() - started
        if held_up_by == "nested request":  # the nested request's and a's replies come after both gave up
            wait_for(lambda: len(recorder.named("late reply")) == 2)
        later = session.request({"type": "later"}, name="later")
        session.close()
    return reply, waited, later


@pytest.mark.parametrize("held_up_by", ["nested request", "sleep"])
def test_killing_the_turn_holder_while_its_push_handler_is_held_up_loses_no_frame_it_read(
    environment: Environment, recorder: Recorder, held_up_by: str
) -> None:
    reply, waited, later = kill_the_turn_holder_in_a_push_handler(environment, recorder, held_up_by)

    assert reply["type"] == "b" and waited < 1.0  # its reply, not its 2 s timeout
    assert later["type"] == "later"
    assert outcomes(recorder, "b") == [None]
    assert outcomes(recorder, "a") == ["cancelled: user stopped mid-request"]
    if held_up_by == "nested request":
        assert outcomes(recorder, "nested") == ["cancelled: user stopped mid-request"]
        assert outcomes(recorder, "late reply") == ["late: reply after its request gave up"] * 2
    assert recorder.named("disconnect") == []


def test_a_push_whose_handler_is_killed_with_the_turn_holder_is_still_recorded(
    environment: Environment, recorder: Recorder
) -> None:
    kill_the_turn_holder_in_a_push_handler(environment, recorder, "nested request")

    assert outcomes(recorder, "push tick") == ["cancelled: push handler cut short"]


# A raw server for what a websockets server cannot do: stop reading, and show the bytes a client sent as they are


def accept_upgrade(connection: socket.socket) -> None:
    """Read an HTTP upgrade request and accept it (RFC 6455 section 4.2.2), whatever else it asks for."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = connection.recv(4096)
        if not chunk:
            raise EOFError("no upgrade request")
        request += chunk
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    connection.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def client_frames(connection: socket.socket) -> Iterator[tuple[int, bytes]]:
    """Every whole frame the client sent, as (opcode, unmasked payload), until the stream ends; EOFError when it
    ends inside a frame."""
    buffer = bytearray()

    def fill(size: int) -> bool:
        while len(buffer) < size:
            chunk = connection.recv(1 << 20)
            if not chunk:
                return False
            buffer.extend(chunk)
        return True

    while fill(1):
        if not fill(2):
            raise EOFError("the stream ended inside a frame header")
        size, offset = buffer[1] & 0x7F, 2
        if size == 126:
            offset = 4
            if fill(offset):
                (size,) = struct.unpack_from("!H", buffer, 2)
        elif size == 127:
            offset = 10
            if fill(offset):
                (size,) = struct.unpack_from("!Q", buffer, 2)
        if not fill(offset + 4 + size):
            raise EOFError(f"the stream ended inside a frame: {len(buffer)} of {offset + 4 + size} bytes")
        key = bytes(buffer[offset : offset + 4])
        yield buffer[0] & 0x0F, apply_mask(bytes(buffer[offset + 4 : offset + 4 + size]), key)
        del buffer[: offset + 4 + size]


@contextmanager
def raw_server(script: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A WebSocket server on a loopback port for one connection: its upgrade, then ``script``; yields the port.

    Its receive buffer is small, so a client's large frame soon fills the buffers while ``script`` is not reading.
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # inherited by the accepted connection
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            if tls is not None:
                connection = tls.wrap_socket(connection, server_side=True)
            accept_upgrade(connection)
            script(connection)
        finally:
            connection.close()

    server = gevent.spawn(serve)
    try:
        yield listener.getsockname()[1]
    finally:
        server.kill(timeout=5)
        listener.close()


@contextmanager
def stalled_connection(
    environment: Environment, tmp_path: Path, tls: bool
) -> Iterator[tuple[WebSocketSession, gevent.event.Event, list[tuple[int, bytes]], list[str]]]:
    """A session to a raw server that reads nothing until the yielded event is set, then every frame until the
    stream ends; yields the session, that event, the frames the server read whole, and how its reading ended."""
    go_read = gevent.event.Event()
    received: list[tuple[int, bytes]] = []
    ended: list[str] = []

    def script(connection: socket.socket) -> None:
        go_read.wait(10)
        connection.settimeout(5)
        try:
            received.extend(client_frames(connection))
            ended.append("at a frame boundary")
        except (EOFError, OSError) as exc:
            ended.append(f"{type(exc).__name__}: {exc}")

    context = None
    user_class: type[WebSocketUser] = Scripted
    if tls:
        pki = make_pki(tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)

        class Trusting(Scripted):
            tls_ca_file = str(pki.ca_cert)

        user_class = Trusting
    with raw_server(script, context) as port:
        session = open_session(environment, f"{'wss' if tls else 'ws'}://127.0.0.1:{port}", user_class)
        try:
            yield session, go_read, received, ended
        finally:
            session.close()


LARGE = 8 << 20  # far more than the socket buffers of both ends hold


def send_large_until_blocked(session: WebSocketSession) -> gevent.Greenlet:
    """A greenlet sending a large binary message, once it is blocked with part of the frame sent."""
    link = session.read_turn.link
    assert link is not None
    sender = gevent.spawn(session.send, os.urandom(LARGE), name="large")
    wait_for(lambda: link.sending, polls=300)
    gevent.sleep(0.05)
    assert link.sending and not sender.dead
    return sender


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_a_send_killed_while_its_large_frame_is_going_out_aborts_the_connection(
    environment: Environment, recorder: Recorder, tmp_path: Path, tls: bool
) -> None:
    with stalled_connection(environment, tmp_path, tls) as (session, go_read, received, ended):
        sender = send_large_until_blocked(session)
        sender.kill()
        wait_for(lambda: not session.connected, polls=200)
        connected = session.connected
        with pytest.raises(WebSocketFailure, match=r"^disconnect: "):  # no frame goes out after half a frame
            session.send({"type": "after"}, name="after")
        go_read.set()
        wait_for(lambda: ended, polls=300)

    assert not connected
    assert outcomes(recorder, "large") == ["cancelled: user stopped mid-send"]
    assert outcomes(recorder, "disconnect") == ["disconnect: 1006 connection lost"]
    assert outcomes(recorder, "after") == ["disconnect: not connected"]
    assert received == []  # the cut frame never reads as a message, nor does anything after it
    assert len(ended) == 1 and ended[0].startswith("EOFError: the stream ended inside a frame")
    assert counts_for(environment).open == 0


def test_a_kill_landing_while_close_waits_to_send_its_close_frame_still_closes_the_connection(
    environment: Environment, recorder: Recorder, tmp_path: Path
) -> None:
    with stalled_connection(environment, tmp_path, tls=False) as (session, _, _, _):
        sender = send_large_until_blocked(session)  # holds the write lock: the close frame must wait for it
        closer = gevent.spawn(session.close)
        gevent.sleep(0.1)
        assert not closer.dead  # waiting to send the close frame
        closer.kill()
        assert not session.connected and counts_for(environment).open == 0
        with pytest.raises(WebSocketFailure, match=r"^disconnect: send failed"):
            sender.get(timeout=2)  # its socket closed under it

    assert outcomes(recorder, "large") == [str(sender.exception)]
    assert recorder.named("disconnect") == []  # closing is no drop
    assert session_greenlets() == []


# Messages the session must take in its stride


def test_a_text_message_nested_too_deep_for_json_is_a_text_push_and_the_session_goes_on(
    environment: Environment, recorder: Recorder
) -> None:
    deep = "[" * 200_000 + "]" * 200_000

    def handler(connection: ServerConnection) -> None:
        for raw in connection:
            request = json.loads(raw)
            if request["type"] == "deep":
                connection.send(deep)
            connection.send(json.dumps({"type": request["type"], "id": request["id"]}))

    texts: list[Any] = []
    with scripted_server(handler) as url:
        session = open_session(environment, url, Scripted)
        session.on(lambda message: isinstance(message, str), texts.append)
        first = session.request({"type": "deep"}, name="deep")
        then = session.request({"type": "then"}, name="then")
        session.close()

    assert texts == [deep]
    assert recorder.named("push text") == [("push text", None, len(deep))]
    assert (first["type"], then["type"]) == ("deep", "then")
    assert outcomes(recorder, "deep") == outcomes(recorder, "then") == [None]
    assert recorder.named("disconnect") == []


def test_a_caller_chosen_id_already_waiting_on_the_connection_is_refused_before_anything_is_sent(
    ws: WebSocketSession, ws_backend: Backend, recorder: Recorder
) -> None:
    server_stats(ws_backend, reset=True)
    first = gevent.spawn(
        ws.request, {"type": "echo", "id": "mine", "payload": "first", "fault": {"delay_ms": 200}}, name="first"
    )
    gevent.sleep(0.05)

    with pytest.raises(ValueError, match=r"^a request with id 'mine' is already waiting on this connection$"):
        ws.request({"type": "echo", "id": "mine", "payload": "second"}, name="second")

    assert first.get(timeout=5)["payload"] == "first"
    assert recorder.named("second") == []
    assert server_stats(ws_backend)["requests"]["echo"] == 1  # the refused request never left
    assert ws.request({"type": "echo", "id": "mine", "payload": "again"}, name="again")["payload"] == "again"
    assert outcomes(recorder, "first") == outcomes(recorder, "again") == [None]


def test_the_sessions_own_request_ids_skip_caller_chosen_ids_still_waiting(
    ws: WebSocketSession, recorder: Recorder
) -> None:
    chosen = [
        gevent.spawn(
            ws.request,
            {"type": "echo", "id": key, "payload": f"chosen {key}", "fault": {"delay_ms": 300}},
            name="chosen",
            timeout=2,
        )
        for key in (1, 2)  # the ids the session itself would hand out next (its ids count from 1)
    ]
    gevent.sleep(0.05)

    own = ws.request({"type": "echo", "payload": "own id"}, name="own id", timeout=2)

    assert own["payload"] == "own id" and own["id"] not in (1, 2)
    assert [task.get(timeout=5)["payload"] for task in chosen] == ["chosen 1", "chosen 2"]
    assert outcomes(recorder, "chosen") == [None, None]
    assert outcomes(recorder, "own id") == [None]
    assert recorder.named("push echo") == []
