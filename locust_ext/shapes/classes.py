"""LoadTestShape classes: k6-style stages, linear / exponential / stepped ramps, spike, wave and churn.

Configure a shape with class attributes in a locustfile (Locust instantiates it without arguments) or with
keyword arguments; both are checked when the shape is built::

    class Ramp(LinearRampShape):
        users = 100
        ramp_time = 60
        hold_time = 30

Every shape is a function ``users_at(t)`` of the run time; ``tick()`` turns it into Locust's
``(user_count, spawn_rate)``. Unless ``spawn_rate`` is set, the spawn rate is the change since the previous
one-second tick (at least 1/s), so each tick's target is reached before the next tick, and a jump
(spike, churn) happens within a second.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from locust import LoadTestShape

from locust_ext.stages import Stage, StageError, parse_duration, parse_stages, value_at

__all__ = [
    "SHAPES_BY_NAME",
    "ChurnShape",
    "ExponentialRampShape",
    "LinearRampShape",
    "ShapeError",
    "SpikeShape",
    "StagesShape",
    "SteppedRampShape",
    "SuiteShape",
    "WaveShape",
    "shape_from_options",
]

#: Locust's shape worker asks for a new tick about once a second.
TICK_SECONDS = 1.0


class ShapeError(StageError):
    """A load shape that cannot work (a bad stage list or duration in it too); the message names the value."""


@contextmanager
def _as_shape_error() -> Iterator[None]:
    """Stage-list and duration errors of :mod:`locust_ext.stages`, raised as this package's ShapeError."""
    try:
        yield
    except ShapeError:
        raise
    except StageError as exc:
        raise ShapeError(str(exc)) from None


