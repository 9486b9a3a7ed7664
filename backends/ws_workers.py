"""``--workers N`` for the WebSocket backend: N processes on one port, their counters summed exactly in shared memory.

The processes are started, announced and stopped by :func:`backends.grpc_workers.run_workers` (SO_REUSEPORT
among themselves, one READY line once all listen). Each process books into its own row of one shared int64
array (one writer per row, so no lock on the hot path); ``/stats`` in any process sums every row, so the
tallies, ``connections_open`` and the per-address ``peers`` are those of the whole server. A reset (from any
process) records every row's values as its new baseline, under a lock among resetters, and a snapshot
subtracts it; the gauge keeps no baseline. Rooms are per process: a publication reaches the members
connected to the same process only (clients that share rooms should come through one worker, ``--workers 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from multiprocessing.context import BaseContext
from typing import Any

from backends import websocket_server
from backends.grpc_workers import claim_port, run_workers
from backends.ws_counters import WsCounters
from backends.ws_session import REQUEST_TYPES
from locust_ext.testing import announce_ready

__all__ = ["SharedWsBlock", "SharedWsCounters", "default_workers", "serve"]

#: The integer tallies, in row order (every WsCounters field but the two tables).
INT_FIELDS = tuple(f.name for f in fields(WsCounters) if f.name not in ("requests", "peers"))
_GAUGES = frozenset(f.name for f in fields(WsCounters) if f.metadata.get("gauge"))
#: Request kinds have fixed slots; anything else is booked as "other".
_KINDS = (*REQUEST_TYPES, "other")
#: Client addresses each process tells apart (IPv4, and ::1); more than this are booked under "other".
PEER_SLOTS = 64
_KIND_BASE = len(INT_FIELDS)
_PEER_BASE = _KIND_BASE + len(_KINDS)
ROW = _PEER_BASE + 2 * PEER_SLOTS
_IPV6_LOOPBACK_KEY = 1 << 33
_OTHER_PEER_KEY = 1 << 34


@dataclass(frozen=True)
class SharedWsBlock:
    """Rows of values and baselines (one pair per worker) and the resetters' lock; picklable into workers."""

    values: Any  # a RawArray of c_int64, workers * ROW
    baselines: Any  # a RawArray of c_int64, workers * ROW
    lock: Any
    workers: int
    claimed: Any  # a RawValue: rows handed out so far

    @classmethod
    def create(cls, workers: int, context: BaseContext | None = None) -> SharedWsBlock:
        context = context or multiprocessing.get_context("spawn")
        size = workers * ROW
        return cls(
            context.RawArray("q", size), context.RawArray("q", size), context.Lock(), workers, context.RawValue("q", 0)
        )

    def claim_row(self) -> int:
        """The next free row, for a worker starting up."""
        with self.lock:
            index = int(self.claimed.value)
            if index >= self.workers:
                raise RuntimeError("more workers than rows")
            self.claimed.value = index + 1
        return index


def _peer_key(address: str) -> int:
    try:
        parsed = ipaddress.ip_address(address.removeprefix("::ffff:"))
    except ValueError:
        return _OTHER_PEER_KEY
    if parsed.version == 4:
        return int(parsed) + 1
    return _IPV6_LOOPBACK_KEY if parsed == ipaddress.IPv6Address("::1") else _OTHER_PEER_KEY


def _peer_text(key: int) -> str:
    if key == _IPV6_LOOPBACK_KEY:
        return "::1"
    if key == _OTHER_PEER_KEY:
        return "other"
    return str(ipaddress.IPv4Address(key - 1))


class _Slots:
    """``table[kind] += 1`` over fixed slots of this process's row (request kinds)."""

    def __init__(self, row: Any, base: int) -> None:
        self._row, self._base = row, base

    def _slot(self, kind: str) -> int:
        return self._base + (_KINDS.index(kind) if kind in _KINDS else len(_KINDS) - 1)

    def __getitem__(self, kind: str) -> int:
        return int(self._row[self._slot(kind)])

    def __setitem__(self, kind: str, value: int) -> None:
        self._row[self._slot(kind)] = value


class _PeerSlots:
    """``peers[address] += 1`` over this process's peer slots (address key, count) pairs."""

    def __init__(self, row: Any, base: int) -> None:
        self._row, self._base = row, base
        self._index: dict[int, int] = {}

    def _slot(self, address: str) -> int:
        key = _peer_key(address)
        slot = self._index.get(key)
        if slot is None:
            row = self._row
            for pair in range(PEER_SLOTS):
                at = self._base + 2 * pair
                if row[at] in (0, key) or pair == PEER_SLOTS - 1:
                    if row[at] == 0:
                        row[at] = key if pair < PEER_SLOTS - 1 else _OTHER_PEER_KEY
                    slot = at + 1
                    break
            assert slot is not None
            self._index[key] = slot
        return slot

    def __getitem__(self, address: str) -> int:
        return int(self._row[self._slot(address)])

    def __setitem__(self, address: str, value: int) -> None:
        self._row[self._slot(address)] = value


