"""The gRPC backend's traffic counters, in shared memory so every worker process books into one set.

The counted methods are fixed by the proto (every loadtest.v1 method except Admin), so the counters are a flat
array of int64: six fields per method, then the distinct-peer count, then a reset generation. One lock guards
the array. Each worker keeps the peers it has seen in a local set: a TCP connection lives in exactly one
process, so the per-process sets never overlap and their sizes add up. A reset bumps the generation; a worker
clears its local set the next time it books a call and sees a generation it has not seen.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from loadtest.v1 import loadtest_pb2 as pb

#: Field names, in array order; they mirror ``loadtest.v1.MethodCounters``.
FIELDS = ("received", "completed", "failed", "cancelled", "messages_sent", "messages_received")
RECEIVED, COMPLETED, FAILED, CANCELLED, MESSAGES_SENT, MESSAGES_RECEIVED = range(len(FIELDS))

#: Every counted method path, in array order.
METHODS = tuple(
    f"/{service.full_name}/{method.name}"
    for service in pb.DESCRIPTOR.services_by_name.values()
    if service.name != "Admin"
    for method in service.methods
)
_PEERS = len(METHODS) * len(FIELDS)
_GENERATION = _PEERS + 1


@dataclass(frozen=True)
class SharedBlock:
    """The shared int64 array and its lock; picklable into spawned worker processes."""

    values: Any  # a multiprocessing RawArray of c_int64
    lock: Any  # a multiprocessing Lock

    @classmethod
    def create(cls, context: BaseContext | None = None) -> SharedBlock:
        context = context or multiprocessing.get_context("spawn")
        return cls(context.RawArray("q", _GENERATION + 1), context.Lock())


class TrafficCounters:
    """One process's handle on the shared counters, plus the peers this process has seen since the last reset."""

    def __init__(self, block: SharedBlock) -> None:
        self._values = block.values
        self._lock = block.lock
        self._peers: set[str] = set()
        self._generation = -1

    @staticmethod
    def base(method: str) -> int:
        """Where ``method``'s fields start in the array (add RECEIVED, COMPLETED, ... to it)."""
        return METHODS.index(method) * len(FIELDS)

    def begin(self, base: int, peer: str) -> None:
        """Book a received call on the method at ``base`` from ``peer`` (a connection, e.g. ``ipv4:1.2.3.4:5``)."""
        values = self._values
        with self._lock:
            values[base + RECEIVED] += 1
            if values[_GENERATION] != self._generation:
                self._generation = values[_GENERATION]
                self._peers.clear()
            if peer not in self._peers:
                self._peers.add(peer)
                values[_PEERS] += 1

    def add(self, slot: int) -> None:
        """Add one to a single field (``base + COMPLETED``, ``base + MESSAGES_SENT``, ...)."""
        with self._lock:
            self._values[slot] += 1

    def snapshot(self) -> pb.Counters:
        with self._lock:
            return self._snapshot()

    def reset(self) -> pb.Counters:
        """Clear every tally in every process; return what they were."""
        with self._lock:
            before = self._snapshot()
            generation = self._values[_GENERATION]
            self._values[:_GENERATION] = [0] * _GENERATION
            self._values[_GENERATION] = generation + 1
        return before

    def _snapshot(self) -> pb.Counters:
        values = self._values
        reply = pb.Counters(distinct_peers=values[_PEERS])
        for index, method in enumerate(METHODS):
            fields = values[index * len(FIELDS) : (index + 1) * len(FIELDS)]
            if any(fields):
                reply.methods[method].CopyFrom(pb.MethodCounters(**dict(zip(FIELDS, fields, strict=True))))
        return reply
