"""Rooms of the reference WebSocket server: membership, publication fan-out, and injected delivery faults.

A room is a name; a connection joins and leaves it. A publication to a room goes to every *other* member as
one ``message`` frame (publication id, room, publisher, the publisher's sequence number, wall-clock
``sent_at``, payload). Rooms live in one server process.

Delivery faults, each a share of deliveries in [0, 1] (server-wide by flags, per publication by its
``delivery_fault`` object; the three shares add up to at most 1, one dice roll per delivery picks at most one):

``drop``       the delivery is not sent
``duplicate``  the frame is sent twice in a row
``reorder``    the frame is held back until the same publisher's next delivery to the same member has been
               sent, then sent after it (so that member sees the publisher's sequence go backwards once);
               held longer than the hold time (``--delivery-reorder-hold-ms``) it is sent in order after all

What was done is counted in :class:`~backends.ws_counters.WsCounters` (``published``, ``deliveries_due``,
``deliveries_sent``, ``deliveries_dropped``, ``deliveries_duplicated``, ``deliveries_reordered``,
``deliveries_held_expired``, ``deliveries_undelivered``), so that
``sent = due - dropped - undelivered + duplicated`` and a client's lost / duplicate / out-of-order counts can
be checked against ``dropped + undelivered`` / ``duplicated`` / ``reordered``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.protocol import State

from backends.ws_counters import WsCounters
from backends.ws_fields import BadRequest, bounded_number

__all__ = ["DeliveryFaults", "Member", "Rooms", "check_room", "delivery_faults"]

MAX_ROOM_LENGTH = 200
_FAULT_KEYS = ("drop", "duplicate", "reorder")


@dataclass(frozen=True)
class DeliveryFaults:
    """Shares of deliveries dropped, duplicated and reordered (their sum at most 1)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def __post_init__(self) -> None:
        if self.drop + self.duplicate + self.reorder > 1.0 + 1e-9:
            raise BadRequest("delivery_fault: drop + duplicate + reorder must not exceed 1")

    @property
    def any(self) -> bool:
        return bool(self.drop or self.duplicate or self.reorder)


def delivery_faults(spec: object, defaults: DeliveryFaults) -> DeliveryFaults:
    """A publication's ``delivery_fault`` object (None when absent) over the server-wide shares."""
    if spec is None:
        return defaults
    if not isinstance(spec, dict):
        raise BadRequest(f"delivery_fault: expected an object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_FAULT_KEYS))
    if unknown:
        raise BadRequest(f"delivery_fault: unknown key {unknown[0]!r} (expected one of {', '.join(_FAULT_KEYS)})")
    shares = {
        key: bounded_number(f"delivery_fault.{key}", spec[key], 0.0, 1.0) if key in spec else getattr(defaults, key)
        for key in _FAULT_KEYS
    }
    return DeliveryFaults(**shares)


def check_room(request: dict[str, Any], kind: str) -> str:
    """The request's ``room``: a non-empty string of at most 200 characters."""
    room = request.get("room")
    if not isinstance(room, str) or not room or len(room) > MAX_ROOM_LENGTH:
        raise BadRequest(f"{kind}.room: {room!r} is not a non-empty string of at most {MAX_ROOM_LENGTH} characters")
    return room


class Member(Protocol):
    """What a room needs of a connection's session."""

    connection: ServerConnection
    name: str
    #: Deliveries held back for reordering, by publisher: (frame, timer).
    held: dict[str, tuple[str, asyncio.TimerHandle]]


@dataclass
class Rooms:
    """Every room of the process and its members, in join order."""

    counters: WsCounters
    faults: DeliveryFaults = DeliveryFaults()
    hold_s: float = 1.0
    members: dict[str, dict[Member, None]] = field(default_factory=dict)

    def join(self, room: str, member: Member) -> int:
        """Add ``member`` (joining twice changes nothing); returns the room's size."""
        members = self.members.setdefault(room, {})
        members[member] = None
        return len(members)

    def leave(self, room: str, member: Member) -> int:
        """Remove ``member`` (if it was in); returns the room's size."""
        members = self.members.get(room)
        if members is None:
            return 0
        members.pop(member, None)
        if not members:
            del self.members[room]
        return len(members)

    def leave_all(self, member: Member, rooms: Iterable[str]) -> None:
        """The connection closed: leave its rooms, and count what it still held back as undelivered."""
        for room in list(rooms):
            self.leave(room, member)
        for _, timer in member.held.values():
            timer.cancel()
            self.counters.deliveries_undelivered += 1
        member.held.clear()

    def publish(self, room: str, publisher: Member, frame: str, faults: DeliveryFaults) -> int:
        """Send ``frame`` (from publisher ``publisher.name``) to every other member; returns how many were due."""
        counters = self.counters
        recipients = [member for member in self.members.get(room, ()) if member is not publisher]
        counters.published += 1
        counters.deliveries_due += len(recipients)
        if not faults.any:
            plain = [member for member in recipients if not member.held.get(publisher.name)]
            self._send_many(plain)
            broadcast([member.connection for member in plain], frame)
            for member in recipients:
                if member.held.get(publisher.name):
                    self._deliver(member, publisher.name, frame, duplicate=False)
            return len(recipients)
        drop, duplicate, reorder = (
            faults.drop,
            faults.drop + faults.duplicate,
            sum((faults.drop, faults.duplicate, faults.reorder)),
        )
        for member in recipients:
            roll = random.random()
            if roll < drop:
                counters.deliveries_dropped += 1
            elif roll < duplicate:
                self._deliver(member, publisher.name, frame, duplicate=True)
            elif roll < reorder and publisher.name not in member.held:
                loop = asyncio.get_running_loop()
                timer = loop.call_later(self.hold_s, self._expire, member, publisher.name)
                member.held[publisher.name] = (frame, timer)
            else:
                self._deliver(member, publisher.name, frame, duplicate=False)
        return len(recipients)

    # Sending

    def _send_many(self, members: list[Member]) -> None:
        """Count the plain deliveries about to be broadcast (or undeliverable: the connection is closing)."""
        for member in members:
            if member.connection.state is State.OPEN:
                self.counters.deliveries_sent += 1
            else:
                self.counters.deliveries_undelivered += 1

    def _send(self, member: Member, frame: str) -> bool:
        if member.connection.state is not State.OPEN:
            self.counters.deliveries_undelivered += 1
            return False
        broadcast([member.connection], frame)
        self.counters.deliveries_sent += 1
        return True

    def _deliver(self, member: Member, publisher: str, frame: str, *, duplicate: bool) -> None:
        """Send a delivery (twice when duplicated), then what was held back from the same publisher."""
        if self._send(member, frame) and duplicate:
            broadcast([member.connection], frame)
            self.counters.deliveries_sent += 1
            self.counters.deliveries_duplicated += 1
        held = member.held.pop(publisher, None)
        if held is not None:
            held_frame, timer = held
            timer.cancel()
            if self._send(member, held_frame):
                self.counters.deliveries_reordered += 1

    def _expire(self, member: Member, publisher: str) -> None:
        """Held too long with no later delivery to overtake it: sent in order after all."""
        held = member.held.pop(publisher, None)
        if held is not None and self._send(member, held[0]):
            self.counters.deliveries_held_expired += 1
