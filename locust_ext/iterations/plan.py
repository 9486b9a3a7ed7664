"""What the iteration flags ask for, checked once where the flags are given and sent as-is to the workers.

``--iteration-limit`` and the open model (``--arrival-rate`` / ``--arrival-stages``) are refused together
(exit 2 before load): the open model's count is set by its schedule and cap, and an exact limit on top of it
would have to count iterations whose users were stopped while waiting for their turn. Use
``--arrival-stages`` for a finite open-model run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from locust_ext.cli import exit_invalid
from locust_ext.stages import Stage, StageError, parse_stages

__all__ = ["IterationPlan"]


@dataclass(frozen=True)
class IterationPlan:
    """``limit`` iterations in all (0: no limit); the open model at a constant ``rate`` or along ``stages``."""

    limit: int = 0
    rate: float | None = None
    stages: tuple[Stage, ...] | None = None

    @property
    def open_model(self) -> bool:
        return self.rate is not None or self.stages is not None

    @property
    def active(self) -> bool:
        return bool(self.limit) or self.open_model

    def arrival_stages(self) -> tuple[list[Stage], float]:
        """The open model's rate as stages and the rate at their start (a constant rate is one endless stage)."""
        if self.rate is not None:
            return [Stage(math.inf, self.rate)], self.rate
        return list(self.stages or ()), 0.0

    @classmethod
    def from_options(cls, options: Any) -> IterationPlan:
        """The plan of ``--iteration-limit``/``--arrival-rate``/``--arrival-stages``; exits 2 on a bad value."""
        plan = cls(
            limit=_limit(str(getattr(options, "iteration_limit", "0"))),
            rate=_rate(str(getattr(options, "arrival_rate", ""))),
            stages=_stages(str(getattr(options, "arrival_stages", ""))),
        )
        if plan.rate is not None and plan.stages is not None:
            exit_invalid("--arrival-rate and --arrival-stages: give one of them, not both")
        if plan.limit and plan.open_model:
            exit_invalid(
                "--iteration-limit cannot be combined with --arrival-rate/--arrival-stages: the open model's "
                "schedule sets its iteration count (use --arrival-stages for a finite run)"
            )
        return plan

    def to_data(self) -> dict[str, Any]:
        """A message-safe form for the workers."""
        stages = [[stage.duration, stage.target] for stage in self.stages] if self.stages is not None else None
        return {"limit": self.limit, "rate": self.rate, "stages": stages}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> IterationPlan:
        stages = data["stages"]
        return cls(
            limit=int(data["limit"]),
            rate=data["rate"],
            stages=tuple(Stage(float(d), float(t)) for d, t in stages) if stages is not None else None,
        )


def _limit(text: str) -> int:
    try:
        value = int(text or "0")
    except ValueError:
        exit_invalid(f"--iteration-limit: {text!r} is not a whole number")
    if value < 0:
        exit_invalid(f"--iteration-limit: {value} is negative (0 turns the limit off)")
    return value


def _rate(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        exit_invalid(f"--arrival-rate: {text!r} is not a number")
    if not (value > 0 and math.isfinite(value)):
        exit_invalid(f"--arrival-rate: {text} must be a positive number of iterations per second")
    return value


def _stages(text: str) -> tuple[Stage, ...] | None:
    if not text:
        return None
    try:
        stages = parse_stages(text, "--arrival-stages")
    except StageError as exc:
        exit_invalid(str(exc))
    if not any(stage.target > 0 for stage in stages):
        exit_invalid(f"--arrival-stages: {text!r} never starts an iteration (every target is 0)")
    return tuple(stages)
