"""Chat rooms on the reference WebSocket backend: join, publish, receive; every delivery accounted for.

    make backends
    locust -f locustfiles/chat.py --headless -u 1000 -r 100 -t 1m --chat-scale 0.1

The message throughput test of an IM gateway: each user joins one of ``--chat-rooms`` rooms and publishes
``--chat-rate`` messages a second (default 10, the guide's 1,000 users x 10 messages/s) times ``--chat-scale``
(scale it to what this machine can drive); ``--chat-publishers`` is the share of users who publish (the others
only listen) and ``--chat-messages`` bounds how many each publisher sends (0: no bound). Rooms span workers: user
number n of every process joins ``room-<n mod rooms>``.

Every ``publish`` is a ``websocket`` request; every message it fans out to is a ``delivery`` event on the row
``deliver`` (arrival minus publication time, wall clocks), and what never arrives, arrives twice or out of
order is a ``lost:`` / ``duplicate:`` / ``out of order:`` failure there (see the README's "Delivery accounting").
Host defaults to ws://127.0.0.1:8080 (``--host`` or ``LOCUST_HOST`` override it).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import _unshadow  # noqa: F401  (first: this folder holds websocket.py, which would hide the library; see _unshadow.py)
from locust import constant, constant_throughput, events, task

from locust_ext import DeliveryTracking, WebSocketUser

DEFAULT_HOST = os.environ.get("LOADTEST_WS_HOST", "ws://127.0.0.1:8080")
_user_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _chat_arguments(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("chat", "locustfiles/chat.py")
    group.add_argument("--chat-rooms", type=int, default=100, env_var="CHAT_ROOMS", help="rooms (default 100)")
    group.add_argument(
        "--chat-rate", type=float, default=10.0, env_var="CHAT_RATE", help="messages/s per publisher (default 10)"
    )
    group.add_argument(
        "--chat-scale", type=float, default=1.0, env_var="CHAT_SCALE", help="multiplies --chat-rate (default 1)"
    )
    group.add_argument(
        "--chat-publishers", type=float, default=1.0, env_var="CHAT_PUBLISHERS", help="share of users publishing"
    )
    group.add_argument(
        "--chat-messages", type=int, default=0, env_var="CHAT_MESSAGES", help="messages per publisher (0: no bound)"
    )


def _option(user: WebSocketUser, name: str, default: Any) -> Any:
    options = user.environment.parsed_options
    return getattr(options, name, default) if options is not None else default


class ChatUser(WebSocketUser):
    """Joins a room, publishes at a steady rate if it is a publisher, receives what the others publish."""

    host = DEFAULT_HOST
    request_timeout = 10.0
    deliveries = DeliveryTracking(
        message_id=lambda m: m.get("msg_id") if isinstance(m, dict) and m.get("type") == "message" else None,
        sent_at=lambda m: m["sent_at"],
        name=lambda m: "deliver",
        publisher=lambda m: m["from"],
        sequence=lambda m: m["seq"],
    )

    def on_start(self) -> None:
        super().on_start()
        number = next(_user_numbers)
        self.room = f"room-{number % max(1, _option(self, 'chat_rooms', 100))}"
        share = _option(self, "chat_publishers", 1.0)
        every = max(1, round(1 / share)) if share > 0 else 0
        self.publisher = every > 0 and number % every == 0
        self.left = _option(self, "chat_messages", 0) or None
        rate = _option(self, "chat_rate", 10.0) * _option(self, "chat_scale", 1.0)
        self.pace = constant_throughput(rate) if self.publisher and rate > 0 else constant(1.0)
        self.ws.request({"type": "join", "room": self.room}, name="join")

    def wait_time(self) -> float:
        return float(self.pace(self))

    @task
    def publish(self) -> None:
        if not self.publisher or self.left == 0:
            return
        if self.left is not None:
            self.left -= 1
        ack = self.ws.request({"type": "publish", "room": self.room, "payload": "hi"}, name="publish")
        self.ws.expect_deliveries(ack["msg_id"], ack["recipients"], name="deliver")