class SharedWsCounters(WsCounters):
    """This worker's handle: it books into a row of its own; :meth:`snapshot` and :meth:`reset` see every row."""

    def __init__(self, block: SharedWsBlock) -> None:  # no dataclass fields: they live in the block
        self._block = block
        offset = block.claim_row() * ROW
        self._row = memoryview(block.values).cast("B").cast("q")[offset : offset + ROW]
        self.requests = _Slots(self._row, _KIND_BASE)  # type: ignore[assignment]
        self.peers = _PeerSlots(self._row, _PEER_BASE)  # type: ignore[assignment]

    def _rows(self) -> Iterator[tuple[Any, Any]]:
        values, baselines = self._block.values, self._block.baselines
        for index in range(self._block.workers):
            yield values[index * ROW : (index + 1) * ROW], baselines[index * ROW : (index + 1) * ROW]

    def snapshot(self) -> dict[str, Any]:
        """Every process's tallies summed (less the last reset's baselines), as :meth:`WsCounters.snapshot`."""
        totals = dict.fromkeys(INT_FIELDS, 0)
        requests: dict[str, int] = {}
        peers: dict[str, int] = {}
        for row, base in self._rows():
            for at, name in enumerate(INT_FIELDS):
                totals[name] += row[at] - (0 if name in _GAUGES else base[at])
            for at, kind in enumerate(_KINDS, _KIND_BASE):
                if row[at] - base[at]:
                    requests[kind] = requests.get(kind, 0) + row[at] - base[at]
            for at in range(_PEER_BASE, ROW, 2):
                if row[at] and row[at + 1] - base[at + 1]:
                    text = _peer_text(row[at])
                    peers[text] = peers.get(text, 0) + row[at + 1] - base[at + 1]
        ordered: dict[str, Any] = {f.name: totals.get(f.name) for f in fields(WsCounters)}
        ordered["requests"], ordered["peers"] = requests, peers
        return ordered

    def reset(self) -> dict[str, Any]:
        """Every process's tallies start again from zero (the gauge stays); returns what they were."""
        gauges = [at for at, name in enumerate(INT_FIELDS) if name in _GAUGES]
        with self._block.lock:
            before = self.snapshot()
            values, baselines = self._block.values, self._block.baselines
            for index in range(self._block.workers):
                start = index * ROW
                row = values[start : start + ROW]
                for at in gauges:
                    row[at] = 0
                baselines[start : start + ROW] = row
        return before


def _int_property(at: int) -> property:
    def get(self: SharedWsCounters) -> int:
        return int(self._row[at])

    def put(self: SharedWsCounters, value: int) -> None:
        self._row[at] = value

    return property(get, put)


for _at, _name in enumerate(INT_FIELDS):
    setattr(SharedWsCounters, _name, _int_property(_at))


def default_workers(cpus: int | None, connections: int, files_per_process: int) -> int:
    """Workers enough for ``connections`` at ``files_per_process`` each (less a reserve), at least the CPUs."""
    per_process = max(1, files_per_process - 200)
    return max(cpus or 1, -(-connections // per_process))


def _stop_when_orphaned() -> None:
    """SIGTERM this worker once its supervisor is gone (killed without the chance to stop its workers)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


def _serve_one(
    args: argparse.Namespace, port: int, block: SharedWsBlock, share_port: bool, on_ready: Callable[[], None]
) -> None:
    """One worker process: the single-process server on the shared port, booking into the shared block."""
    _stop_when_orphaned()
    mine = argparse.Namespace(**{**vars(args), "port": port})
    asyncio.run(websocket_server.run(mine, SharedWsCounters(block), on_ready=lambda _port: on_ready()))


def serve(args: argparse.Namespace, *, tls: bool) -> None:
    """Run ``args.workers`` server processes on one port; one READY line once all listen; stop all on a signal."""
    port = claim_port(args.host, args.port)
    block = SharedWsBlock.create(args.workers)
    announce = lambda: announce_ready("wss" if tls else "ws", args.host, port)  # noqa: E731
    run_workers(_serve_one, args, port, block, announce)  # type: ignore[arg-type]
