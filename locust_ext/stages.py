"""k6-style stage lists (``30s:100,1m:100,30s:0``): parsing, and the value they describe at a moment.

A stage says "move linearly from the previous target to this one over this duration"; a zero duration is
an instant jump. The same stage lists describe user counts (``--stages``, :mod:`locust_ext.shapes`) and
arrival rates (``--arrival-stages``, :mod:`locust_ext.iterations`), so both share this neutral module: one
parser and one interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from locust.util.timespan import parse_timespan

__all__ = ["Stage", "StageError", "parse_duration", "parse_stages", "stages_duration", "value_at"]


class StageError(ValueError):
    """A stage list or duration that cannot work; the message names the value and how to fix it."""


@dataclass(frozen=True)
class Stage:
    """Reach ``target`` linearly over ``duration`` seconds (0: jump to it at once)."""

    duration: float
    target: float


def parse_duration(text: str, what: str) -> float:
    """Seconds from ``20``, ``20s``, ``3m``, ``1h20m`` (Locust's own time span syntax)."""
    try:
        return float(parse_timespan(text.strip()))
    except ValueError:
        raise StageError(f"{what}: {text!r} is not a duration (use 20, 20s, 3m, 1h20m)") from None


def parse_stages(spec: str | Sequence[Stage] | Sequence[tuple[float, float]], what: str = "stages") -> list[Stage]:
    """Stages from ``"30s:100,1m:100,30s:0"`` or from ``(seconds, target)`` pairs; rejects empty or negative ones."""
    if isinstance(spec, str):
        pairs: list[tuple[float, float]] = []
        for item in spec.split(","):
            duration_text, sep, target_text = item.strip().partition(":")
            if not sep:
                raise StageError(f"{what}: {item.strip()!r} is not duration:target (e.g. 30s:100)")
            try:
                target = float(target_text)
            except ValueError:
                raise StageError(f"{what}: target {target_text!r} in {item.strip()!r} is not a number") from None
            pairs.append((parse_duration(duration_text, what), target))
    else:
        pairs = [(s.duration, s.target) if isinstance(s, Stage) else (float(s[0]), float(s[1])) for s in spec]
    if not pairs:
        raise StageError(f"{what}: no stages given (e.g. 30s:100,1m:100,30s:0)")
    for duration, target in pairs:
        if duration < 0 or target < 0:
            raise StageError(f"{what}: {duration:g}s:{target:g} is negative; durations and targets must be >= 0")
    return [Stage(duration, target) for duration, target in pairs]


def stages_duration(stages: Sequence[Stage]) -> float:
    """Seconds from the first stage's start to the last stage's end."""
    return sum(stage.duration for stage in stages)


def value_at(stages: Sequence[Stage], t: float, start: float = 0.0) -> float | None:
    """The value at ``t`` seconds, starting from ``start``; None once the last stage has ended."""
    if t < 0:
        return start
    previous = start
    elapsed = 0.0
    for stage in stages:
        if t < elapsed + stage.duration:
            return previous + (stage.target - previous) * (t - elapsed) / stage.duration
        elapsed += stage.duration
        previous = stage.target
    return previous if t <= elapsed else None
