"""Headless runs follow their shape: every shape runs at a small scale, all at once against one reference gRPC
backend, and the user count in each run's Locust stats history CSV stays within the shape's values around each
row's time (rows carry whole-second timestamps and the shape ticks about once a second) and visits the shape's
levels in order."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from locust_ext.shapes import SuiteShape, shape_from_options
from locust_ext.testing import Backend, locust_command, running_locust
from tests.support import FOR_TESTS

#: How far a history row may lag the shape (tick interval + spawn time + whole-second timestamps), and lead it.
LAG_S, LEAD_S = 3.0, 1.0
#: A level counts as visited by a row within one user of it: a row may be taken while the last spawn step
#: toward the level is still under way.
LEVEL_SLACK = 1
RUN_TIMEOUT_S = 90


@dataclass(frozen=True)
class Case:
    """A shape as ``--stages`` or ``--shape`` give it, and user counts its run must pass through in this order."""

    stages: str
    shape: str
    levels: tuple[int, ...]

    def build(self) -> SuiteShape:
        built = shape_from_options(self.stages, self.shape)
        assert built is not None
        return built

    def flags(self) -> list[str]:
        return ["--stages", self.stages] if self.stages else ["--shape", self.shape]


CASES = {
    "stages": Case("3s:6,3s:6,0s:2,3s:2", "", (6, 2)),
    "spike": Case("", "spike:base=2,peak=8,spike_at=3s,spike_time=3s,run_time=9s", (2, 8, 2)),
    "linear": Case("", "linear:users=6,ramp_time=4s,hold_time=3s", (3, 6)),
    "exponential": Case("", "exponential:users=8,ramp_time=3s,hold_time=4s", (2, 8)),
    "stepped": Case("", "stepped:users=6,ramp_time=6s,steps=2,hold_time=1s", (3, 6)),
    "wave": Case("", "wave:low=1,high=5,period=5s,cycles=2", (5, 1, 5)),
    "churn": Case("", "churn:users=6,fraction=0.5,interval=4s,run_time=8s", (6, 3, 6)),
}


@dataclass(frozen=True)
class Finished:
    """A finished run: its exit code, stderr and ``--csv`` prefix."""

    returncode: int
    stderr: str
    prefix: Path


@pytest.fixture(scope="module")
def finished_runs(grpc_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Finished]]:
    """Every case run headless at the same time (each a few seconds), so the module takes as long as the longest."""
    directory = tmp_path_factory.mktemp("shape_runs")
    with ExitStack() as stack:
        processes = {}
        for name, case in CASES.items():
            command = locust_command(
                FOR_TESTS / "shapes_grpc.py", "--headless", "--only-summary", "-H", grpc_backend.address
            )
            command += ["--stop-timeout", "2"]  # users leaving finish their call first
            command += ["--csv", str(directory / name), "--csv-full-history", *case.flags()]
            processes[name] = stack.enter_context(running_locust(command, env={"SHAPES_PACING_S": "0.1"}))
        finished = {}
        for name, process in processes.items():
            _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
            finished[name] = Finished(process.returncode, stderr, directory / name)
    yield finished


def history_user_counts(prefix: Path) -> list[tuple[float, int]]:
    """(seconds since the first row, users) of the Aggregated rows of ``<prefix>_stats_history.csv``."""
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    first = float(rows[0]["Timestamp"])
    return [(float(row["Timestamp"]) - first, int(row["User Count"])) for row in rows]


def wanted(shape: SuiteShape, t: float) -> int:
    """The shape's user count at ``t``: 0 before the start and after the end."""
    users = shape.users_at(t) if t >= 0 else None
    return round(users) if users is not None else 0


def expected_range(shape: SuiteShape, t: float) -> tuple[int, int]:
    counts = [wanted(shape, t - LAG_S + step / 10) for step in range(int((LAG_S + LEAD_S) * 10) + 1)]
    return min(counts), max(counts)


def visits_in_order(counts: list[int], levels: tuple[int, ...]) -> bool:
    """Whether ``counts`` come within LEVEL_SLACK of each level, one after the other."""
    position = 0
    for level in levels:
        position = next((i for i in range(position, len(counts)) if abs(counts[i] - level) <= LEVEL_SLACK), -1)
        if position < 0:
            return False
    return True


@pytest.mark.parametrize("name", list(CASES))
def test_headless_run_follows_the_shape(finished_runs: dict[str, Finished], name: str) -> None:
    run, case = finished_runs[name], CASES[name]
    # 1: GrpcUser may record a call of a leaving user as cut short; anything worse is a crash
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "Shape test stopping" in run.stderr  # the shape ended the run, nothing else did
    shape = case.build()
    history = history_user_counts(run.prefix)
    assert len(history) >= 6
    for t, users in history:
        low, high = expected_range(shape, t)
        assert low <= users <= high, (t, users, history)
    counts = [users for _, users in history]
    assert visits_in_order(counts, case.levels), (case.levels, history)
    assert max(counts) == max(wanted(shape, step / 10) for step in range(200))  # the peak itself is reached
