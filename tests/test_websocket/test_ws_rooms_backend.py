"""Rooms of the reference WebSocket backend over real loopback sockets: join, leave, publish, fan-out, and the
injected delivery faults with their counters."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from backends.kit import running_backend
from locust_ext.testing import Backend


def stats(backend: Backend, path: str = "/stats") -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{backend.address}{path}", timeout=5) as response:
        return dict(json.load(response))


def ask(client: ClientConnection, request: dict[str, Any]) -> dict[str, Any]:
    """Send a request; return its reply (deliveries that come first are skipped)."""
    client.send(json.dumps(request))
    while True:
        reply: dict[str, Any] = json.loads(client.recv(timeout=10))
        if reply.get("id") == request["id"]:
            return reply


def drain(client: ClientConnection, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Every message that arrives until ``quiet`` seconds pass without one."""
    got = []
    while True:
        try:
            got.append(json.loads(client.recv(timeout=quiet)))
        except TimeoutError:
            return got


@pytest.fixture
def clients(ws_backend: Backend) -> Iterator[list[ClientConnection]]:
    stats(ws_backend, "/stats/reset")
    with ExitStack() as stack:
        yield [stack.enter_context(connect(ws_backend.url)) for _ in range(4)]


def join_all(clients: list[ClientConnection], room: str) -> None:
    for index, client in enumerate(clients):
        reply = ask(client, {"type": "join", "id": 1, "room": room})
        assert reply["type"] == "joined" and reply["room"] == room and reply["members"] == index + 1


def test_publish_reaches_every_other_member_once(clients: list[ClientConnection], ws_backend: Backend) -> None:
    join_all(clients, "r1")
    publisher, *others = clients
    ack = ask(publisher, {"type": "publish", "id": 7, "room": "r1", "payload": {"text": "hi"}})
    assert ack["type"] == "published" and ack["recipients"] == 3 and ack["seq"] == 1
    for client in others:
        (message,) = drain(client)
        assert message["type"] == "message" and "id" not in message
        assert message["msg_id"] == ack["msg_id"] and message["room"] == "r1" and message["seq"] == 1
        assert message["payload"] == {"text": "hi"} and message["sent_at"] == ack["sent_at"]
        assert message["from"] == ack["msg_id"].split(":")[0]
    assert drain(publisher) == []
    tallies = stats(ws_backend)
    assert tallies["published"] == 1 and tallies["deliveries_due"] == 3 and tallies["deliveries_sent"] == 3
    assert tallies["requests"] == {"join": 4, "publish": 1}


def test_leave_and_close_remove_members(clients: list[ClientConnection], ws_backend: Backend) -> None:
    join_all(clients, "r2")
    assert ask(clients[1], {"type": "leave", "id": 2, "room": "r2"}) == {
        "type": "left",
        "id": 2,
        "room": "r2",
        "members": 3,
    }
    clients[2].close()
    deadline = time.monotonic() + 10
    while stats(ws_backend)["connections_open"] > 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    ack = ask(clients[0], {"type": "publish", "id": 3, "room": "r2", "payload": None})
    assert ack["recipients"] == 1
    assert [m["msg_id"] for m in drain(clients[3])] == [ack["msg_id"]]
    assert drain(clients[1]) == []


def test_bad_room_requests_are_error_replies(clients: list[ClientConnection]) -> None:
    assert ask(clients[0], {"type": "join", "id": 1, "room": ""})["type"] == "error"
    reply = ask(clients[0], {"type": "publish", "id": 2, "room": "r", "delivery_fault": {"drop": 0.7, "reorder": 0.5}})
    assert reply["type"] == "error" and "must not exceed 1" in reply["error"]
    reply = ask(clients[0], {"type": "publish", "id": 3, "room": "r", "delivery_fault": {"lose": 1}})
    assert reply["type"] == "error" and "unknown key 'lose'" in reply["error"]


def test_injected_faults_match_the_counters(clients: list[ClientConnection], ws_backend: Backend) -> None:
    """Per-publication drop / duplicate / reorder shares: what the members see equals what the server counted."""
    join_all(clients, "r3")
    publisher, *members = clients
    fault = {"drop": 0.2, "duplicate": 0.2, "reorder": 0.2}
    acks = [
        ask(publisher, {"type": "publish", "id": n, "room": "r3", "payload": n, "delivery_fault": fault})
        for n in range(200)
    ]
    # One last clean publication releases what is still held back (out of order, as the counters say).
    acks.append(ask(publisher, {"type": "publish", "id": 999, "room": "r3", "payload": 0}))
    arrived = lost = duplicates = out_of_order = 0
    for member in members:
        messages = drain(member, quiet=1.5)
        seen: Counter[str] = Counter(m["msg_id"] for m in messages)
        arrived += len(seen)
        duplicates += sum(count - 1 for count in seen.values())
        top = 0
        for message in messages:
            if seen[message["msg_id"]] == -1:
                continue
            seen[message["msg_id"]] = -1  # the first copy only
            if message["seq"] < top:
                out_of_order += 1
            top = max(top, message["seq"])
        lost += len(acks) - sum(1 for count in seen.values() if count == -1)
    tallies = stats(ws_backend)
    assert tallies["published"] == len(acks) and tallies["deliveries_due"] == 3 * len(acks)
    assert lost == tallies["deliveries_dropped"] > 0
    assert duplicates == tallies["deliveries_duplicated"] > 0
    assert out_of_order == tallies["deliveries_reordered"] > 0
    assert tallies["deliveries_undelivered"] == 0
    due, sent = tallies["deliveries_due"], tallies["deliveries_sent"]
    assert sent == due - tallies["deliveries_dropped"] + tallies["deliveries_duplicated"]


def test_server_wide_reorder_flag_and_hold_expiry() -> None:
    """A held delivery with no later one to overtake it is sent in order after the hold time."""
    flags = ["--delivery-reorder-rate", "1", "--delivery-reorder-hold-ms", "100"]
    with ExitStack() as stack:
        backend = stack.enter_context(running_backend("websocket", flags))
        publisher, member = (stack.enter_context(connect(backend.url)) for _ in range(2))
        ask(member, {"type": "join", "id": 1, "room": "x"})
        first = ask(publisher, {"type": "publish", "id": 2, "room": "x"})
        (message,) = drain(member, quiet=1.0)
        assert message["msg_id"] == first["msg_id"]
        tallies = stats(backend)
        assert tallies["deliveries_held_expired"] == 1 and tallies["deliveries_reordered"] == 0
        assert tallies["deliveries_sent"] == 1
