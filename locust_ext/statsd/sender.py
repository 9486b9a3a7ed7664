"""Batch StatsD lines into UDP datagrams and send them without ever blocking or raising in the caller.

Lines are joined with newlines into datagrams of at most :data:`MAX_DATAGRAM_BYTES` (fits one Ethernet
frame after IP/UDP headers), sent when the next line would not fit and whenever :meth:`flush` is called.
The socket is non-blocking: a full send buffer or an ICMP error drops that datagram and counts it.
"""

from __future__ import annotations

import logging
import socket

__all__ = ["MAX_DATAGRAM_BYTES", "DatagramBatcher", "StatsdAddressError", "resolve"]

MAX_DATAGRAM_BYTES = 1432

_log = logging.getLogger(__name__)


class StatsdAddressError(Exception):
    """The StatsD host does not resolve to an address we can send to."""


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """The (family, sockaddr) of ``host:port`` for UDP, looked up once so sends never wait on DNS."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise StatsdAddressError(f"StatsD host {host!r} port {port}: cannot resolve: {exc}") from exc
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


class DatagramBatcher:
    """Collects lines and sends them in as few datagrams as fit; send errors are counted, logged once."""

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int], *, max_bytes: int = MAX_DATAGRAM_BYTES):
        self.address = address
        self.max_bytes = max_bytes
        self.datagrams_sent = 0
        self.lines_dropped = 0
        self.send_errors = 0
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._lines: list[str] = []
        self._size = 0

    def add(self, line: str) -> None:
        """Queue one ASCII line; sends the pending datagram first when this line would not fit."""
        needed = len(line) + (1 if self._lines else 0)
        if self._size + needed > self.max_bytes:
            if len(line) > self.max_bytes:
                self.lines_dropped += 1
                return
            self.flush()
            needed = len(line)
        self._lines.append(line)
        self._size += needed

    def flush(self) -> None:
        """Send whatever is pending as one datagram."""
        if not self._lines:
            return
        payload = "\n".join(self._lines).encode("ascii")
        self._lines = []
        self._size = 0
        try:
            self._socket.sendto(payload, self.address)
            self.datagrams_sent += 1
        except OSError as exc:
            self.send_errors += 1
            if self.send_errors == 1:
                _log.warning("StatsD %s:%d: send failed, dropping metrics (logged once): %s", *self.address[:2], exc)

    def close(self) -> None:
        """Send what is pending and release the socket."""
        self.flush()
        self._socket.close()
