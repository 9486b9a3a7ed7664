"""What made many connections cheaper (scripts/ws_scale.py): the handshake's header reading takes no byte of the
frames after it, a keepalive ping sent from the hub arrives whole even past a full send buffer, and a shape's
level after a ramp keeps the ramp's tick."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator

import gevent
import locust  # noqa: F401 - patches the standard library before sockets are made
import pytest
from websocket import WebSocket

from locust_ext.shapes import StagesShape
from locust_ext.websocket.connector import _HeaderReading
from locust_ext.websocket.frames import OP_PING, mask
from locust_ext.websocket.link import Link

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAME = b"\x81\x05hello"  # a text frame, "hello", unmasked (server to client)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    yield client, server
    client.close()
    server.close()


def read_headers(reader: _HeaderReading, data: bytes = b"") -> bytes:
    """As websocket-client reads them: one byte per recv, up to the empty line."""
    while not data.endswith(b"\r\n\r\n"):
        data += reader.recv(1)
    return data


@pytest.mark.parametrize("split", [None, 1, 2, 3])
def test_header_reading_takes_the_headers_and_leaves_the_frame_after_them(
    pair: tuple[socket.socket, socket.socket], split: int | None
) -> None:
    client, server = pair
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    if split is None:
        server.sendall(head + FRAME)
    else:  # the end of the headers split between two reads
        server.sendall(head[:-split])
    reader = _HeaderReading(client)
    if split is not None:
        first = reader.recv(len(head) - split)
        server.sendall(head[-split:] + FRAME)
        assert read_headers(reader, first) == head
    else:
        assert read_headers(reader) == head
    assert client.recv(100) == FRAME


def test_websocket_client_handshake_over_header_reading(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair

    def serve() -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += server.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n") if line.startswith(b"Sec-"))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        server.sendall(response + b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + FRAME)

    serving = gevent.spawn(serve)
    ws = WebSocket(skip_utf8_validation=True)
    client.settimeout(5)
    ws.connect("ws://127.0.0.1:1/", socket=_HeaderReading(client), timeout=5)
    serving.join(5)
    assert ws.status == 101
    assert client.recv(100) == FRAME  # the frame that came with the response is still the socket's


def test_a_level_after_a_ramp_keeps_the_ramps_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick that differs makes Locust restart its ramp: at the level the unfinished ramp's users would go 1/s."""
    shape = StagesShape(stages="10s:1000,10s:1000")
    shape.reset_time()
    ticks = []
    for t in (9.5, 10.5, 11.5, 12.5):
        monkeypatch.setattr(shape, "get_run_time", lambda t=t: t)
        ticks.append(shape.tick())
    assert ticks == [(950, 100.0), (1000, 50.0), (1000, 50.0), (1000, 50.0)]
    assert shape.tick_at(12.5) == (1000, 1.0)  # the tick of that moment alone is unchanged


def received_ping(sock: socket.socket, skip: int = 0) -> bytes:
    """The payload of the one masked ping frame the client sent after ``skip`` other bytes."""
    data = b""
    sock.settimeout(5)
    while len(data) < skip + 2 or len(data) < skip + 6 + (data[skip + 1] & 0x7F):
        data += sock.recv(1 << 20)
        gevent.sleep(0)
    frame = data[skip:]
    assert frame[0] == 0x80 | OP_PING and len(frame) == 6 + (frame[1] & 0x7F)
    return mask(frame[6:], frame[2:6])


def test_a_ping_sent_from_the_hub_goes_whole_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    link = Link(client, None)
    gevent.get_hub().loop.run_callback(link.send_soon, OP_PING, b"keepalive")  # on the hub, as the keepalive timer
    gevent.sleep(0)
    assert received_ping(server) == b"keepalive"
    assert not link.sending


def test_a_ping_past_a_full_send_buffer_follows_whole_on_a_greenlet(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    link = Link(client, None)
    filled = 0
    while True:  # fill the send buffer until a frame no longer fits whole
        try:
            sent = client._sock.send(b"x" * 1000)  # type: ignore[attr-defined]
        except BlockingIOError:
            break
        filled += sent
        if sent < 1000:
            break
    link.send_soon(OP_PING, b"keepalive")
    assert link.sending  # the frame waits for room on a greenlet, holding the write lock
    assert received_ping(server, skip=filled) == b"keepalive"
    assert not link.sending
