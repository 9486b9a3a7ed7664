"""Stopping users without cutting calls short.

Locust's ``User.stop`` kills a user it finds waiting (or any user when forced), and one that has just woken may
already be inside its next call when the kill lands. Users that record calls refuse new ones and wait for those in
flight first, so every call ends with its real outcome and Locust's counts match the server's.
"""

from __future__ import annotations

from typing import ClassVar

from gevent.event import Event
from locust import User
from locust.exception import StopUser
from locust.user.users import LOCUST_STATE_WAITING

__all__ = ["CallsInFlight", "GracefulStopUser", "stop_would_kill"]


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

    @property
    def count(self) -> int:
        """Calls in flight now."""
        return self._count

    def ended(self) -> None:
        self._count -= 1
        if not self._count and self._refusing:
            self._none_left.set()

    def refuse_and_wait(self, grace_s: float) -> bool:
        """Refuse new calls and wait up to ``grace_s`` for those in flight; True if none is left."""
        self._refusing = True
        return not self._count or self._none_left.wait(grace_s)


class GracefulStopUser(User):
    """A user whose stop never kills it mid-call: a stop that would kill refuses new calls and first waits up
    to ``stop_grace`` for those in flight (recorded with their real outcome). Subclasses say where their calls
    are counted (:attr:`calls_in_flight`)."""

    abstract = True

    #: A stop that kills waits up to this long for calls in flight to finish (and be recorded with their real
    #: outcome) before the user is killed; new calls are refused meanwhile.
    stop_grace: ClassVar[float] = 5.0

    @property
    def calls_in_flight(self) -> CallsInFlight:
        """The counter of this user's calls in flight."""
        raise NotImplementedError

    def stop(self, force: bool = False) -> bool:
        """Stop like any Locust user, but never kill one in the middle of a call (see ``stop_grace``)."""
        if stop_would_kill(self, force):
            self.calls_in_flight.refuse_and_wait(self.stop_grace)
        return bool(super().stop(force))
