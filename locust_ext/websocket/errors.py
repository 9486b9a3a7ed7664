"""Exceptions of the WebSocket user: bad configuration, and the failures a request, connect or drop records.

Every failure message starts with its class and a colon (``timeout:``, ``disconnect:``, ``connect:``,
``error:``, ``late:``, ``cancelled:``), so Locust's failures table groups them and the StatsD mirror counts
them by that class. A failure that carries a code keeps it in the class: ``disconnect_1006: connection lost``
(a WebSocket close code), ``connect_403: upgrade rejected with HTTP 403`` (the upgrade's HTTP status).
"""

from __future__ import annotations

from locust.exception import RescheduleTask

__all__ = [
    "WebSocketConfigError",
    "WebSocketFailure",
    "WebSocketUserError",
    "close_failure",
]


class WebSocketUserError(Exception):
    """Base class of every exception this package raises."""


class WebSocketConfigError(WebSocketUserError, ValueError):
    """A WebSocketUser is configured in a way that cannot work (bad URL, unreadable TLS file, ...)."""


class WebSocketFailure(WebSocketUserError, RescheduleTask):
    """A failed operation, already recorded as a Locust failure, raised into the task.

    It is a Locust ``RescheduleTask``: left unhandled, it ends the task quietly instead of logging a traceback.
    ``kind`` says what went wrong (``timeout``, ``disconnect``, ``connect``, ``error``, ...); ``code`` is the
    close code or HTTP status when there is one. The message leads with ``error_class``, ``kind`` or
    ``kind_code``: one word, so the StatsD mirror's error classes keep the code.
    """

    def __init__(self, kind: str, detail: str, code: int | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.code = code
        self.error_class = kind if code is None else f"{kind}_{code}"
        super().__init__(f"{self.error_class}: {detail}")


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


def close_failure(code: int, reason: str = "") -> WebSocketFailure:
    """``disconnect_1001: going away``, or ``disconnect_4000: kicked`` with the server's reason (cut to 60
    characters); ``closed`` for a code without a known name or a reason."""
    return WebSocketFailure("disconnect", reason[:MAX_REASON_CHARS] or _CLOSE_NAMES.get(code, "closed"), code)
