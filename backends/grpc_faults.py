"""Fault injection for the reference gRPC server, chosen per call by metadata or for every call by flags.

Metadata keys (all optional; per-call values override the server's flags):

``x-fault-delay-ms``   float, sleep this long before answering
``x-fault-status``     status code name (``UNAVAILABLE``) or number to end the call with
``x-fault-rate``       float in [0, 1], chance that ``x-fault-status`` applies (default 1)
``x-fault-after``      int, streams only: pass this many messages, then fail with the status
                       (``ABORTED`` when no status is given)
``x-fault-message``    the status details text
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

DELAY_KEY = "x-fault-delay-ms"
STATUS_KEY = "x-fault-status"
RATE_KEY = "x-fault-rate"
AFTER_KEY = "x-fault-after"
MESSAGE_KEY = "x-fault-message"


class FaultSpecError(ValueError):
    """Fault metadata that cannot be understood; the call fails with INVALID_ARGUMENT."""


@dataclass(frozen=True)
class FaultDefaults:
    """Server-wide faults set by flags; apply to every counted call."""

    delay_ms: float = 0.0
    error_rate: float = 0.0
    status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class CallFault:
    """The faults one call gets: a delay, and possibly a status to end with (after N stream messages)."""

    delay_ms: float = 0.0
    status: grpc.StatusCode | None = None
    after_messages: int | None = None
    message: str = "injected fault"


def parse_status(text: str) -> grpc.StatusCode:
    """A status code from its name (any case) or its number; OK is not a fault."""
    text = text.strip()
    for code in grpc.StatusCode:
        number, name = code.value
        if text.upper() == name.upper().replace(" ", "_") or text == str(number) or text.upper() == code.name:
            if code is grpc.StatusCode.OK:
                break
            return code
    raise FaultSpecError(f"{STATUS_KEY}: {text!r} is not a non-OK gRPC status code name or number")


def _float_in(key: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{key}: {text!r} is not a number") from None
    if not low <= value <= high:
        raise FaultSpecError(f"{key}: {value} is outside [{low}, {high}]")
    return value


def decide(metadata: Iterable[tuple[str, str | bytes]], defaults: FaultDefaults) -> CallFault:
    """Turn a call's metadata and the server defaults into the faults this call gets (rolls the dice)."""
    given = {key: value for key, value in metadata if key.startswith("x-fault-") and isinstance(value, str)}
    delay_ms = defaults.delay_ms
    if DELAY_KEY in given:
        delay_ms = _float_in(DELAY_KEY, given[DELAY_KEY], 0.0, 3_600_000.0)

    after: int | None = None
    if AFTER_KEY in given:
        try:
            after = int(given[AFTER_KEY])
        except ValueError:
            raise FaultSpecError(f"{AFTER_KEY}: {given[AFTER_KEY]!r} is not an integer") from None
        if after < 0:
            raise FaultSpecError(f"{AFTER_KEY}: {after} is negative")

    if STATUS_KEY in given or after is not None:
        status = parse_status(given[STATUS_KEY]) if STATUS_KEY in given else grpc.StatusCode.ABORTED
        rate = _float_in(RATE_KEY, given[RATE_KEY], 0.0, 1.0) if RATE_KEY in given else 1.0
    else:
        status, rate = defaults.status, defaults.error_rate

    chosen = status if rate > 0 and random.random() < rate else None
    return CallFault(
        delay_ms=delay_ms,
        status=chosen,
        after_messages=after if chosen is not None else None,
        message=given.get(MESSAGE_KEY, "injected fault"),
    )