def _count(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ShapeError(f"{what}: {text!r} is not a whole number") from None


def _fraction(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ShapeError(f"{what}: {text!r} is not a number") from None


#: How each kind of setting is read from text (``--shape name:key=value``): by the setting's kind.
_READERS: dict[str, Callable[[str, str], Any]] = {
    "count": _count,
    "seconds": parse_duration,
    "number": _fraction,
    "stages": parse_stages,
}


class SuiteShape(LoadTestShape):
    """Base of the suite's shapes: a user count as a function of run time, with settings checked at build.

    ``settings`` names each configurable attribute and its kind (``count``, ``seconds``, ``number``,
    ``stages``); keyword arguments override the class attributes of the same name.
    """

    abstract = True
    settings: ClassVar[dict[str, str]] = {}
    #: Users started or stopped per second on a change; None derives it from the shape (see module doc).
    spawn_rate: float | None = None
    _previous_tick: tuple[int, float] | None = None

    def __init__(self, **overrides: Any) -> None:
        super().__init__()
        for key, value in overrides.items():
            if key not in self.settings and key != "spawn_rate":
                known = ", ".join([*self.settings, "spawn_rate"])
                raise ShapeError(f"{type(self).__name__}: unknown setting {key!r} (known: {known})")
            setattr(self, key, value)
        for key in self.settings:
            if getattr(self, key, None) is None:
                raise ShapeError(f"{type(self).__name__}: {key} is not set")
        if self.spawn_rate is not None and not self.spawn_rate > 0:
            raise ShapeError(f"{type(self).__name__}: spawn_rate {self.spawn_rate} must be > 0")
        with _as_shape_error():
            self.check()

    @classmethod
    def from_text(cls, text: str, what: str) -> SuiteShape:
        """Build from ``key=value,key=value`` (durations as ``30s``/``1m``), as ``--shape`` gives it."""
        overrides: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                raise ShapeError(f"{what}: {item!r} is not key=value")
            if key == "spawn_rate":
                overrides[key] = _fraction(value, f"{what} spawn_rate")
            elif key in cls.settings:
                with _as_shape_error():
                    overrides[key] = _READERS[cls.settings[key]](value.strip(), f"{what} {key}")
            else:
                known = ", ".join([*cls.settings, "spawn_rate"])
                raise ShapeError(f"{what}: unknown key {key!r} (known: {known})")
        return cls(**overrides)

    def check(self) -> None:
        """Reject settings that cannot work; subclasses add their own rules."""
        for key, kind in self.settings.items():
            value = getattr(self, key)
            if kind in ("count", "seconds", "number") and value < 0:
                raise ShapeError(f"{type(self).__name__}: {key} {value} is negative")

    @abstractmethod
    def users_at(self, t: float) -> float | None:
        """Users wanted ``t`` seconds into the run; None when the shape has ended."""

    def tick_at(self, t: float) -> tuple[int, float] | None:
        """Locust's tick for run time ``t``: ``(user_count, spawn_rate)``, or None to end the run."""
        users = self.users_at(t)
        if users is None:
            return None
        count = round(users)
        if self.spawn_rate is not None:
            return count, float(self.spawn_rate)
        before = self.users_at(t - TICK_SECONDS) if t >= TICK_SECONDS else 0.0
        return count, max(1.0, float(abs(count - round(before or 0.0))))

    def tick(self) -> tuple[int, float] | None:
        """:meth:`tick_at` now; while the user count stays as the previous tick asked, that tick again.

        Locust restarts its ramp whenever a tick differs: a ramp's last users not spawned yet when the count
        levels off would otherwise be spawned at the level's 1/s (a local runner drops the unfinished ramp).
        """
        tick = self.tick_at(self.get_run_time())
        previous = self._previous_tick
        if tick is not None and previous is not None and tick[0] == previous[0]:
            return previous
        self._previous_tick = tick
        return tick

    def reset_time(self) -> None:
        self._previous_tick = None
        super().reset_time()


class StagesShape(SuiteShape):
    """k6-style stages from 0 users: ``"30s:100,1m:100,30s:0"`` or ``[(30, 100), (60, 100), (30, 0)]``."""

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    settings: ClassVar[dict[str, str]] = {"stages": "stages"}
    stages: str | Sequence[Stage] | Sequence[tuple[float, float]] | None = None

    def check(self) -> None:
        assert self.stages is not None
        self.parsed = parse_stages(self.stages, f"{type(self).__name__}.stages")

    def users_at(self, t: float) -> float | None:
        return value_at(self.parsed, t)


class _RampShape(SuiteShape):
    """A ramp from few users to ``users`` over ``ramp_time`` seconds, then ``hold_time`` seconds at ``users``."""

    abstract = True
    settings: ClassVar[dict[str, str]] = {"users": "count", "ramp_time": "seconds", "hold_time": "seconds"}
    users: int | None = None
    ramp_time: float | None = None
    hold_time: float = 0.0

    def users_at(self, t: float) -> float | None:
        assert self.users is not None and self.ramp_time is not None
        if t > self.ramp_time + self.hold_time:
            return None
        if t >= self.ramp_time:
            return float(self.users)
        return self.ramping(t / self.ramp_time)

    @abstractmethod
    def ramping(self, progress: float) -> float:
        """Users at ``progress`` (0 to 1, exclusive) of the ramp."""


class LinearRampShape(_RampShape):
    """Users grow in proportion to time: 0 at the start, ``users`` after ``ramp_time``."""

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    def ramping(self, progress: float) -> float:
        assert self.users is not None
        return self.users * progress


class ExponentialRampShape(_RampShape):
    """Users multiply by the same factor every second: 1 at the start, ``users`` after ``ramp_time``.

    Finds the knee of a system gently: most of the time is spent at low load, the last seconds climb fast.
    """

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    def check(self) -> None:
        super().check()
        assert self.users is not None
        if self.users < 1:
            raise ShapeError(f"{type(self).__name__}: users {self.users} must be >= 1 for an exponential ramp")

    def ramping(self, progress: float) -> float:
        assert self.users is not None
        return float(self.users) ** progress


class SteppedRampShape(_RampShape):
    """``steps`` equal steps of ``users / steps``, each held ``ramp_time / steps``; the first at the start."""

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    settings: ClassVar[dict[str, str]] = {**_RampShape.settings, "steps": "count"}
    steps: int = 5

    def check(self) -> None:
        super().check()
        if self.steps < 1:
            raise ShapeError(f"{type(self).__name__}: steps {self.steps} must be >= 1")

    def ramping(self, progress: float) -> float:
        assert self.users is not None
        return self.users * (math.floor(progress * self.steps) + 1) / self.steps


class SpikeShape(SuiteShape):
    """``base`` users, a jump to ``peak`` at ``spike_at`` for ``spike_time`` seconds, back to ``base`` until
    ``run_time``."""

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    settings: ClassVar[dict[str, str]] = {
        "base": "count",
        "peak": "count",
        "spike_at": "seconds",
        "spike_time": "seconds",
        "run_time": "seconds",
    }
    base: int | None = None
    peak: int | None = None
    spike_at: float | None = None
    spike_time: float | None = None
    run_time: float | None = None

    def check(self) -> None:
        super().check()
        assert self.spike_at is not None and self.spike_time is not None and self.run_time is not None
        if self.spike_at + self.spike_time > self.run_time:
            raise ShapeError(
                f"{type(self).__name__}: spike_at + spike_time ({self.spike_at + self.spike_time:g}s) "
                f"ends after run_time ({self.run_time:g}s)"
            )
        assert self.base is not None and self.peak is not None
        after = self.run_time - self.spike_at - self.spike_time
        self.parsed = [
            Stage(0, self.base),
            Stage(self.spike_at, self.base),
            Stage(0, self.peak),
            Stage(self.spike_time, self.peak),
            Stage(0, self.base),
            Stage(after, self.base),
        ]

    def users_at(self, t: float) -> float | None:
        return value_at(self.parsed, t)


class WaveShape(SuiteShape):
    """Connect/disconnect cycles: users swing smoothly from ``low`` up to ``high`` and back every ``period``
    seconds, ``cycles`` times."""

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    settings: ClassVar[dict[str, str]] = {"low": "count", "high": "count", "period": "seconds", "cycles": "count"}
    low: int = 0
    high: int | None = None
    period: float | None = None
    cycles: int = 1

    def check(self) -> None:
        super().check()
        assert self.high is not None and self.period is not None
        if self.high < self.low:
            raise ShapeError(f"{type(self).__name__}: high {self.high} is below low {self.low}")
        if self.period <= 0 or self.cycles < 1:
            raise ShapeError(f"{type(self).__name__}: period must be > 0 and cycles >= 1")

    def users_at(self, t: float) -> float | None:
        assert self.high is not None and self.period is not None
        if t > self.period * self.cycles:
            return None
        return self.low + (self.high - self.low) * (1 - math.cos(2 * math.pi * t / self.period)) / 2


class ChurnShape(SuiteShape):
    """Steady ``users``; every ``interval`` seconds a ``fraction`` of them leave and as many new ones join.

    The leavers are stopped first (break before make): for about ``CHURN_DIP_SECONDS`` the count is lower by
    ``round(users * fraction)``, then new users (new connections) bring it back. Runs for ``run_time``.
    """

    abstract = True  # only a locustfile's subclass is picked up by Locust as the run's shape

    #: Long enough that one of Locust's roughly one-second ticks always falls inside the dip.
    CHURN_DIP_SECONDS: ClassVar[float] = 1.5

    settings: ClassVar[dict[str, str]] = {
        "users": "count",
        "fraction": "number",
        "interval": "seconds",
        "run_time": "seconds",
    }
    users: int | None = None
    fraction: float = 0.1
    interval: float | None = None
    run_time: float | None = None

    def check(self) -> None:
        super().check()
        assert self.interval is not None
        if not 0 < self.fraction <= 1:
            raise ShapeError(f"{type(self).__name__}: fraction {self.fraction} must be in (0, 1]")
        if self.interval <= self.CHURN_DIP_SECONDS:
            name = type(self).__name__
            raise ShapeError(f"{name}: interval {self.interval:g}s must exceed {self.CHURN_DIP_SECONDS}s")

    @property
    def replaced(self) -> int:
        """Users replaced at each interval."""
        assert self.users is not None
        return round(self.users * self.fraction)

    def users_at(self, t: float) -> float | None:
        assert self.users is not None and self.interval is not None and self.run_time is not None
        if t > self.run_time:
            return None
        since_churn = t % self.interval
        if t >= self.interval and since_churn < self.CHURN_DIP_SECONDS:
            return float(self.users - self.replaced)
        return float(self.users)


#: ``--shape`` names.
SHAPES_BY_NAME: dict[str, type[SuiteShape]] = {
    "linear": LinearRampShape,
    "exponential": ExponentialRampShape,
    "stepped": SteppedRampShape,
    "spike": SpikeShape,
    "wave": WaveShape,
    "churn": ChurnShape,
}


def shape_from_options(stages: str, shape: str) -> SuiteShape | None:
    """The shape ``--stages``/``--shape`` describe, None when neither is given; raises ShapeError."""
    stages, shape = (stages or "").strip(), (shape or "").strip()
    if stages and shape:
        raise ShapeError("--stages and --shape: give one of them, not both")
    if stages:
        with _as_shape_error():
            return StagesShape(stages=parse_stages(stages, "--stages"))
    if not shape:
        return None
    name, _, settings = shape.partition(":")
    shape_class = SHAPES_BY_NAME.get(name.strip())
    if shape_class is None:
        raise ShapeError(f"--shape: unknown shape {name.strip()!r} (one of {', '.join(SHAPES_BY_NAME)})")
    return shape_class.from_text(settings, f"--shape {name.strip()}")
