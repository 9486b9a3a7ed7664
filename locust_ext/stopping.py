"""Stopping users without cutting calls short.

Locust's ``User.stop`` kills a user it finds waiting (or any user when forced), and one that has just woken may
already be inside its next call when the kill lands. Users that record calls refuse new ones and wait for those in
flight first, so every call ends with its real outcome and Locust's counts match the server's.
"""

from __future__ import annotations

from gevent.event import Event
from locust import User
from locust.exception import StopUser
from locust.user.users import LOCUST_STATE_WAITING

__all__ = ["CallsInFlight", "stop_would_kill"]


def stop_would_kill(user: User, force: bool) -> bool:
    """Whether ``user.stop(force)`` kills the user's greenlet at once (Locust's own rule, in one place)."""
    return force or user._state in (None, LOCUST_STATE_WAITING)


class CallsInFlight:
    """Counts one user's calls in flight; once stopping, refuses new ones and lets a stopper wait for the rest."""

    def __init__(self) -> None:
        self._count = 0
        self._refusing = False
        #: Set when the last call ends after refusing began; untouched per call until then (it is on the hot path).
        self._none_left = Event()

    def starting(self) -> None:
        """A call is about to start; raises StopUser once the user is being stopped."""
        if self._refusing:
            raise StopUser()
        self._count += 1

    def ended(self) -> None:
        self._count -= 1
        if not self._count and self._refusing:
            self._none_left.set()

    def refuse_and_wait(self, grace_s: float) -> bool:
        """Refuse new calls and wait up to ``grace_s`` for those in flight; True if none is left."""
        self._refusing = True
        return not self._count or self._none_left.wait(grace_s)
