"""A gRPC server peer built on ``h2``, the reference Python HTTP/2 implementation, for the native transport's tests.

Every byte the client sends is cut into frames and fed to ``h2.connection.H2Connection`` one frame at a time, so
h2's state machine validates each frame (stream states, header blocks, pseudo-headers, frame sizes against the
settings h2 has seen acknowledged, both flow-control windows) and any violation is kept in
:attr:`PeerConnection.errors` instead of being swallowed. The peer records what arrived: each frame with the
limits h2 applied to it (:class:`ClientFrame`) and each h2 event, in order.

Calls are answered by handlers, one greenlet per stream, written as blocking code against :class:`PeerStream`
(``recv`` a gRPC message, ``send_headers`` / ``send_message`` / ``send_trailers``; sends wait for the client's
flow-control window as h2 reports it). Window for the client's DATA is granted in small WINDOW_UPDATEs up to a
target (the acknowledged INITIAL_WINDOW_SIZE per stream), the way a server that consumes eagerly would.

Runs in gevent greenlets on gevent sockets (the tests run under Locust's monkey patching), on 127.0.0.1 with a
port the kernel picks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import gevent
import h2.events as ev
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.queue import Queue
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

__all__ = ["ClientFrame", "H2Peer", "PeerConnection", "PeerStream", "StreamGone", "grpc_messages", "running_peer"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
Handler = Callable[["PeerStream"], None]
Headers = Sequence[tuple[str | bytes, str | bytes]]


class StreamGone(Exception):
    """The client reset the stream (or the connection closed) while a handler was still answering it."""


@dataclass(frozen=True)
class ClientFrame:
    """One frame the client sent, as it reached h2."""

    kind: int
    flags: int
    stream_id: int
    length: int
    #: h2's inbound maximum frame size when the frame arrived (the acknowledged SETTINGS_MAX_FRAME_SIZE).
    max_frame: int
    #: How many of the peer's SETTINGS the client had acknowledged before this frame.
    acks_before: int


def grpc_messages(buffer: bytearray) -> Iterator[bytes]:
    """Take the complete length-prefixed gRPC messages off the front of ``buffer``."""
    while len(buffer) >= 5:
        compressed, length = struct.unpack_from(">BL", buffer)
        assert compressed == 0, "the peer's handlers take uncompressed messages only"
        if len(buffer) < 5 + length:
            return
        yield bytes(buffer[5 : 5 + length])
        del buffer[: 5 + length]


@dataclass
class PeerStream:
    """One request stream as the peer sees it, and the handler's way to answer it."""

    conn: PeerConnection
    id: int
    headers: list[tuple[bytes, bytes]]
    messages: Queue = field(default_factory=Queue)
    buffer: bytearray = field(default_factory=bytearray)
    data_bytes: int = 0
    ended: bool = False
    reset_code: int | None = None
    reset_sent: bool = False

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)

    @property
    def path(self) -> bytes:
        return self.header(b":path") or b""

    def recv(self, timeout: float = 10.0) -> bytes | None:
        """The next request message, or None once the client half-closed (StreamGone if it reset)."""
        item = self.messages.get(timeout=timeout)
        if item is None and (self.reset_code is not None or not self.ended):  # reset, or the connection closed
            raise StreamGone(self.reset_code)
        return item

    def recv_all(self, timeout: float = 10.0) -> list[bytes]:
        out = []
        while (message := self.recv(timeout)) is not None:
            out.append(message)
        return out

    def _check(self) -> None:
        if self.reset_code is not None or self.conn.closed:
            raise StreamGone(self.reset_code)

    def send_headers(self, extra: Headers = (), end_stream: bool = False) -> None:
        self._check()
        self.conn.h2.send_headers(
            self.id, [(":status", "200"), ("content-type", "application/grpc"), *extra], end_stream=end_stream
        )
        self.conn.flush()

    def send_trailers(self, status: int = 0, message: str | None = None, extra: Headers = ()) -> None:
        self._check()
        trailers: list[tuple[str | bytes, str | bytes]] = [("grpc-status", str(status))]
        if message is not None:
            trailers.append(("grpc-message", message))
        self.conn.h2.send_headers(self.id, [*trailers, *extra], end_stream=True)
        self.conn.flush()

    def trailers_only(self, status: int, message: str | None = None, extra: Headers = ()) -> None:
        """A response of one header block with END_STREAM: ``:status``, content-type and the gRPC status."""
        self._check()
        fields: list[tuple[str | bytes, str | bytes]] = [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", str(status)),
        ]
        if message is not None:
            fields.append(("grpc-message", message))
        self.conn.h2.send_headers(self.id, [*fields, *extra], end_stream=True)
        self.conn.flush()

    def send_message(self, payload: bytes, **kwargs: Any) -> None:
        self.send_data(struct.pack(">BL", 0, len(payload)) + payload, **kwargs)

    def send_data(
        self,
        data: bytes,
        end_stream: bool = False,
        pad_length: Callable[[int], int | None] | int | None = None,
        max_chunk: int | None = None,
        timeout: float = 20.0,
    ) -> None:
        """DATA frames for ``data`` within the client's window (waiting for WINDOW_UPDATE as needed), each at most
        ``max_chunk`` and h2's max outbound frame size; ``pad_length`` (an int, or a function of the frame's
        index) pads them."""
        h2conn = self.conn.h2
        view = memoryview(data)
        index = 0
        while True:
            self._check()
            pad = pad_length(index) if callable(pad_length) else pad_length
            overhead = 0 if pad is None else pad + 1
            room = min(h2conn.local_flow_control_window(self.id), h2conn.max_outbound_frame_size)
            if max_chunk is not None:
                room = min(room, max_chunk + overhead)
            size = min(len(view), room - overhead)
            if view and size <= 0:
                self.conn.wait_for_window(timeout)
                continue
            last = size == len(view)
            h2conn.send_data(self.id, bytes(view[:size]), end_stream=end_stream and last, pad_length=pad)
            self.conn.flush()
            index += 1
            if last:
                return
            view = view[size:]

    def reset(self, error_code: int) -> None:
        self._check()
        self.reset_sent = True
        self.conn.h2.reset_stream(self.id, error_code)
        self.conn.flush()


