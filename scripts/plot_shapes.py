"""Draw one picture per load shape — users and requests/s over time — from real headless runs.

    python scripts/plot_shapes.py                  # runs every shape (about a minute), writes docs/shapes/*.png
    python scripts/plot_shapes.py --only spike     # one shape
    python scripts/plot_shapes.py --from-csv DIR   # redraw from the <name>_stats_history.csv files in DIR

Each shape runs, scaled down to about 30 s, in its own locust process against the reference gRPC backend
(started here on a free loopback port, stopped at the end); the pictures come from Locust's stats history
CSV. Needs the ``dev`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from backends.kit import running_backend  # noqa: E402

LOCUSTFILE = REPO_ROOT / "tests" / "locustfiles_for_tests" / "shapes_grpc.py"
#: Each user calls at most twice a second, so seven runs side by side stay light for a small machine.
PACING_S = "0.5"


@dataclass(frozen=True)
class ShapeRun:
    """One picture: the flags that give the shape, and a title saying what it is."""

    name: str
    flags: tuple[str, ...]
    title: str


RUNS = (
    ShapeRun("stages", ("--stages", "8s:20,8s:20,0s:8,8s:8,6s:0"), "--stages 8s:20,8s:20,0s:8,8s:8,6s:0"),
    ShapeRun("linear", ("--shape", "linear:users=20,ramp_time=20s,hold_time=10s"), "linear ramp to 20 in 20 s"),
    ShapeRun(
        "exponential",
        ("--shape", "exponential:users=32,ramp_time=20s,hold_time=10s"),
        "exponential ramp to 32 in 20 s",
    ),
    ShapeRun(
        "stepped", ("--shape", "stepped:users=20,ramp_time=20s,steps=4,hold_time=10s"), "stepped ramp: 4 steps to 20"
    ),
    ShapeRun(
        "spike",
        ("--shape", "spike:base=5,peak=30,spike_at=10s,spike_time=8s,run_time=30s"),
        "spike: 5 -> 30 users for 8 s",
    ),
    ShapeRun("wave", ("--shape", "wave:low=2,high=20,period=15s,cycles=2"), "wave: 2..20 users, 15 s period"),
    ShapeRun(
        "churn",
        ("--shape", "churn:users=20,fraction=0.25,interval=6s,run_time=30s"),
        "churn: 20 users, 5 replaced every 6 s",
    ),
    ShapeRun(
        "open-model",
        ("-u", "20", "-r", "20", "--arrival-stages", "10s:30,10s:30,10s:0"),
        "open model: --arrival-stages 10s:30,10s:30,10s:0 (20 users)",
    ),
)


def run_shapes(runs: list[ShapeRun], csv_dir: Path) -> None:
    """Run every shape side by side against one reference backend; stats history CSVs land in ``csv_dir``."""
    with running_backend("grpc") as backend:
        processes = []
        for run in runs:
            command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", backend.address]
            command += ["--stop-timeout", "3", "--csv", str(csv_dir / run.name), "--csv-full-history", "-t", "60s"]
            env = {**os.environ, "SHAPES_PACING_S": PACING_S}
            processes.append(
                subprocess.Popen(
                    [*command, *run.flags], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            )
        try:
            for run, process in zip(runs, processes, strict=True):
                _, stderr = process.communicate(timeout=120)
                if process.returncode not in (0, 1):  # 1: some requests failed, still a valid picture
                    raise SystemExit(f"{run.name}: locust exited {process.returncode}: {stderr.decode()[-500:]}")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()


def read_history(path: Path) -> tuple[list[float], list[int], list[float]]:
    """(seconds since the first row, users, requests/s) from the Aggregated rows of a stats history CSV.

    Requests/s is the growth of the total request count between rows, not Locust's ``Requests/s`` column
    (a rolling average over several seconds, which would blur a spike).
    """
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    if len(rows) < 2:
        raise SystemExit(f"{path}: fewer than two Aggregated rows")
    times = [float(row["Timestamp"]) for row in rows]
    totals = [int(row["Total Request Count"]) for row in rows]
    rates = [0.0] + [
        (totals[i] - totals[i - 1]) / (times[i] - times[i - 1]) if times[i] > times[i - 1] else 0.0
        for i in range(1, len(rows))
    ]
    return [t - times[0] for t in times], [int(row["User Count"]) for row in rows], rates


def draw(run: ShapeRun, history: Path, out_dir: Path) -> Path:
    """Users (left axis) and requests/s (right axis) over time, as ``<out_dir>/<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, users, rps = read_history(history)
    figure, users_axis = plt.subplots(figsize=(7, 3.2), dpi=100)
    users_axis.step(seconds, users, where="post", color="tab:blue", label="users")
    users_axis.set_xlabel("seconds")
    users_axis.set_ylabel("users", color="tab:blue")
    users_axis.set_ylim(bottom=0)
    rps_axis = users_axis.twinx()
    rps_axis.plot(seconds, rps, color="tab:orange", label="requests/s")
    rps_axis.set_ylabel("requests/s", color="tab:orange")
    rps_axis.set_ylim(bottom=0)
    users_axis.set_title(run.title, fontsize=10)
    users_axis.grid(alpha=0.3)
    figure.tight_layout()
    target = out_dir / f"{run.name}.png"
    figure.savefig(target)
    plt.close(figure)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[run.name for run in RUNS], help="draw only these")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "shapes", help="where the PNGs go")
    parser.add_argument("--from-csv", type=Path, help="redraw from existing stats history CSVs in this folder")
    args = parser.parse_args(argv)
    runs = [run for run in RUNS if not args.only or run.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        csv_dir = args.from_csv or Path(scratch)
        if args.from_csv is None:
            run_shapes(runs, csv_dir)
        for run in runs:
            print(draw(run, csv_dir / f"{run.name}_stats_history.csv", args.out))


if __name__ == "__main__":
    main()
