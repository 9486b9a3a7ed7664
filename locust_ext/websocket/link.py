"""An open WebSocket connection after its handshake: whole frames out, buffered frames in, the socket's watcher.

websocket-client performs the opening handshake (TCP, TLS, HTTP upgrade, headers, subprotocols); from then on
the session speaks RFC 6455 frames through a :class:`Link`. A frame goes out in one non-blocking ``send``
whenever the kernel's buffer takes it whole, which it nearly always does; one ``recv`` hands every frame it
holds to a :class:`FrameReader`. websocket-client needs a ``recv`` per header and per payload, plus a blocking
wrapper around each, which made its frame layer the largest share of an echo round trip's cost.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections import deque
from typing import Any

import gevent
from gevent.hub import get_hub
from gevent.lock import Semaphore

from locust_ext.websocket.errors import os_error_text
from locust_ext.websocket.frames import Frame, FrameReader, ProtocolError, encode_frame

__all__ = ["CONTROL_SEND_TIMEOUT_S", "RECV_BYTES", "Link", "LinkClosed"]

#: Bytes asked of the socket per read: many small frames at once, and still below glibc's mmap threshold.
RECV_BYTES = 65536
#: How long a control frame (a close, a pong, a keepalive ping) may wait to leave.
CONTROL_SEND_TIMEOUT_S = 1.0


class LinkClosed(Exception):
    """The connection can carry no more frames; the message says why in a few words."""


class Link:
    """One connected socket speaking WebSocket frames; ``watcher`` is the hub's read watcher on it.

    Writers never interleave frames: a second writer waits for the first (bounded by its deadline). Reading
    is the session's business: it calls :meth:`receive` only when the socket is readable or :meth:`pending`.
    """

    __slots__ = ("_os_socket", "_writing", "broken", "frames", "inbox", "sock", "subprotocol", "tls", "watcher")

    def __init__(self, sock: Any, subprotocol: str | None) -> None:
        self.sock = sock
        self.subprotocol = subprotocol
        self.tls = isinstance(sock, ssl.SSLSocket)
        #: The non-blocking OS socket inside gevent's wrapper, for sends and reads that must never wait.
        self._os_socket = None if self.tls else sock._sock
        self.frames = FrameReader()
        #: Frames read but not dispatched yet, oldest first. They belong to the connection, not to the greenlet
        #: that read them: one killed or held up mid-dispatch leaves them for the next reader, in order.
        self.inbox: deque[Frame] = deque()
        #: Set once a broken frame arrived: the connection ends after the inbox is dispatched.
        self.broken: str | None = None
        self.watcher = get_hub().loop.io(sock.fileno(), 1)
        self._writing = Semaphore()

    def send(self, opcode: int, payload: bytes, deadline: float | None) -> None:
        """Send one frame whole by ``deadline`` (``time.perf_counter`` seconds; None: no limit).

        Raises :class:`LinkClosed` when the socket fails, and ``TimeoutError`` when the frame could not go in
        time; a frame cut in half leaves the stream unusable, so that also aborts the connection.
        """
        data = encode_frame(opcode, payload)
        writing = self._writing
        if self._os_socket is not None and not writing.locked():
            sent = self._send_now(data)
            if sent == len(data):
                return
            writing.acquire()  # free (nothing yielded since locked()): the rest goes before any other frame
            try:
                self._send_rest(memoryview(data)[sent:], deadline)
            finally:
                writing.release()
            return
        if not writing.acquire(timeout=None if deadline is None else max(0.0, deadline - time.perf_counter())):
            raise TimeoutError("another frame was still being sent")
        try:
            self._send_rest(data, deadline)
        finally:
            writing.release()

    def send_control(self, opcode: int, payload: bytes) -> None:
        """Send a close, pong or ping within :data:`CONTROL_SEND_TIMEOUT_S`; a link too broken to take it is
        left for the reader to record."""
        with contextlib.suppress(LinkClosed, TimeoutError):
            self.send(opcode, payload, time.perf_counter() + CONTROL_SEND_TIMEOUT_S)

    def send_soon(self, opcode: int, payload: bytes) -> None:
        """Send a control frame without waiting, so the hub itself may call it (a keepalive ping): at once when the
        socket takes it whole, which it nearly always does; otherwise on a greenlet, as :meth:`send_control`."""
        if self._os_socket is None or self._writing.locked():
            gevent.spawn(self.send_control, opcode, payload)
            return
        data = encode_frame(opcode, payload)
        try:
            sent = self._send_now(data)
        except LinkClosed:
            return
        if sent < len(data):
            self._writing.acquire(blocking=False)  # free (nothing yielded since locked()): the rest goes first
            gevent.spawn(self._send_control_rest, memoryview(data)[sent:])

    def _send_now(self, data: bytes) -> int:
        """With no frame half-sent (the caller checked): one non-blocking send of the whole frame, no waiting and
        no lock; how many bytes the socket took. A failed socket aborts the link and raises :class:`LinkClosed`."""
        try:
            return self._os_socket.send(data)  # type: ignore[union-attr]
        except BlockingIOError:
            return 0
        except OSError as exc:
            self.abort()  # the reader records the drop
            raise LinkClosed(os_error_text(exc)) from None

    def _send_control_rest(self, rest: memoryview) -> None:
        try:
            with contextlib.suppress(LinkClosed, TimeoutError):
                self._send_rest(rest, time.perf_counter() + CONTROL_SEND_TIMEOUT_S)
        finally:
            self._writing.release()

    @property
    def sending(self) -> bool:
        """Whether a frame is going out in parts (a writer holds the write lock, waiting for the socket)."""
        return self._writing.locked()

    def _send_rest(self, data: bytes | memoryview, deadline: float | None) -> None:
        """Send ``data`` (waiting for the socket as needed) while holding the write lock; abort when late."""
        try:
            if deadline is None:
                self.sock.sendall(data)
                return
            with gevent.Timeout(max(0.0, deadline - time.perf_counter()), False):
                self.sock.sendall(data)
                return
        except OSError as exc:
            self.abort()  # the reader records the drop
            raise LinkClosed(os_error_text(exc)) from None
        except BaseException:  # killed mid-frame: what follows would be read as the cut frame's payload
            self.abort()
            raise
        self.abort()
        raise TimeoutError("send did not finish in time")

    def receive(self, deadline: float | None = None) -> int:
        """One read; the messages and control frames it completes join :attr:`inbox`. Returns the bytes read.

        Raises :class:`LinkClosed` at the end of the stream. A broken frame sets :attr:`broken` (the frames
        before it stay in the inbox, to be dispatched first). A TLS read may wait for the rest of a record, at
        most until ``deadline``.
        """
        try:
            if self._os_socket is not None:
                data = self._os_socket.recv(RECV_BYTES)
            elif deadline is None:
                data = self.sock.recv(RECV_BYTES)
            else:
                data = b""
                with gevent.Timeout(max(0.0, deadline - time.perf_counter()), False):
                    data = self.sock.recv(RECV_BYTES)
                if not data and time.perf_counter() >= deadline:
                    return 0
        except (BlockingIOError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise LinkClosed(os_error_text(exc)) from None
        if not data:
            raise LinkClosed("end of stream")
        try:
            self.frames.feed(data, self.inbox)
        except ProtocolError as exc:
            self.broken = f"protocol error: {str(exc)[:60]}"
        return len(data)

    def has_input(self) -> bool:
        """Whether reading can go on without waiting for the socket: frames in the inbox, a broken frame to
        report, or TLS bytes already decrypted (the socket will not turn readable for those)."""
        return bool(self.inbox) or self.broken is not None or self.pending()

    def pending(self) -> bool:
        """TLS bytes already decrypted and waiting: the socket will not turn readable for them."""
        return self.tls and self.sock.pending() > 0

    def abort(self) -> None:
        """Cut the connection without a close frame; whoever reads next sees the end of the stream."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Release the watcher and the socket."""
        self.watcher.close()
        with contextlib.suppress(OSError):
            self.sock.close()
