"""One native HTTP/2 connection against a scripted peer on a socket pair: the control frames it must answer
(SETTINGS ack, PING ack with the same bytes), the settings it must apply, GOAWAY and RST_STREAM as it sees them."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest
from gevent import socket

from locust_ext.grpc.native import frames as f
from locust_ext.grpc.native.connection import Connection, ConnectionGone


class Peer:
    """The server end: reads the client's frames, sends frames of its own."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = f.FrameReader()
        self.pending: list[tuple[int, int, int, bytes]] = []
        preface = b""
        while len(preface) < len(f.CONNECTION_PREFACE):
            preface += sock.recv(len(f.CONNECTION_PREFACE) - len(preface))
        assert preface == f.CONNECTION_PREFACE

    def next_frame_any(self) -> tuple[int, int, int, bytes]:
        """The next frame the client sent, whatever its type."""
        while not self.pending:
            self.pending.extend(self.reader.feed(self.sock.recv(65536)))
        return self.pending.pop(0)

    def next_frame(self, kind: int) -> tuple[int, int, int, bytes]:
        """The next frame of ``kind`` the client sent (others skipped), within 5 s."""
        with gevent.Timeout(5):
            while True:
                while self.pending:
                    frame = self.pending.pop(0)
                    if frame[0] == kind:
                        return frame
                self.pending.extend(self.reader.feed(self.sock.recv(65536)))


@pytest.fixture
def pair() -> Iterator[tuple[Connection, Peer]]:
    client, server = socket.socketpair()
    conn = Connection(client)
    peer = Peer(server)
    yield conn, peer
    conn.close()
    server.close()


def test_settings_acked_and_applied_ping_echoed(pair: tuple[Connection, Peer]) -> None:
    conn, peer = pair
    first = peer.next_frame(f.SETTINGS)
    assert f.parse_settings(first[3])[f.SETTINGS_ENABLE_PUSH] == 0
    peer.sock.sendall(
        f.settings_frame({f.SETTINGS_MAX_FRAME_SIZE: 32_768, f.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20})
        + f.ping_frame(b"pingpong")
    )
    assert peer.next_frame(f.SETTINGS)[1] == f.ACK
    assert peer.next_frame(f.PING)[1:] == (f.ACK, 0, b"pingpong")
    assert (conn.peer_max_frame, conn.peer_initial_window) == (32_768, 1 << 20)


def test_stream_reset_by_the_peer_and_goaway(pair: tuple[Connection, Peer]) -> None:
    conn, peer = pair
    stream = conn.open_stream(b"\x83", f.grpc_message(b"x"), True, True)
    _, flags, stream_id, _ = peer.next_frame(f.HEADERS)
    assert stream_id == stream.id == 1 and flags & f.END_HEADERS
    peer.sock.sendall(f.rst_stream_frame(1, f.REFUSED_STREAM))
    with gevent.Timeout(5):
        while not stream.done:
            stream.wait()
    assert stream.reset_code == f.REFUSED_STREAM and stream.refused
    peer.sock.sendall(f.goaway_frame(1))
    with gevent.Timeout(5):
        while conn.usable:
            gevent.sleep(0.01)
    with pytest.raises(ConnectionGone):
        conn.open_stream(b"\x83", None, True, True)


def test_a_closed_socket_fails_the_open_streams(pair: tuple[Connection, Peer]) -> None:
    conn, peer = pair
    stream = conn.open_stream(b"\x83", None, False, True)
    peer.sock.close()
    with gevent.Timeout(5):
        while not stream.done:
            stream.wait()
    assert stream.error is not None and stream.error.startswith("Socket closed") and not conn.usable


def test_new_settings_apply_only_after_their_ack_is_on_the_wire(pair: tuple[Connection, Peer]) -> None:
    """A peer enforces a larger MAX_FRAME_SIZE only once it has our ACK (grpc-core closes the connection on a
    frame over the acknowledged size): a sender blocked mid-message while the SETTINGS arrives must not send
    frames of the new size ahead of the ACK."""
    conn, peer = pair
    peer.next_frame(f.SETTINGS)
    window = 4 << 20
    peer.sock.sendall(f.settings_frame({f.SETTINGS_INITIAL_WINDOW_SIZE: window}) + f.window_update_frame(0, window))
    assert peer.next_frame(f.SETTINGS)[1] == f.ACK
    message = f.grpc_message(b"m" * (2 * window))
    sender = gevent.spawn(conn.open_stream, b"\x83", message, True, False)
    gevent.sleep(0.2)  # the peer reads nothing yet: the sender is blocked in sendall with the window's worth
    assert not sender.dead
    peer.sock.sendall(
        f.settings_frame({f.SETTINGS_MAX_FRAME_SIZE: 1 << 20})
        + f.window_update_frame(0, window + 64)
        + f.window_update_frame(1, window + 64)
    )
    gevent.sleep(0.1)
    sequence: list[tuple[int, int, int]] = []  # (type, flags, length) as they arrived
    received = 0
    with gevent.Timeout(10):
        while received < len(message) or (f.SETTINGS, f.ACK, 0) not in sequence:
            kind, flags, _, payload = peer.next_frame_any()
            sequence.append((kind, flags, len(payload)))
            received += len(payload) if kind == f.DATA else 0
    sender.get(timeout=5)
    acked_at = sequence.index((f.SETTINGS, f.ACK, 0))
    assert max(length for kind, _, length in sequence[:acked_at] if kind == f.DATA) <= 16_384
    assert any(kind == f.DATA and length > 16_384 for kind, _, length in sequence[acked_at:])
