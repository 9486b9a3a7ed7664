"""monitoring/ checked statically: compose, Kubernetes manifests, Graphite/StatsD config, Grafana dashboards.

Every Graphite target of every panel must match a metric the mirror really emits: a headless run of the
test locustfiles against both reference backends, graded by a small thresholds file, is captured over UDP,
and each captured name is mapped through the StatsD daemon's default (legacy) namespacing before matching
with Graphite glob rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from locust_ext.testing import Backend, run_distributed
from tests.statsd_support import udp_capture
from tests.support import FOR_TESTS, REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
# Aggregates the StatsD daemon flushes per timer with percentThreshold [90, 99] (monitoring/statsd/config.js).
TIMER_AGGREGATES = ["count", "count_ps", "lower", "mean", "median", "std", "sum", "sum_squares", "upper"] + [
    f"{name}_{pct}" for pct in (90, 99) for name in ("count", "mean", "sum", "sum_squares", "upper")
]
# Lenient enough to pass whatever this machine's latency; the grade gauges are what the run is for.
GATE = """\
grades: [excellent, good, acceptable]
live_interval: 0.5
rules:
  - name: /loadtest.v1.Hello/SayHello
    type: grpc
    response_time: {stat: p95, excellent: 1000, good: 5000, acceptable: 10000}
  - name: Aggregated
    error_rate: {acceptable: 100}
"""
SERIES = re.compile(r"stats(?:_counts)?\.(?:[A-Za-z0-9_\-*?\[\]]|\{[^}]*\}|\.)+")


def graphite_names(name: str, kind: str) -> list[str]:
    """Where the StatsD daemon stores one metric in Graphite (legacy namespace, the daemon's default)."""
    if kind == "ms":
        return [f"stats.timers.{name}.{aggregate}" for aggregate in TIMER_AGGREGATES]
    if kind == "c":
        return [f"stats.{name}", f"stats_counts.{name}"]
    return [f"stats.gauges.{name}"]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Graphite glob: ``*`` and ``?`` stay within one path segment, ``[...]`` classes, ``{a,b}`` choices."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out += "[^.]*"
        elif char == "?":
            out += "[^.]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        elif char == "{":
            end = pattern.index("}", i)
            out += "(?:" + "|".join(re.escape(choice) for choice in pattern[i + 1 : end].split(",")) + ")"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


@pytest.fixture(scope="module")
def emitted(grpc_backend: Backend, ws_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Graphite names of all the mirror sends in a distributed headless run (master + one worker)."""
    gate = tmp_path_factory.mktemp("monitoring") / "gate.yaml"
    gate.write_text(GATE)
    env = {"GRPC_PROBE_TARGET": grpc_backend.address, "WS_PROBE_URL": ws_backend.url}
    run = ("--headless", "-u", "4", "-r", "4", "-t", "3s", "--exit-code-on-error", "0", "--skip-log-setup")
    locustfiles = f"{FOR_TESTS / 'statsd_grpc.py'},{FOR_TESTS / 'statsd_ws.py'}"
    with udp_capture() as capture:
        statsd = ("--statsd-host", "127.0.0.1", "--statsd-port", str(capture.port))
        master_args = [*run, *statsd, "--thresholds", str(gate)]
        done = run_distributed(locustfiles, master_args, worker_args=statsd, workers=1, env=env)
    assert done.returncode == 0, done.stderr
    return {path for line in capture.lines() for path in graphite_names(line.name, line.type)}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def load_dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def variables(board: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var["current"]["value"] for var in board.get("templating", {}).get("list", [])}


def datasource_uid() -> str:
    provisioning = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/graphite.yml").read_text())
    (source,) = provisioning["datasources"]
    assert source["type"] == "graphite"
    return str(source["uid"])


def test_the_five_dashboards_exist_with_unique_uids() -> None:
    assert {path.stem for path in DASHBOARDS} == {"overview", "grpc", "websocket", "errors", "thresholds"}
    uids = [load_dashboard(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_panels_use_the_provisioned_datasource(path: Path) -> None:
    uid = datasource_uid()
    for panel in panels(load_dashboard(path)):
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(target["datasource"]["uid"] == uid for target in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_target_matches_an_emitted_metric(path: Path, emitted: set[str]) -> None:
    board = load_dashboard(path)
    values = variables(board)
    checked = 0
    for panel in panels(board):
        for target in panel["targets"]:
            expression = re.sub(r"\$(\w+)", lambda var: values[var.group(1)], target["target"])
            series = SERIES.findall(expression)
            assert series, f"{path.name} {panel['title']!r}: no Graphite series in {expression!r}"
            for pattern in series:
                regex = glob_regex(pattern)
                assert any(regex.fullmatch(name) for name in emitted), f"{path.name} {panel['title']!r}: {pattern}"
                checked += 1
    assert checked >= len(board["panels"])


def test_graphite_finest_retention_equals_the_statsd_flush_interval() -> None:
    flush_seconds = json.loads((MONITORING / "statsd/config.js").read_text())["flushInterval"] / 1000
    schemas = (MONITORING / "graphite/storage-schemas.conf").read_text()
    stats_section = schemas.split("[stats]", 1)[1]
    retentions = re.search(r"retentions\s*=\s*(\S+)", stats_section)
    assert retentions is not None
    assert retentions.group(1).split(",")[0].split(":")[0] == f"{flush_seconds:g}s"
    aggregation = (MONITORING / "graphite/storage-aggregation.conf").read_text()
    assert re.search(r"\^stats_counts\\\.\s+xFilesFactor = 0\s+aggregationMethod = sum", aggregation)
    assert re.search(r"\^stats\\\.gauges\\\.\s+xFilesFactor = 0\s+aggregationMethod = last", aggregation)


def test_compose_wires_statsd_graphite_grafana_backends_and_scalable_workers() -> None:
    compose = yaml.safe_load((MONITORING / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"graphite", "grafana", "grpc-backend", "websocket-backend", "master", "worker"}
    assert services["graphite"]["image"].startswith("graphiteapp/graphite-statsd:")
    for service in services.values():
        for volume in service.get("volumes", []):
            assert (MONITORING / volume.split(":")[0]).exists(), volume
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker, "--scale worker=N needs neither"
    assert (
        "--worker" in worker["command"] and worker["command"][worker["command"].index("--master-host") + 1] == "master"
    )
    assert "--master" in services["master"]["command"]
    for name in ("master", "worker"):
        assert services[name]["environment"]["STATSD_HOST"] == "graphite"
    assert (REPO_ROOT / services["master"]["build"]["context"].replace("..", ".") / "monitoring/Dockerfile").exists()


def test_kubernetes_master_and_workers() -> None:
    documents = [
        doc for path in sorted((MONITORING / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
    ]
    by_kind_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    master = by_kind_name[("Deployment", "locust-master")]
    workers = by_kind_name[("Deployment", "locust-worker")]
    service = by_kind_name[("Service", "locust-master")]
    for deployment in (master, workers):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= master["spec"]["template"]["metadata"]["labels"].items()
    assert {port["port"] for port in service["spec"]["ports"]} == {8089, 5557}
    master_args = master["spec"]["template"]["spec"]["containers"][0]["args"]
    worker_args = workers["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--master" in master_args and "--worker" in worker_args
    assert worker_args[worker_args.index("--master-host") + 1] == service["metadata"]["name"]
