"""The health sampler in this process, and the figures' arithmetic: no server, no assumption about speed (a
greenlet that blocks the hub for 200 ms makes a 50 ms timer at least 150 ms late on any machine)."""

from __future__ import annotations

import socket
import time
from collections import Counter

import gevent
import pytest

from locust_ext.generator import FIGURES, open_fd_count
from locust_ext.health import HealthSampler, totals
from locust_ext.health.sampler import percentile, slope_per_min

BLOCK_S = 0.2


def _block_hub(seconds: float) -> None:
    """Compute without yielding, as a CPU-bound task does."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def test_percentiles_of_a_histogram() -> None:
    histogram: Counter[float] = Counter({0.1: 98, 5.0: 1, 250.0: 1})
    assert percentile(histogram, 0.5) == 0.1
    assert percentile(histogram, 0.99) == 5.0
    assert percentile(histogram, 1.0) == 250.0
    assert percentile(Counter(), 0.5) is None


def test_memory_slope_is_in_kib_per_minute() -> None:
    samples = [(float(second), 100 * 2**20 + second * 1024) for second in range(120)]  # 1 KiB a second
    assert slope_per_min(samples) == pytest.approx(60.0)
    assert slope_per_min([(0.0, 5), (0.0, 7)]) == 0.0


def test_totals_take_the_worst_lag_and_add_up_memory() -> None:
    rows: list[dict[str, float | None]] = [
        {"hub_lag_p99": 2.0, "cpu": 40.0, "memory_rss": 100.0, "open_files": 10.0, "memory_growth_per_min": None},
        {"hub_lag_p99": 30.0, "cpu": 95.0, "memory_rss": 120.0, "open_files": 15.0, "memory_growth_per_min": 4.0},
    ]
    total = totals(rows)
    assert total == {
        "cpu": 95.0, "hub_lag_p99": 30.0, "memory_growth_per_min": 4.0, "memory_rss": 220.0, "open_files": 25.0,
    }  # fmt: skip


def test_a_blocked_hub_shows_as_lag_and_the_run_figures_are_every_gradable_one() -> None:
    sampler = HealthSampler()
    sampler.reset()  # a test starts
    sampler.start()
    try:
        gevent.sleep(0.2)
        _block_hub(BLOCK_S)
        gevent.sleep(0.2)
        report = sampler.report()
    finally:
        sampler.stop()
    assert set(report["run"]) == set(FIGURES)
    assert report["samples"] >= 2
    assert report["run"]["hub_lag_max"] >= (BLOCK_S - 0.05) * 1000
    assert report["live"]["hub_lag_max"] >= (BLOCK_S - 0.05) * 1000
    # A new interval starts with each report; the run keeps what it saw.
    again = sampler.report()
    assert again["live"]["hub_lag_max"] is None
    assert again["run"]["hub_lag_max"] == report["run"]["hub_lag_max"]


def test_open_files_count_this_process_descriptors_against_the_limit() -> None:
    sampler = HealthSampler()
    sampler.reset()  # a test starts
    before = open_fd_count()
    sockets = [socket.socket() for _ in range(20)]
    try:
        sampler.tick()
        report = sampler.report()
    finally:
        for sock in sockets:
            sock.close()
    assert report["live"]["open_files"] >= before + 20
    limit = report["live"]["open_files_limit"]
    assert report["live"]["open_files_share"] == pytest.approx(100 * report["live"]["open_files"] / limit)
    assert report["run"]["open_files"] >= before + 20


def test_greenlets_waiting_on_the_hub_are_counted() -> None:
    sampler = HealthSampler()
    sampler.reset()  # a test starts
    sleepers = [gevent.spawn(gevent.sleep, 30) for _ in range(50)]
    try:
        gevent.sleep(0)
        sampler.tick()
        assert sampler.greenlets >= 50
    finally:
        gevent.killall(sleepers)
    gevent.sleep(0)
    sampler.tick()
    assert sampler.greenlets <= sampler.greenlets_peak - 50


def test_stalls_outside_a_run_stay_out_of_the_run_figures() -> None:
    sampler = HealthSampler()
    sampler.start()
    try:
        gevent.sleep(0.1)
        _block_hub(BLOCK_S)  # start-up, before any test: no response time is measured
        gevent.sleep(0.1)
        sampler.reset()
        gevent.sleep(0.2)
        sampler.end_run()
        _block_hub(BLOCK_S)  # the stop's own work
        gevent.sleep(0.1)
        report = sampler.report()
    finally:
        sampler.stop()
    assert report["live"]["hub_lag_max"] >= (BLOCK_S - 0.05) * 1000
    assert report["samples"] >= 1
    assert report["run"]["hub_lag_max"] < report["live"]["hub_lag_max"]


def test_the_package_exports() -> None:
    import locust_ext.health

    assert set(locust_ext.health.__all__) == {"HealthMonitor", "HealthSampler", "totals"}
