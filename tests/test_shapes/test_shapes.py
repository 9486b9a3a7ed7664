"""Shapes tick by tick: each shape's (user_count, spawn_rate) at whole seconds of run time, and the checks
that reject bad settings and flags with a message naming the value."""

from __future__ import annotations

import pytest

from locust_ext.shapes import (
    ChurnShape,
    ExponentialRampShape,
    LinearRampShape,
    ShapeError,
    SpikeShape,
    StagesShape,
    SteppedRampShape,
    SuiteShape,
    WaveShape,
    parse_stages,
    shape_from_options,
)
from locust_ext.testing import locust_command, run_locust
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "shapes_grpc.py"


def counts(shape: SuiteShape, seconds: int) -> list[int | None]:
    """User count at t = 0, 1, ..., seconds; None where the shape has ended."""
    return [tick[0] if (tick := shape.tick_at(float(t))) else None for t in range(seconds + 1)]


def test_stages_interpolate_linearly_and_end_after_the_last_stage() -> None:
    shape = StagesShape(stages="4s:8,2s:8,0s:2,2s:2")
    assert counts(shape, 9) == [0, 2, 4, 6, 8, 8, 2, 2, 2, None]


def test_stage_spawn_rate_reaches_each_tick_target_before_the_next_tick() -> None:
    shape = StagesShape(stages="4s:8,2s:8,0s:2,2s:2")
    assert [tick[1] for t in range(9) if (tick := shape.tick_at(float(t)))] == [1, 2, 2, 2, 2, 1, 6, 1, 1]


def test_stages_from_pairs_match_the_text_form() -> None:
    assert parse_stages([(30, 100), (60, 100), (30, 0)]) == parse_stages("30s:100,1m:100,30s:0")


def test_linear_ramp_then_hold() -> None:
    assert counts(LinearRampShape(users=10, ramp_time=5, hold_time=2), 8) == [0, 2, 4, 6, 8, 10, 10, 10, None]


def test_exponential_ramp_multiplies_by_the_same_factor_each_second() -> None:
    shape = ExponentialRampShape(users=16, ramp_time=4, hold_time=1)
    assert counts(shape, 6) == [1, 2, 4, 8, 16, 16, None]


def test_stepped_ramp_holds_each_step() -> None:
    shape = SteppedRampShape(users=9, ramp_time=6, steps=3, hold_time=1)
    assert counts(shape, 8) == [3, 3, 6, 6, 9, 9, 9, 9, None]


def test_spike_jumps_up_and_back_within_one_tick() -> None:
    shape = SpikeShape(base=2, peak=12, spike_at=3, spike_time=2, run_time=7)
    assert counts(shape, 8) == [2, 2, 2, 12, 12, 2, 2, 2, None]
    assert shape.tick_at(0.0) == (2, 2.0)
    assert shape.tick_at(3.0) == (12, 10.0)
    assert shape.tick_at(5.0) == (2, 10.0)


def test_wave_swings_between_low_and_high_each_period() -> None:
    shape = WaveShape(low=2, high=10, period=4, cycles=2)
    assert counts(shape, 9) == [2, 6, 10, 6, 2, 6, 10, 6, 2, None]


def test_churn_dips_by_the_fraction_once_per_interval() -> None:
    shape = ChurnShape(users=10, fraction=0.3, interval=4, run_time=9)
    assert counts(shape, 10) == [10, 10, 10, 10, 7, 7, 10, 10, 7, 7, None]
    assert shape.tick_at(4.0) == (7, 3.0)
    assert shape.tick_at(6.0) == (10, 3.0)


def test_a_fixed_spawn_rate_wins_over_the_derived_one() -> None:
    assert LinearRampShape(users=10, ramp_time=5, spawn_rate=0.5).tick_at(2.0) == (4, 0.5)


def test_class_attributes_configure_a_locustfile_subclass() -> None:
    class Ramp(LinearRampShape):
        users = 6
        ramp_time = 3.0

    assert counts(Ramp(), 4) == [0, 2, 4, 6, None]
    assert Ramp.abstract is False  # Locust picks the subclass up; the library's classes stay abstract
    assert LinearRampShape.abstract is True


@pytest.mark.parametrize(
    ("stages", "shape", "message"),
    [
        ("30s:100,oops", "", "--stages: 'oops' is not duration:target"),
        ("30x:100", "", "--stages: '30x' is not a duration"),
        ("30s:many", "", "--stages: target 'many' in '30s:many' is not a number"),
        ("30s:-1", "", "--stages: 30s:-1 is negative"),
        ("30s:1", "linear:users=1,ramp_time=1", "give one of them, not both"),
        ("", "square:users=1", "--shape: unknown shape 'square'"),
        ("", "spike:base=1,peek=5", "--shape spike: unknown key 'peek'"),
        ("", "linear:users=ten,ramp_time=1", "--shape linear users: 'ten' is not a whole number"),
        ("", "linear:users=10", "LinearRampShape: ramp_time is not set"),
        ("", "spike:base=1,peak=5,spike_at=10s,spike_time=10s,run_time=15s", "ends after run_time (15s)"),
        ("", "churn:users=10,fraction=2,interval=10s,run_time=1m", "fraction 2.0 must be in (0, 1]"),
        ("", "wave:low=5,high=1,period=10s", "high 1 is below low 5"),
    ],
)
def test_bad_flags_are_rejected_with_the_value_named(stages: str, shape: str, message: str) -> None:
    with pytest.raises(ShapeError, match=None) as caught:
        shape_from_options(stages, shape)
    assert message in str(caught.value)


def test_flags_build_the_named_shape() -> None:
    built = shape_from_options("", "churn:users=10,fraction=0.2,interval=5s,run_time=1m")
    assert isinstance(built, ChurnShape)
    assert (built.users, built.fraction, built.interval, built.run_time) == (10, 0.2, 5.0, 60.0)
    assert shape_from_options("", "") is None


def test_a_bad_flag_exits_2_with_one_line_before_load() -> None:
    result = run_locust(locust_command(LOCUSTFILE, "--headless", "-H", "127.0.0.1:1", "--stages", "10s:5,1m"))
    assert result.returncode == 2
    assert "error: --stages: '1m' is not duration:target (e.g. 30s:100)" in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line.lower()] == [
        "error: --stages: '1m' is not duration:target (e.g. 30s:100)"
    ]
    assert "Shape test" not in result.stderr
