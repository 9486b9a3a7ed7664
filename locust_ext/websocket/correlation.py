"""Which request each received message answers: the session's sans-I/O core (no socket, no greenlet, no clock).

The session hands the core what it sends and what it receives, as decoded messages; the core answers what to
complete, what to record and what is a push, like the ``websockets`` library's ``Protocol`` under its I/O:

- :meth:`Correlator.outgoing` encodes a request, giving it a unique ``id`` unless it has one or a ``match=``;
- :meth:`Correlator.expect` / :meth:`Correlator.expect_pong` register what a waiter waits for;
- :meth:`Correlator.deliver` says what a received message is: the waiter it answers (a match that raised is
  a :class:`MatchFailed`), a :class:`LateReply` to a request that gave up, or None (a push);
- :meth:`Correlator.give_up` forgets a waiter; an id-correlated request given up unanswered leaves its id
  (the newest :data:`ABANDONED_IDS_KEPT`), so that its late reply is recognised;
- :meth:`Correlator.drop` forgets everything when the connection ends and returns the waiters to fail.

Waiters are opaque to the core: any object, settled by the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from locust_ext.websocket.frames import OP_TEXT
from locust_ext.websocket.messages import Message, compact_json, encode

__all__ = ["ABANDONED_IDS_KEPT", "Correlator", "LateReply", "MatchFailed"]

#: Ids of given-up requests each connection remembers, newest kept, to recognise their late replies.
ABANDONED_IDS_KEPT = 4096

W = TypeVar("W")


class LateReply(NamedTuple):
    """The reply to an id-correlated request that already gave up; ``sent_at`` is when that request started."""

    sent_at: float


class MatchFailed(NamedTuple):
    """A request's ``match=`` raised on a message: its ``waiter`` fails with ``detail``."""

    waiter: Any
    detail: str


class Correlator(Generic[W]):
    """One connection's requests and pings awaiting replies, and the ids of requests that gave up."""

    __slots__ = ("_abandoned", "_by_id", "_ids", "_matchers", "_pongs")

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._by_id: dict[Any, W] = {}
        #: Ids of requests given up on this connection, oldest first, with when each was sent.
        self._abandoned: dict[Any, float] = {}
        self._matchers: list[tuple[Callable[[Message], bool], W]] = []
        self._pongs: dict[bytes, W] = {}

    def outgoing(self, message: Message, match: Callable[[Message], bool] | None) -> tuple[bytes, int, Any]:
        """The payload, opcode and correlation key (None with ``match``) of a request.

        Without ``match`` the message must be a dict: its own ``id``, or the next free one written into the JSON
        text only (the caller's dict is neither copied nor changed).
        """
        if match is not None:
            return (*encode(message), None)
        if not isinstance(message, dict):
            raise TypeError("request() of a non-dict message needs match= to recognise its reply")
        if "id" in message:
            key = message["id"]
            if key in self._by_id:
                raise ValueError(f"a request with id {key!r} is already waiting on this connection")
            return (*encode(message), key)
        key = next(self._ids)
        while key in self._by_id:  # a caller-chosen id took it
            key = next(self._ids)
        text = compact_json(message)
        return f'{text[:-1]}{"," if message else ""}"id":{key}}}'.encode(), OP_TEXT, key

    def next_token(self) -> bytes:
        """A fresh ping payload."""
        return str(next(self._ids)).encode()

    def expect(self, waiter: W, key: Any, match: Callable[[Message], bool] | None) -> None:
        """``waiter`` waits for the reply carrying ``key`` as its ``id``, or (key None) the one ``match`` picks."""
        if match is None:
            self._by_id[key] = waiter
        else:
            self._matchers.append((match, waiter))

    def expect_pong(self, token: bytes, waiter: W) -> None:
        self._pongs[token] = waiter

    def give_up(self, waiter: W, key: Any, sent_at: float) -> None:
        """Stop waiting; an id-correlated request given up unanswered leaves its id to recognise a late reply."""
        if key is not None:
            if self._by_id.get(key) is waiter:
                del self._by_id[key]
                self._abandoned[key] = sent_at
                if len(self._abandoned) > ABANDONED_IDS_KEPT:
                    del self._abandoned[next(iter(self._abandoned))]
            return
        for index, (_, waiting) in enumerate(self._matchers):
            if waiting is waiter:
                del self._matchers[index]
                return

    def give_up_pong(self, token: bytes) -> None:
        self._pongs.pop(token, None)

    def deliver(self, message: Message) -> W | LateReply | MatchFailed | None:
        """What a received message is: the waiter it answers (no longer waiting), a late reply, a failed match,
        or None: a push (nobody waits for it)."""
        if (self._by_id or self._abandoned) and isinstance(message, dict):
            key = message.get("id")
            try:
                waiter = self._by_id.pop(key, None)
                sent_at = None if waiter is not None else self._abandoned.pop(key, None)
            except TypeError:  # an unhashable id cannot be one of ours
                waiter = sent_at = None
            if waiter is not None:
                return waiter
            if sent_at is not None:
                return LateReply(sent_at)
        for index, (match, waiter) in enumerate(self._matchers):
            try:
                hit = match(message)
            except Exception as exc:
                del self._matchers[index]
                return MatchFailed(waiter, f"match raised {type(exc).__name__}")
            if hit:
                del self._matchers[index]
                return waiter
        return None

    def pong(self, payload: bytes) -> W | None:
        """The ping waiter a pong answers (no longer waiting), or None."""
        return self._pongs.pop(payload, None)

    def waiting(self) -> Iterator[W]:
        """Every waiter still waiting: requests by id, requests by match, pings."""
        yield from self._by_id.values()
        for _, waiter in self._matchers:
            yield waiter
        yield from self._pongs.values()

    @property
    def busy(self) -> bool:
        """Whether anything waits for a reply."""
        return bool(self._by_id or self._matchers or self._pongs)

    def drop(self) -> list[W]:
        """The connection ended: forget everything (ids given up too); returns the waiters to fail."""
        waiters = list(self.waiting())
        self._by_id.clear()
        self._abandoned.clear()
        self._matchers.clear()
        self._pongs.clear()
        return waiters
