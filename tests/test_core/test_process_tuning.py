"""Process tuning on workers started as users start them (only ``--worker --master-host``): Locust's default
arguments are built once, not once per option of every spawn message, and the cycle collector is tuned unless
``--gc-tuning off`` (which the master's spawn message carries)."""

from __future__ import annotations

from pathlib import Path

import pytest

from locust_ext.process_tuning import YOUNG_COLLECTION_EVERY
from locust_ext.testing import json_stats, run_distributed
from tests.support import FOR_TESTS

LOCUSTFILE = FOR_TESTS / "process_tuning.py"


@pytest.mark.parametrize(("flag", "young"), [("on", YOUNG_COLLECTION_EVERY), ("off", 700)])
def test_workers_build_the_defaults_once_and_tune_the_collector(flag: str, young: int, tmp_path: Path) -> None:
    stats = tmp_path / "stats"
    master = ["--headless", "-u", "4", "-r", "4", "-t", "4s", "--gc-tuning", flag, "--json-file", str(stats)]
    done = run_distributed(LOCUSTFILE, master, workers=2, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    names = {entry["name"] for entry in json_stats(stats)}
    assert f"gc young every {young}" in names and not {n for n in names if n.startswith("gc ")} - {
        f"gc young every {young}"
    }, names
    builds = {int(name.rsplit(" ", 1)[1]) for name in names if name.startswith("parser builds ")}
    # Without the cache a worker builds the parser once per option of the spawn message: ~100 (reported as 10).
    assert builds and max(builds) <= 2, names
