"""Tallies of what the reference WebSocket server has seen, so tests can prove nothing was lost or doubled.

``stats`` and ``reset`` requests (and their replies) are not counted, so after a reset the counts equal
exactly what clients sent and were sent. ``connections_open`` is a live gauge that a reset keeps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["WsCounters"]


@dataclass
class WsCounters:
    """Everything counted since the last reset. Touched only from the event loop, so no locking."""

    connections_opened: int = 0
    connections_closed: int = 0
    received_text: int = 0
    received_binary: int = 0
    sent_text: int = 0
    sent_binary: int = 0
    #: error replies to bad input (malformed JSON, unknown type, bad field, oversize frame)
    errors: int = 0
    injected_delays: int = 0
    injected_errors: int = 0
    drops: int = 0
    #: rooms (``backends.ws_rooms``): publications, and what became of their deliveries
    published: int = 0
    deliveries_due: int = 0
    deliveries_sent: int = 0
    deliveries_dropped: int = 0
    deliveries_duplicated: int = 0
    deliveries_reordered: int = 0
    deliveries_held_expired: int = 0
    deliveries_undelivered: int = 0
    #: well-formed requests by their ``type``
    requests: Counter[str] = field(default_factory=Counter)
    #: connections opened, by the client's address (its IP, without the port): who connected from where
    peers: Counter[str] = field(default_factory=Counter)
    connections_open: int = field(default=0, metadata={"gauge": True})

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every tally."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["requests"] = dict(self.requests)
        values["peers"] = dict(self.peers)
        return values

    def reset(self) -> dict[str, Any]:
        """Zero every tally except the gauge; return what they were."""
        before = self.snapshot()
        for f in fields(self):
            if f.metadata.get("gauge"):
                continue
            if f.name in ("requests", "peers"):
                getattr(self, f.name).clear()
            else:
                setattr(self, f.name, 0)
        return before

    def connection_opened(self) -> None:
        self.connections_opened += 1
        self.connections_open += 1

    def peer_opened(self, address: str) -> None:
        """A connection from ``address`` (the client's IP) was opened."""
        self.peers[address] += 1

    def connection_closed(self) -> None:
        self.connections_closed += 1
        self.connections_open -= 1