class PeerConnection:
    """One accepted connection: h2 fed frame by frame from a reader greenlet, handlers in greenlets of their own."""

    def __init__(self, peer: H2Peer, sock: socket.socket, index: int) -> None:
        self.peer = peer
        self.sock = sock
        self.index = index
        self.h2 = H2Connection(config=H2Configuration(client_side=False, header_encoding=None))
        self.frames: list[ClientFrame] = []
        self.events: list[ev.Event] = []
        self.errors: list[BaseException] = []
        self.handler_errors: list[BaseException] = []
        self.streams: dict[int, PeerStream] = {}
        #: The peer's own frames as sent: (type, flags, stream id, length).
        self.sent_frames: list[tuple[int, int, int, int]] = []
        #: The increments of the WINDOW_UPDATEs the peer sent.
        self.sent_window_updates: list[int] = []
        self.closed = False
        self.acks = 0
        self._send_lock = Semaphore()
        self._changed = Event()
        self._window = Event()
        self._reading = Event()
        self._reading.set()
        self._handlers: list[gevent.Greenlet] = []
        self.h2.initiate_connection()
        if peer.settings:
            self.h2.update_settings(dict(peer.settings))
        self.flush()
        self.reader = gevent.spawn(self._read_loop)

    # Sending

    def flush(self) -> None:
        """Send what h2 has queued, in h2's order (one sender at a time)."""
        with self._send_lock:
            data = self.h2.data_to_send()
            self._record_sent(data)
            if data and not self.closed:
                try:
                    self.sock.sendall(data)
                except OSError:
                    self._close()

    def _record_sent(self, data: bytes) -> None:
        pos = 0
        while pos + 9 <= len(data):
            length = int.from_bytes(data[pos : pos + 3], "big")
            stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            self.sent_frames.append((data[pos + 3], data[pos + 4], stream_id, length))
            if data[pos + 3] == 0x8:
                self.sent_window_updates.append(int.from_bytes(data[pos + 9 : pos + 13], "big"))
            pos += 9 + length

    @property
    def sent_frame_kinds(self) -> list[int]:
        return [kind for kind, *_ in self.sent_frames]

    def send_raw(self, data: bytes) -> None:
        """Bytes h2 does not produce (it can only send GOAWAY by closing the connection for good)."""
        self.flush()
        with self._send_lock:
            self._record_sent(data)
            self.sock.sendall(data)

    def goaway(self, last_stream_id: int, error_code: int = 0) -> None:
        """GOAWAY with ``last_stream_id``, streams at or below it kept working in h2."""
        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        frame.error_code = error_code
        self.send_raw(frame.serialize())

    def update_settings(self, settings: Mapping[int, int]) -> None:
        self.h2.update_settings(dict(settings))
        self.flush()

    def ping(self, opaque: bytes) -> None:
        self.h2.ping(opaque)
        self.flush()

    def pause_reading(self) -> None:
        """Stop reading the socket after the bytes being processed (the client's sends then fill the buffers)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    # Waiting

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``predicate()`` holds, re-checked whenever the reader has processed bytes (gevent.Timeout if not)."""
        with gevent.Timeout(timeout):
            while not predicate():
                self._changed.wait()

    def wait_for_window(self, timeout: float) -> None:
        with gevent.Timeout(timeout):
            self._window.wait()

    def _pulse(self, name: str) -> None:
        event = getattr(self, name)
        setattr(self, name, Event())
        event.set()

    def events_of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    # Receiving

    def _read_loop(self) -> None:
        buffer = bytearray()
        preface = False
        try:
            while True:
                self._reading.wait()
                data = self.sock.recv(65536)
                if not data:
                    break
                buffer += data
                units = []
                if not preface:
                    if len(buffer) < len(PREFACE):
                        continue
                    units.append(bytes(buffer[: len(PREFACE)]))
                    del buffer[: len(PREFACE)]
                    preface = True
                while len(buffer) >= 9:
                    end = 9 + int.from_bytes(buffer[:3], "big")
                    if len(buffer) < end:
                        break
                    units.append(bytes(buffer[:end]))
                    del buffer[:end]
                for unit in units:
                    self._receive(unit)
                    if self.errors:
                        break
                if self.errors:
                    self.flush()  # h2's GOAWAY with the error code
                    break
                self._grant_window()
                self.flush()
                self._pulse("_changed")
        except OSError:
            pass
        finally:
            self._close()

    def _receive(self, unit: bytes) -> None:
        if unit != PREFACE:
            length = int.from_bytes(unit[:3], "big")
            self.frames.append(
                ClientFrame(unit[3], unit[4], int.from_bytes(unit[5:9], "big") & 0x7FFFFFFF, length,
                            self.h2.max_inbound_frame_size, self.acks)
            )  # fmt: skip
        try:
            events = self.h2.receive_data(unit)
        except Exception as exc:  # ProtocolError, FlowControlError, FrameTooLargeError, ...: the client's fault
            self.errors.append(exc)
            return
        for event in events:
            self.events.append(event)
            self._dispatch(event)

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.RequestReceived):
            assert event.stream_id is not None and event.headers is not None
            stream = PeerStream(self, event.stream_id, list(event.headers))
            self.streams[event.stream_id] = stream
            handler = self.peer.routes.get(stream.path.decode(), self.peer.default_handler)
            self._handlers.append(gevent.spawn(self._run_handler, handler, stream))
        elif isinstance(event, ev.DataReceived):
            stream = self.streams[event.stream_id]
            stream.data_bytes += len(event.data or b"")
            stream.buffer += event.data or b""
            for message in grpc_messages(stream.buffer):
                stream.messages.put(message)
            if self.peer.on_data is not None:
                self.peer.on_data(self, stream)
        elif isinstance(event, ev.StreamEnded):
            stream = self.streams[event.stream_id]
            stream.ended = True
            stream.messages.put(None)
        elif isinstance(event, ev.StreamReset):
            found = self.streams.get(event.stream_id)
            if found is not None:
                found.reset_code = int(event.error_code)
                found.messages.put(None)
            self._pulse("_window")
        elif isinstance(event, ev.SettingsAcknowledged):
            self.acks += 1
            self._pulse("_window")
        elif isinstance(event, (ev.WindowUpdated, ev.RemoteSettingsChanged)):
            self._pulse("_window")

    def _run_handler(self, handler: Handler, stream: PeerStream) -> None:
        try:
            handler(stream)
        except StreamGone:
            pass
        except gevent.GreenletExit:
            raise
        except BaseException as exc:
            self.handler_errors.append(exc)

    def _grant_window(self) -> None:
        """Top the client's windows up to their targets in WINDOW_UPDATEs of at most ``grant_step`` bytes."""
        h2conn, step = self.h2, self.peer.grant_step
        if self.closed or self.errors or not self.peer.grants:
            return
        target = max(self.peer.connection_window, 0)
        while (missing := target - h2conn.inbound_flow_control_window) > 0:
            h2conn.increment_flow_control_window(min(step, missing))
        stream_target = h2conn.local_settings.initial_window_size  # the acknowledged value
        for stream in self.streams.values():
            if stream.ended or stream.reset_code is not None or stream.reset_sent or stream.id not in h2conn.streams:
                continue
            window = h2conn.streams[stream.id].inbound_flow_control_window
            while (missing := stream_target - window) > 0:
                grant = min(step, missing)
                h2conn.increment_flow_control_window(grant, stream.id)
                window += grant

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self.streams.values():
            stream.messages.put(None)
        self._pulse("_window")
        self._pulse("_changed")
        with suppress(OSError):
            self.sock.close()

    def stop(self) -> None:
        gevent.killall([*self._handlers, self.reader], block=True, timeout=5)
        self._close()


