"""Fault injection for the reference WebSocket server, chosen per message or for every message by flags.

A request may carry a ``fault`` object (every key optional; a per-message value overrides the flags):

``delay_ms``  number >= 0: wait this long before answering
``error``     string: answer with ``{"type": "error", "id": ..., "error": <string>}`` instead
``drop``      true: close the TCP connection without a close handshake (the client sees 1006)
``rate``      number in [0, 1], default 1: the chance that ``error`` / ``drop`` applies

Binary frames cannot carry a ``fault`` object; the flags apply to them as to text requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from backends.ws_fields import BadRequest, bounded_number

__all__ = ["DEFAULT_ERROR", "FaultDefaults", "FaultSpecError", "MessageFault", "decide"]

DEFAULT_ERROR = "injected fault"
MAX_DELAY_MS = 3_600_000.0
_KEYS = ("delay_ms", "error", "drop", "rate")


class FaultSpecError(BadRequest):
    """A ``fault`` object that cannot be understood; the request is answered with an error reply."""


@dataclass(frozen=True)
class FaultDefaults:
    """Server-wide faults set by flags; they apply to every counted request."""

    delay_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0


@dataclass(frozen=True)
class MessageFault:
    """What one request gets: a delay, then possibly a drop or an error reply instead of the answer."""

    delay_ms: float = 0.0
    drop: bool = False
    error: str | None = None


NO_FAULT = MessageFault()


def _happens(rate: float) -> bool:
    return rate > 0 and random.random() < rate


def decide(spec: object, defaults: FaultDefaults) -> MessageFault:
    """Turn a request's ``fault`` value (None when absent) and the flags into this request's fault (rolls dice)."""
    if spec is None:
        if not (defaults.delay_ms or defaults.error_rate or defaults.drop_rate):
            return NO_FAULT
        spec = {}
    if not isinstance(spec, dict):
        raise FaultSpecError(f"fault: expected an object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_KEYS))
    if unknown:
        raise FaultSpecError(f"fault: unknown key {unknown[0]!r} (expected one of {', '.join(_KEYS)})")

    delay_ms = (
        bounded_number("fault.delay_ms", spec["delay_ms"], 0.0, MAX_DELAY_MS)
        if "delay_ms" in spec
        else defaults.delay_ms
    )
    if "drop" in spec and not isinstance(spec["drop"], bool):
        raise FaultSpecError(f"fault.drop: {spec['drop']!r} is not true or false")
    if "error" in spec and not isinstance(spec["error"], str):
        raise FaultSpecError(f"fault.error: {spec['error']!r} is not a string")

    if "rate" in spec and not ("drop" in spec or "error" in spec):
        raise FaultSpecError("fault.rate: needs fault.error or fault.drop to apply to")
    if "drop" in spec or "error" in spec:
        rate = bounded_number("fault.rate", spec["rate"], 0.0, 1.0) if "rate" in spec else 1.0
        hit = _happens(rate)
        drop = hit and spec.get("drop", False)
        error = spec.get("error") if hit and not drop else None
    else:
        drop = _happens(defaults.drop_rate)
        error = DEFAULT_ERROR if not drop and _happens(defaults.error_rate) else None
    return MessageFault(delay_ms=delay_ms, drop=drop, error=error)
