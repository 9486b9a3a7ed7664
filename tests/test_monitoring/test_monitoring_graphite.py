"""The monitoring path with real parts: mirror → StatsD daemon → carbon → graphite-web, read as the dashboards do.

Carbon (with monitoring/graphite/'s storage rules) and graphite-web's render API run on loopback (Debian's
graphite-carbon and graphite-web; tests/test_monitoring/graphite_support.py); the npm StatsD daemon runs with
monitoring/statsd/config.js, its ports and Graphite address pointed at them. A short distributed gRPC run and
a short distributed WebSocket run, side by side (master + 2 workers each, the mirror on in every process, a
thresholds gate on the master), drive the reference backends; then every target of every shipped dashboard,
with its template variables expanded the way the dashboard defines them, goes through
``/render?format=json`` and must return at least one data point. Grafana itself is not packaged here; what it
would ask Graphite is exactly this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import Backend, run_distributed
from tests.statsd_support import require_daemon, running_statsd_daemon
from tests.support import FOR_TESTS
from tests.test_monitoring.graphite_support import (
    Carbon,
    render,
    require_graphite,
    running_carbon,
    running_graphite_web,
)
from tests.test_monitoring.monitoring_support import DASHBOARDS, MONITORING, load_dashboard, targets

# Lenient enough to pass whatever this machine's latency; the grade gauges are what the gate is for here.
GATE = """\
grades: [excellent, good, acceptable]
live_interval: 0.5
rules:
  - name: /loadtest.v1.Hello/SayHello
    type: grpc
    response_time: {stat: p95, excellent: 1000, good: 5000, acceptable: 10000}
  - name: echo
    type: websocket
    response_time: {stat: p95, excellent: 1000, good: 5000, acceptable: 10000}
  - name: Aggregated
    error_rate: {acceptable: 100}
"""
RUN = ("--headless", "-u", "4", "-r", "4", "-t", "3s", "--exit-code-on-error", "0", "--skip-log-setup")
STATSD_CONFIG = json.loads((MONITORING / "statsd" / "config.js").read_text())
# Waiting for the last flushes to reach Graphite: a bound for a failing test, not an expected time.
SETTLE_S = 2 * STATSD_CONFIG["flushInterval"] / 1000 + 15

Target = tuple[str, str, str]  # dashboard file, panel title, Graphite expression


@pytest.fixture(scope="module")
def graphite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Carbon, str]]:
    require_graphite()
    require_daemon()
    root = tmp_path_factory.mktemp("graphite")
    with running_carbon(root / "carbon") as carbon, running_graphite_web(root / "web", carbon) as url:
        yield carbon, url


def has_points(series: list[dict[str, Any]]) -> bool:
    """Whether any series has a value (graphite-web pads the range with nulls)."""
    return any(value is not None for one in series for value, _ in one["datapoints"])


@pytest.fixture(scope="module")
def empty_targets(
    graphite: tuple[Carbon, str], grpc_backend: Backend, ws_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> set[Target]:
    """The dashboard targets still without a data point once the runs' metrics have settled in Graphite."""
    carbon, url = graphite
    folder = tmp_path_factory.mktemp("runs")
    gate = folder / "gate.yaml"
    gate.write_text(GATE)
    config = {**STATSD_CONFIG, "graphiteHost": "127.0.0.1", "graphitePort": carbon.line_port}
    runs = {
        FOR_TESTS / "statsd_grpc.py": {"GRPC_PROBE_TARGET": grpc_backend.address},
        FOR_TESTS / "monitoring_ws.py": {"WS_PROBE_URL": ws_backend.url},
    }
    todo = {
        (path.name, title, expression) for path in DASHBOARDS for title, expression in targets(load_dashboard(path))
    }
    with running_statsd_daemon(config, folder) as statsd_port:
        statsd = ("--statsd-host", "127.0.0.1", "--statsd-port", str(statsd_port))
        master = [*RUN, *statsd, "--thresholds", str(gate)]
        with ThreadPoolExecutor(len(runs)) as pool:  # both runs at once: each mostly waits on its run time
            results = pool.map(
                lambda run: run_distributed(run[0], master, worker_args=statsd, workers=2, env=run[1]), runs.items()
            )
            for done in results:
                assert done.returncode == 0, done.stderr[-3000:]
        deadline = time.monotonic() + SETTLE_S
        while todo and time.monotonic() < deadline:
            todo = {target for target in todo if not has_points(render(url, target[2]))}
            if todo:
                time.sleep(1)
    return todo


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_panel_target_returns_data_points(path: Path, empty_targets: set[Target]) -> None:
    board = load_dashboard(path)
    assert list(targets(board)), f"{path.name}: no targets"
    empty = sorted((title, expression) for name, title, expression in empty_targets if name == path.name)
    assert not empty, f"{path.name}: targets with no data points in Graphite: {empty}"


def test_a_target_nothing_sent_returns_no_data_points(graphite: tuple[Carbon, str], empty_targets: set[Target]) -> None:
    """The check above can fail: graphite-web answers a target with no metric behind it with no points."""
    _, url = graphite
    assert not has_points(render(url, "aliasByNode(stats.timers.locust.requests.nothing.*.response_time.mean, 5)"))
