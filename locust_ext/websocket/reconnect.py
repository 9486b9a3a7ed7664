"""When to try connecting again: exponential backoff with jitter and a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass

from locust_ext.websocket.errors import WebSocketConfigError

__all__ = ["ReconnectPolicy"]


@dataclass(frozen=True)
class ReconnectPolicy:
    """Delay before attempt ``n`` (0-based) after a drop or a failed connect.

    ``min(max_delay, initial_delay * multiplier ** n)``, less a random share of up to ``jitter`` of it, so
    thousands of connections dropped together do not all come back in the same instant.
    ``max_attempts`` None means retry for as long as the user runs.
    """

    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not self.initial_delay >= 0:
            raise WebSocketConfigError(f"ReconnectPolicy.initial_delay {self.initial_delay!r}: must be >= 0")
        if not self.multiplier >= 1:
            raise WebSocketConfigError(f"ReconnectPolicy.multiplier {self.multiplier!r}: must be >= 1")
        if not self.max_delay >= self.initial_delay:
            raise WebSocketConfigError(f"ReconnectPolicy.max_delay {self.max_delay!r}: must be >= initial_delay")
        if not 0 <= self.jitter <= 1:
            raise WebSocketConfigError(f"ReconnectPolicy.jitter {self.jitter!r}: must be within [0, 1]")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise WebSocketConfigError(f"ReconnectPolicy.max_attempts {self.max_attempts!r}: must be >= 1 or None")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (0 for the first retry)."""
        # The exponent is capped so a long outage cannot overflow the float.
        base = min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt, 64))
        return base * (1.0 - self.jitter * random.random())

    def gives_up(self, attempt: int) -> bool:
        """True once ``attempt`` retries have been made and no more are allowed."""
        return self.max_attempts is not None and attempt >= self.max_attempts