def default_handler(stream: PeerStream) -> None:
    """Echo: headers, every request message back as it arrives, then status OK."""
    stream.send_headers()
    while (message := stream.recv()) is not None:
        stream.send_message(message)
    stream.send_trailers(0)


class H2Peer:
    """A listening h2 server on 127.0.0.1: one :class:`PeerConnection` per accepted connection."""

    def __init__(
        self,
        routes: Mapping[str, Handler] | None = None,
        *,
        receive_buffer: int | None = None,
        settings: Mapping[int, int] | None = None,
        grant_step: int = 16_384,
        connection_window: int = 65_535,
    ) -> None:
        self.routes = dict(routes or {})
        self.default_handler: Handler = default_handler
        #: Called by the reader after each DATA frame of a stream: ``on_data(connection, stream)``.
        self.on_data: Callable[[PeerConnection, PeerStream], None] | None = None
        self.settings = settings
        self.grant_step = grant_step
        #: False: the peer grants no window at all (a server that stopped reading).
        self.grants = True
        self.connection_window = connection_window
        self.connections: list[PeerConnection] = []
        self._accepted = Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # inherited by accepted sockets
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._acceptor = gevent.spawn(self._accept_loop)

    def _accept_loop(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections.append(PeerConnection(self, sock, len(self.connections)))
            event, self._accepted = self._accepted, Event()
            event.set()

    def connection(self, index: int = 0, timeout: float = 10.0) -> PeerConnection:
        """The ``index``-th accepted connection, waiting for it to be accepted."""
        with gevent.Timeout(timeout):
            while len(self.connections) <= index:
                self._accepted.wait()
        return self.connections[index]

    def problems(self) -> list[str]:
        """Every protocol error h2 raised on the client's frames, and every handler failure."""
        out = []
        for conn in self.connections:
            out += [f"connection {conn.index}: h2 raised {type(e).__name__}: {e}" for e in conn.errors]
            out += [f"connection {conn.index}: handler raised {type(e).__name__}: {e}" for e in conn.handler_errors]
        return out

    def stop(self) -> None:
        self._acceptor.kill(block=True, timeout=5)
        self.listener.close()
        for conn in self.connections:
            conn.stop()


@contextmanager
def running_peer(routes: Mapping[str, Handler] | None = None, **kwargs: Any) -> Iterator[H2Peer]:
    """An :class:`H2Peer`, stopped afterwards; fails the test if h2 rejected any frame of the client."""
    peer = H2Peer(routes, **kwargs)
    try:
        yield peer
    finally:
        peer.stop()
    assert not peer.problems(), peer.problems()


INITIAL_WINDOW_SIZE = int(SettingCodes.INITIAL_WINDOW_SIZE)
MAX_FRAME_SIZE = int(SettingCodes.MAX_FRAME_SIZE)
MAX_CONCURRENT_STREAMS = int(SettingCodes.MAX_CONCURRENT_STREAMS)
