"""Exceptions of the WebSocket user: bad configuration, and the failures a request, connect or drop records.

Every failure message starts with its kind (``timeout:``, ``disconnect:``, ``connect:``, ``error:``,
``late:``, ``cancelled:``) so Locust's failures table groups them; the StatsD mirror counts them by that kind,
and keeps a close code that follows it (``disconnect: 1006 connection lost`` is class ``disconnect_1006``).
"""

from __future__ import annotations

import socket
import ssl
import struct

from locust.exception import RescheduleTask
from websocket import WebSocketAddressException, WebSocketBadStatusException

__all__ = [
    "WebSocketConfigError",
    "WebSocketFailure",
    "WebSocketUserError",
    "close_code_text",
    "close_detail",
    "connect_failure",
    "os_error_text",
]


class WebSocketUserError(Exception):
    """Base class of every exception this package raises."""


class WebSocketConfigError(WebSocketUserError, ValueError):
    """A WebSocketUser is configured in a way that cannot work (bad URL, unreadable TLS file, ...)."""


class WebSocketFailure(WebSocketUserError, RescheduleTask):
    """A failed operation, already recorded as a Locust failure, raised into the task.

    It is a Locust ``RescheduleTask``: left unhandled, it ends the task quietly instead of logging a traceback.
    ``kind`` is the first word of the message (``timeout``, ``disconnect``, ``connect``, ``error``, ...).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


_CLOSE_NAMES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "connection lost",
    1007: "invalid data",
    1008: "policy violation",
    1009: "message too big",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
}
#: Close reasons are cut to this length so one chatty server cannot explode the failures table.
MAX_REASON_CHARS = 60


def close_code_text(code: int, reason: str = "") -> str:
    """``"1001 going away"``, or ``"4000 kicked"`` with the server's reason (cut to 60 characters)."""
    text = reason[:MAX_REASON_CHARS] if reason else _CLOSE_NAMES.get(code, "")
    return f"{code} {text}".rstrip()


def os_error_text(exc: OSError) -> str:
    """A socket error in a few groupable words: its text without the errno (``Broken pipe``), else its class."""
    return exc.strerror or type(exc).__name__


def connect_failure(exc: BaseException) -> WebSocketFailure:
    """Name why a connection could not be opened, in a few groupable words."""
    if isinstance(exc, ConnectionRefusedError):
        detail = "refused"
    elif isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc):
        detail = "timeout"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        detail = f"TLS: certificate verify failed ({exc.verify_message})"
    elif isinstance(exc, ssl.SSLError):
        detail = f"TLS: {exc.reason or exc}"
    elif isinstance(exc, WebSocketBadStatusException):
        detail = f"upgrade rejected: HTTP {exc.status_code}"
    elif isinstance(exc, (WebSocketAddressException, socket.gaierror)):
        detail = "cannot resolve the host"
    elif isinstance(exc, OSError):
        detail = os_error_text(exc)
    else:
        detail = str(exc)[:80] or type(exc).__name__
    return WebSocketFailure("connect", detail)


def close_detail(data: bytes) -> str:
    """``"1001 going away"`` from a close frame's payload (1005 when it has no status)."""
    if len(data) < 2:
        return close_code_text(1005)
    (code,) = struct.unpack("!H", data[:2])
    return close_code_text(code, data[2:].decode("utf-8", "replace"))
