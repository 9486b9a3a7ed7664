"""WebSocket messages as the session sees them: encoding, the default names and correlation hooks.

A :data:`Message` is a decoded frame: the JSON value of a text frame (or its text when it is not JSON), the
bytes of a binary frame. The hooks here are the defaults of a user class's settings (``reply_error``,
``push_name``, ``sent_at``), written for the reference backend's protocol.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from locust_ext.websocket.frames import OP_BINARY, OP_TEXT

__all__ = [
    "Message",
    "compact_json",
    "decode",
    "default_name",
    "encode",
    "error_reply",
    "push_name",
    "sent_at_seconds",
    "type_is",
]

Message = Any  # a decoded frame: the JSON value of a text frame (or its str), the bytes of a binary frame


def error_reply(message: Message) -> str | None:
    """The error text of an ``{"type": "error", "error": ...}`` reply, as the reference backend sends it."""
    if isinstance(message, dict) and message.get("type") == "error":
        return str(message.get("error", "error reply"))
    return None


def push_name(message: Message) -> str:
    """``push <type>`` for a JSON object with a string ``type``; ``push text`` / ``push binary`` otherwise."""
    return f"push {default_name(message, 'binary' if isinstance(message, bytes) else 'text')}"


def sent_at_seconds(message: Message) -> float | None:
    """The ``sent_at`` Unix time (seconds) a JSON object carries, as the reference backend's stream messages do."""
    if isinstance(message, dict):
        sent_at = message.get("sent_at")
        if isinstance(sent_at, (int, float)) and not isinstance(sent_at, bool):
            return float(sent_at)
    return None


def default_name(message: Message, fallback: str) -> str:
    """A JSON object's string ``type``, else ``fallback``: the event name of a request, send or push."""
    if isinstance(message, dict) and isinstance(message.get("type"), str):
        return str(message["type"])
    return fallback


def type_is(kind: str) -> Callable[[Message], bool]:
    def predicate(message: Message) -> bool:
        return isinstance(message, dict) and message.get("type") == kind

    return predicate


#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call (a third of its cost).
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def encode(message: Message) -> tuple[bytes, int]:
    """The payload and opcode for a message: bytes go as binary, str as text, anything else as JSON text."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message), OP_BINARY
    if isinstance(message, str):
        return message.encode(), OP_TEXT
    return compact_json(message).encode(), OP_TEXT


def decode(opcode: int, data: bytes, decode_json: bool) -> Message:
    """A received message: bytes for a binary frame; for a text frame its JSON value, or the text itself.

    Raises ``UnicodeDecodeError`` for a text frame that is not UTF-8 (a protocol error).
    """
    if opcode == OP_BINARY:
        return data
    text = data.decode("utf-8")
    if decode_json:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to decode
            return text
    return text
