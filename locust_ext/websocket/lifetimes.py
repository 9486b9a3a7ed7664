"""Connection lifetimes: one ``session`` event per connection that ends, graded against a floor.

Every connection that ends (closed by its user, or dropped) is recorded once on the derived request type
``websocket-session``, row ``session``, its response time the connection's lifetime in milliseconds: Locust's
table then shows the session duration's percentiles. The IM-gateway guide asks that sessions last: a connection
dropped before ``--session-floor`` seconds is a failure (``session: dropped before the 60 s floor``), so a
thresholds rule's ``error_rate`` on the row grades "sessions at least the floor" (a 5 % limit: the 95th
percentile of the sessions that failed to stay is above the floor). A connection its user closes is never a
failure: the run decided its length. The type is derived, so sessions stay out of Locust's totals.
"""

from __future__ import annotations

from locust_ext.derived import register_derived
from locust_ext.websocket.errors import WebSocketFailure

__all__ = ["SESSION", "SESSION_TYPE", "SessionFloor", "session_floor"]

#: Connection lifetimes; not operations, so kept out of Locust's total.
SESSION_TYPE = "websocket-session"
SESSION = "session"
register_derived(SESSION_TYPE)


class SessionFloor:
    """The shortest lifetime (seconds) a dropped connection may have without failing; 0: drops never fail it."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    def failure(self, lifetime_s: float, dropped: bool) -> WebSocketFailure | None:
        """The failure to record for a session of ``lifetime_s`` that ended by a drop or not; None: success."""
        if dropped and lifetime_s < self.seconds:
            return WebSocketFailure("session", f"dropped before the {self.seconds:g} s floor")
        return None


#: This process's floor (``--session-floor``).
session_floor = SessionFloor()
