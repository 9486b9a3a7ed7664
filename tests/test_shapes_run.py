"""Headless runs follow their shape: the user count in Locust's stats history CSV stays within the shape's
values around each row's time (rows carry whole-second timestamps and the shape ticks about once a second)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from locust_ext.shapes import SuiteShape, shape_from_options
from locust_ext.testing import Backend, locust_command, run_locust
from tests.support import FOR_TESTS

#: How far a history row may lag the shape (tick interval + spawn time + whole-second timestamps), and lead it.
LAG_S, LEAD_S = 3.0, 1.0


def history_user_counts(prefix: Path) -> list[tuple[float, int]]:
    """(seconds since the first row, users) of the Aggregated rows of ``<prefix>_stats_history.csv``."""
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    first = float(rows[0]["Timestamp"])
    return [(float(row["Timestamp"]) - first, int(row["User Count"])) for row in rows]


def expected_range(shape: SuiteShape, t: float) -> tuple[int, int]:
    samples = [shape.users_at(t - LAG_S + step / 10) for step in range(int((LAG_S + LEAD_S) * 10) + 1)]
    counts = [round(users) if users is not None else 0 for users in samples]
    return min(counts), max(counts)


@pytest.mark.parametrize(
    ("stages", "shape_text"),
    [
        ("3s:6,3s:6,0s:2,3s:2", ""),
        ("", "spike:base=2,peak=8,spike_at=3s,spike_time=3s,run_time=9s"),
    ],
    ids=["stages", "spike"],
)
def test_headless_run_follows_the_shape(grpc_backend: Backend, tmp_path: Path, stages: str, shape_text: str) -> None:
    shape = shape_from_options(stages, shape_text)
    assert shape is not None
    prefix = tmp_path / "run"
    flags = ["--stages", stages] if stages else ["--shape", shape_text]
    command = locust_command(
        FOR_TESTS / "shapes_grpc.py", "--headless", "-H", grpc_backend.address, "--stop-timeout", "2"
    )
    command += ["--csv", str(prefix), "--csv-full-history"]  # users leaving finish their call first
    result = run_locust([*command, *flags], env={"SHAPES_PACING_S": "0.1"}, timeout=90)
    # 1: GrpcUser may record a call of a leaving user as cut short; anything worse is a crash
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Shape test stopping" in result.stderr  # the shape ended the run, nothing else did
    history = history_user_counts(prefix)
    assert len(history) >= 6
    for t, users in history:
        low, high = expected_range(shape, t)
        assert low <= users <= high, (t, users, history)
    counts = [users for _, users in history]
    top = max(round(wanted) for step in range(100) if (wanted := shape.users_at(step / 10)) is not None)
    assert max(counts) == top
    assert 2 in counts[counts.index(top) :]  # came back down after the peak
