"""One WebSocket connection of the reference server: read requests, answer them, count every frame.

Requests are JSON objects with ``type`` and ``id``; every reply carries the request's ``id``. ``join``,
``leave`` and ``publish`` use the rooms of ``backends.ws_rooms`` (deliveries carry no ``id``). Binary
frames are echoed as binary. Requests that wait (a stream, an injected delay) run on their own task, so a
quick request sent after them is answered first; all other requests are answered in arrival order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from backends import ws_faults
from backends.compute import MAX_HASH_ROUNDS, hash_rounds
from backends.ws_counters import WsCounters
from backends.ws_fields import BadRequest, bounded_number
from backends.ws_rooms import DeliveryFaults, Rooms, check_room, delivery_faults

__all__ = ["ADMIN_TYPES", "MAX_STREAM_COUNT", "MAX_STREAM_INTERVAL_MS", "REQUEST_TYPES", "ServerState", "Session"]

MAX_STREAM_COUNT = 1_000_000
MAX_STREAM_INTERVAL_MS = 60_000
#: Types that are served, faulted and counted; ``stats`` and ``reset`` are neither faulted nor counted.
REQUEST_TYPES = ("echo", "compute", "stream", "ping", "join", "leave", "publish")
ADMIN_TYPES = ("stats", "reset")


@dataclass
class ServerState:
    """What every connection shares: the counters, the flag faults and the size limit."""

    counters: WsCounters
    faults: ws_faults.FaultDefaults
    max_size: int
    rooms: Rooms | None = None

    def __post_init__(self) -> None:
        if self.rooms is None:
            self.rooms = Rooms(self.counters)


_session_numbers = itertools.count(1)


class Session:
    """Serves one connection until it closes; books it as opened and closed exactly once."""

    def __init__(self, connection: ServerConnection, state: ServerState) -> None:
        self.connection = connection
        self.state = state
        self.counters = state.counters
        self.waiting: set[asyncio.Task[None]] = set()
        #: The publisher name in this connection's publications: unique per server process and over time.
        self.name = f"{os.getpid()}-{next(_session_numbers)}"
        self.joined: set[str] = set()
        self.published = 0
        self.held: dict[str, tuple[str, asyncio.TimerHandle]] = {}

    async def run(self) -> None:
        self.counters.connection_opened()
        try:
            async for message in self.connection:
                await self.on_message(message)
        except ConnectionClosed:
            pass
        finally:
            for task in self.waiting:
                task.cancel()
            self.rooms.leave_all(self, self.joined)
            self.counters.connection_closed()

    # Dispatch

    async def on_message(self, message: str | bytes) -> None:
        limit = self.state.max_size
        if isinstance(message, bytes):
            self.counters.received_binary += 1
            if len(message) > limit:
                await self.send_error(f"binary message of {len(message)} bytes exceeds --max-size {limit}")
            else:
                fault = ws_faults.decide(None, self.state.faults)
                await self.serve(None, fault, lambda: self.send_binary(message))
            return
        # A str of n characters encodes to at most 4n UTF-8 bytes: only long texts need encoding to measure.
        size = len(message) if len(message) * 4 <= limit else len(message.encode())
        if size > limit:
            self.counters.received_text += 1
            await self.send_error(f"text message of {size} bytes exceeds --max-size {limit}")
            return
        try:
            request = json.loads(message)
        except (ValueError, RecursionError) as exc:
            self.counters.received_text += 1
            await self.send_error(f"malformed JSON: {exc}")
            return
        if isinstance(request, dict) and request.get("type") in ADMIN_TYPES and "id" in request:
            await self.answer_admin(request)
            return
        self.counters.received_text += 1
        try:
            kind = check_envelope(request)
            fault = ws_faults.decide(request.get("fault"), self.state.faults)
            respond = self.responder(kind, request, message)
        except BadRequest as exc:
            await self.send_error(str(exc), request)
            return
        self.counters.requests[kind] += 1
        await self.serve(request, fault, respond, waits=kind == "stream")

    def responder(self, kind: str, request: dict[str, Any], raw: str) -> Callable[[], Awaitable[None]]:
        """Check the request's fields now (so a bad one is answered at once); return what answers it."""
        if kind == "echo":
            return lambda: self.send_text(raw)
        if kind == "ping":
            if "ts" not in request:
                raise BadRequest("ping.ts: missing")
            reply = json.dumps({"type": "pong", "id": request["id"], "ts": request["ts"]})
            return lambda: self.send_text(reply)
        if kind in ("join", "leave", "publish"):
            return self.room_responder(kind, request)
        if kind == "compute":
            rounds = int(bounded_number("compute.n", request.get("n"), 0, MAX_HASH_ROUNDS, integer=True))
            seed = request.get("seed", "")
            if not isinstance(seed, str):
                raise BadRequest(f"compute.seed: {seed!r} is not a string")
            return lambda: self.send_compute(request["id"], rounds, seed)
        count = int(bounded_number("stream.count", request.get("count"), 0, MAX_STREAM_COUNT, integer=True))
        interval_ms = bounded_number("stream.interval_ms", request.get("interval_ms", 0), 0, MAX_STREAM_INTERVAL_MS)
        size = int(bounded_number("stream.size", request.get("size", 0), 0, self.state.max_size, integer=True))
        return lambda: self.send_stream(request["id"], count, interval_ms / 1000.0, size)

    @property
    def rooms(self) -> Rooms:
        assert self.state.rooms is not None
        return self.state.rooms

    def room_responder(self, kind: str, request: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        """``join`` / ``leave`` a room, or ``publish`` to it (fields checked now, the work done when answered)."""
        room = check_room(request, kind)
        if kind != "publish":
            return lambda: self.send_membership(kind, request["id"], room)
        faults = delivery_faults(request.get("delivery_fault"), self.rooms.faults)
        return lambda: self.send_publication(request["id"], room, request.get("payload"), faults)

    async def send_membership(self, kind: str, request_id: object, room: str) -> None:
        if kind == "join":
            self.joined.add(room)
            members = self.rooms.join(room, self)
        else:
            self.joined.discard(room)
            members = self.rooms.leave(room, self)
        reply = {"type": "joined" if kind == "join" else "left", "id": request_id, "room": room, "members": members}
        await self.send_text(json.dumps(reply))

    async def send_publication(self, request_id: object, room: str, payload: object, faults: DeliveryFaults) -> None:
        """Fan the message out to the room's other members, then acknowledge with its id and recipient count."""
        self.published += 1
        msg_id = f"{self.name}:{self.published}"
        sent_at = time.time()
        seq = self.published
        frame: dict[str, Any] = {"type": "message", "msg_id": msg_id, "room": room, "from": self.name, "seq": seq}
        frame.update(sent_at=sent_at, payload=payload)
        recipients = self.rooms.publish(room, self, json.dumps(frame), faults)
        ack: dict[str, Any] = {"type": "published", "id": request_id, "msg_id": msg_id, "room": room, "seq": seq}
        ack.update(recipients=recipients, sent_at=sent_at)
        await self.send_text(json.dumps(ack))

    async def serve(
        self,
        request: dict[str, Any] | None,
        fault: ws_faults.MessageFault,
        respond: Callable[[], Awaitable[None]],
        *,
        waits: bool = False,
    ) -> None:
        """Answer now, or on a task of its own when the answer waits (a stream, an injected delay)."""
        if not (waits or fault.delay_ms):
            await self.answer(request, fault, respond)
            return
        task = asyncio.create_task(self.answer(request, fault, respond))
        self.waiting.add(task)
        task.add_done_callback(self.waiting.discard)

    async def answer(
        self, request: dict[str, Any] | None, fault: ws_faults.MessageFault, respond: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            if fault.delay_ms:
                self.counters.injected_delays += 1
                await asyncio.sleep(fault.delay_ms / 1000.0)
            if fault.drop:
                self.counters.drops += 1
                self.connection.transport.abort()
            elif fault.error is not None:
                self.counters.injected_errors += 1
                await self.send_text(_error_reply(fault.error, request))
            else:
                await respond()
        except ConnectionClosed:
            pass

    async def answer_admin(self, request: dict[str, Any]) -> None:
        """``stats`` and ``reset``: answered with the tallies (before the reset), and not counted themselves."""
        tallies = self.counters.snapshot() if request["type"] == "stats" else self.counters.reset()
        await self.connection.send(json.dumps({"type": request["type"], "id": request["id"], **tallies}))

    # Replies (each counted once it is handed to the connection)

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)
        self.counters.sent_text += 1

    async def send_binary(self, data: bytes) -> None:
        await self.connection.send(data)
        self.counters.sent_binary += 1

    async def send_error(self, error: str, request: object = None) -> None:
        self.counters.errors += 1
        await self.send_text(_error_reply(error, request))

    async def send_compute(self, request_id: object, rounds: int, seed: str) -> None:
        result = hash_rounds(rounds, seed.encode()).hex()
        await self.send_text(json.dumps({"type": "compute", "id": request_id, "result": result}))

    async def send_stream(self, request_id: object, count: int, interval: float, size: int) -> None:
        """``count`` messages, ``interval`` seconds apart on a fixed schedule (no drift from send times)."""
        data = "x" * size
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(count):
            if seq and interval:
                await asyncio.sleep(max(0.0, started + seq * interval - loop.time()))
            message = {"type": "stream", "id": request_id, "seq": seq, "sent_at": time.time(), "data": data}
            await self.send_text(json.dumps(message))


def check_envelope(request: object) -> str:
    """The request's type, once it is an object with a known ``type`` and an ``id``."""
    if not isinstance(request, dict):
        raise BadRequest(f"a request must be a JSON object, not {type(request).__name__}")
    if "type" not in request:
        raise BadRequest("missing 'type'")
    if "id" not in request:
        raise BadRequest("missing 'id'")
    kind = request["type"]
    if kind not in REQUEST_TYPES:
        raise BadRequest(f"unknown type {kind!r} (expected one of {', '.join((*REQUEST_TYPES, *ADMIN_TYPES))})")
    return str(kind)


def _error_reply(error: str, request: object) -> str:
    """An error reply; it carries the request's ``id`` when the request had one."""
    reply: dict[str, Any] = {"type": "error"}
    if isinstance(request, dict) and "id" in request:
        reply["id"] = request["id"]
    reply["error"] = error
    return json.dumps(reply)
