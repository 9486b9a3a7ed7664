"""`make demo`: both reference backends up, a headless run of each example locustfile graded by thresholds.yaml,
reports in reports/, backends down, and a short summary. Exit code: 0 when both gates pass, else the worst one.
reports/<protocol>.html is Locust's own report with the thresholds verdict at its top (the gate rewrites it).

    python scripts/demo.py [--time 20s] [--users 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# backends/ is not installed (the distribution ships only locust_ext): run it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends import control

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
RUNS = {"grpc": "locustfiles/grpc.py", "websocket": "locustfiles/websocket.py"}


def run_locust(protocol: str, locustfile: str, run_time: str, users: int) -> int:
    """One headless run; its exit code is the thresholds gate's verdict."""
    stem = REPORTS / protocol
    command = [
        sys.executable, "-m", "locust", "-f", locustfile, "--headless",
        "-u", str(users), "-r", str(max(1, users // 2)), "-t", run_time, "--stop-timeout", "2", "--only-summary",
        "--html", f"{stem}.html", "--json-file", str(stem),
        "--thresholds", "thresholds.yaml",
        "--thresholds-report", f"{stem}-gate.json", "--thresholds-report", f"{stem}-gate.md",
    ]  # fmt: skip
    print(f"\n=== {protocol}: {' '.join(command[2:])}", flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def percentile(response_times: dict[str, int], total: int, fraction: float) -> float:
    """A percentile from Locust's histogram (bucket key → count), keeping sub-millisecond keys."""
    seen = 0
    for key in sorted(response_times, key=float):
        seen += response_times[key]
        if seen >= fraction * total:
            return float(key)
    return 0.0


def summary_rows(protocol: str) -> list[str]:
    entries: list[dict[str, Any]] = json.loads((REPORTS / f"{protocol}.json").read_text())
    rows = []
    for entry in sorted(entries, key=lambda e: (e["method"], e["name"])):
        total = entry["num_requests"]
        if not total:
            continue
        p50 = percentile(entry["response_times"], total, 0.5)
        p95 = percentile(entry["response_times"], total, 0.95)
        rows.append(
            f"  {entry['method'] + ' ' + entry['name']:<58} {total:>8} {entry['num_failures']:>7}"
            f" {p50:>9.3g} {p95:>9.3g}"
        )
    return rows


def gate_line(protocol: str) -> str:
    gate = json.loads((REPORTS / f"{protocol}-gate.json").read_text())
    counts = gate["summary"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    return f"  thresholds {verdict}: {counts['pass']} pass, {counts['fail']} fail, {counts['warn']} warn"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", default="20s", help="run time of each run (Locust syntax)")
    parser.add_argument("--users", type=int, default=20, help="users of each run")
    args = parser.parse_args(argv)
    REPORTS.mkdir(exist_ok=True)
    control.start(host="127.0.0.1", timeout=20.0)
    try:
        codes = {protocol: run_locust(protocol, path, args.time, args.users) for protocol, path in RUNS.items()}
    finally:
        control.stop(timeout=10.0)
    print("\n=== summary (response times in ms, from the sub-millisecond histogram)")
    print(f"  {'request':<58} {'requests':>8} {'fails':>7} {'p50':>9} {'p95':>9}")
    for protocol in RUNS:
        print("\n".join(summary_rows(protocol)))
        print(gate_line(protocol))
        print(
            f"  reports: reports/{protocol}.html (Locust's report with the verdict), reports/{protocol}-gate.md, "
            f"reports/{protocol}-gate.json, reports/{protocol}.json"
        )
    return max(codes.values())


if __name__ == "__main__":
    sys.exit(main())
