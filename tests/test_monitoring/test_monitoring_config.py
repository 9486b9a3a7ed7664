"""monitoring/ checked without a container engine: image, compose, Kubernetes manifests, StatsD/Graphite config.

No Docker engine runs where the tests run, so the image is staged instead: the files monitoring/Dockerfile
COPYs (minus what .dockerignore leaves out of the build context) are copied into a temporary directory, and
every command line the compose file, the manifests and the Dockerfile give a container is run through
tests/test_monitoring/container_command.py there, with the container's environment: Locust's own argument parser
with the suite's flags, the files it names, the thresholds file, the host each user class would run against. An
unknown flag, a host of the wrong scheme for the locustfile, or a file the image lacks fails here. That the
dashboards' targets return data from a real Graphite is tests/test_monitoring/test_monitoring_graphite.py's job.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support import REPO_ROOT
from tests.test_monitoring.monitoring_support import DASHBOARDS, MONITORING, load_dashboard, panels, targets

IMAGE = "locust-grpc-websocket:latest"
CHECKER = Path(__file__).with_name("container_command.py")
COMPOSE = yaml.safe_load((MONITORING / "docker-compose.yml").read_text())
K8S = [doc for path in sorted((MONITORING / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
# Shell variables `docker compose up` is run with: the defaults, and what the compose file's header documents.
COMPOSE_SHELLS: dict[str, dict[str, str]] = {
    "default": {},
    "websocket": {"LOCUSTFILE": "locustfiles/websocket.py"},
    "websocket-host": {"LOCUSTFILE": "locustfiles/websocket.py", "LOCUST_HOST": "ws://websocket-backend:8080"},
    "grpc-host": {"LOCUSTFILE": "locustfiles/grpc.py", "LOCUST_HOST": "grpc-backend:50051"},
}


# The image -------------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, rest of the line) for every instruction of monitoring/Dockerfile."""
    text = re.sub(r"\\\n", " ", (MONITORING / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and line[0] != "#"]


def exec_form(rest: str) -> list[str]:
    words = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
    return [str(word) for word in words]


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV settings (``ENV KEY=value ...``)."""
    env: dict[str, str] = {}
    for instruction, rest in dockerfile():
        if instruction == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def image_entrypoint() -> tuple[list[str], list[str]]:
    """The image's ENTRYPOINT and CMD."""
    instructions = dict(dockerfile())
    return exec_form(instructions["ENTRYPOINT"]), exec_form(instructions.get("CMD", "[]"))


def dockerignored(relative: Path) -> bool:
    """Whether .dockerignore keeps this path (or a folder above it) out of the build context."""
    patterns = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [pattern for pattern in patterns if pattern and not pattern.startswith("#")]
    parts = relative.parts
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for pattern in patterns:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(parts[depth - 1], pattern[3:])
            ):
                return True
    return False


def stage_image(root: Path) -> Path:
    """Copy what the Dockerfile's COPY lines put in the image (build context = the repository) under ``root``."""
    workdir = Path(dict(dockerfile())["WORKDIR"].lstrip("/"))
    for instruction, rest in dockerfile():
        if instruction != "COPY":
            continue
        *sources, destination = shlex.split(rest)
        for source in sources:
            assert not dockerignored(Path(source)), f"COPY {source}: left out of the build context by .dockerignore"
            origin = REPO_ROOT / source
            assert origin.exists(), f"COPY {source}: no such file in the repository"
            target = root / workdir / destination
            if origin.is_dir():
                for path in origin.rglob("*"):
                    relative = path.relative_to(REPO_ROOT)
                    if path.is_file() and not dockerignored(relative):
                        copy = target / path.relative_to(origin)
                        copy.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, copy)
            else:
                copy = target / origin.name if destination.endswith("/") else target
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, copy)
    return root / workdir


# Command lines ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerCommand:
    """What one container runs: the whole command (entrypoint + arguments) and its environment."""

    where: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def locust_args(self) -> list[str]:
        """The arguments after ``locust``; empty for anything else."""
        return self.argv[1:] if self.argv[:1] == ["locust"] else []


def container_argv(entrypoint: list[str] | None, arguments: list[str] | None) -> list[str]:
    """Docker's rule: an overridden entrypoint drops the image's CMD; given arguments replace it."""
    image_entry, image_cmd = image_entrypoint()
    if entrypoint is not None:
        return [*entrypoint, *(arguments or [])]
    return [*image_entry, *(image_cmd if arguments is None else arguments)]


def interpolate(text: str, shell: Mapping[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` interpolation."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        return shell.get(name) or (default if default is not None else "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", value, text)


def compose_commands(shell_name: str, run: tuple[str, list[str]] | None = None) -> Iterator[ContainerCommand]:
    """Every container of the suite's image in the compose file, with ``docker compose up`` run from ``shell``;
    with ``run`` = (service, arguments), only what ``docker compose run service arguments`` starts."""
    shell = COMPOSE_SHELLS[shell_name]
    for name, service in COMPOSE["services"].items():
        if run is not None:
            if name != run[0]:
                continue
            service = {**service, "command": run[1]}
        if service.get("image") != IMAGE:
            continue
        env = {}
        for key, raw in service.get("environment", {}).items():
            if raw is None:  # a bare key: the shell's value when set there, otherwise unset
                if key in shell:
                    env[key] = shell[key]
            else:
                env[key] = interpolate(str(raw), shell)
        argv = container_argv(service.get("entrypoint"), service.get("command"))
        where = f"compose[{shell_name}]:{name}" + (f" run {shlex.join(run[1])}" if run else "")
        yield ContainerCommand(where, [interpolate(word, shell) for word in argv], {**image_env(), **env})


def k8s_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(Deployment, container) for every container in monitoring/k8s/."""
    for doc in K8S:
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc, container


def k8s_commands() -> Iterator[ContainerCommand]:
    for deployment, container in k8s_containers():
        if container["image"] == IMAGE:
            env = {item["name"]: item["value"] for item in container.get("env", [])}
            argv = container_argv(container.get("command"), container.get("args"))
            yield ContainerCommand(f"k8s:{deployment['metadata']['name']}", argv, {**image_env(), **env})


IMAGE_DEFAULT = ContainerCommand("Dockerfile", container_argv(None, None), image_env())


def distinct(commands: Iterable[ContainerCommand]) -> list[ContainerCommand]:
    """The first of each set of commands with the same command line and environment."""
    seen: dict[str, ContainerCommand] = {}
    for command in commands:
        seen.setdefault(json.dumps([command.argv, command.env], sort_keys=True), command)
    return list(seen.values())


# `docker compose run` lines the README gives.
COMPOSE_RUNS = [("master", ["--config", "profiles/websocket-light.conf"])]
COMMANDS = distinct(
    [
        *(command for shell in COMPOSE_SHELLS for command in compose_commands(shell)),
        *(command for run in COMPOSE_RUNS for command in compose_commands("default", run)),
        *k8s_commands(),
        IMAGE_DEFAULT,
    ]
)


def refused(*args: str, **env: str) -> ContainerCommand:
    return ContainerCommand("refused", ["locust", *args], {**image_env(), **env})


# Broken on purpose, with the words the checker must refuse each with, or it proves nothing.
REFUSED = {
    "unknown flag": (refused("-f", "locustfiles/grpc.py", "--master", "--statsd-hots=x"), "--statsd-hots"),
    "gRPC host for WebSocket users": (
        refused("-f", "locustfiles/websocket.py", "--master", "--host", "grpc-backend:50051"),
        "the scheme must be ws:// or wss://",
    ),
    "WebSocket host for gRPC users": (
        refused("-f", "locustfiles/grpc.py", "--master", LOCUST_HOST="ws://websocket-backend:8080"),
        "scheme must be grpc:// or grpcs://",
    ),
    "locustfile not in the image": (
        refused("-f", "tests/locustfiles_for_tests/statsd_grpc.py", "--master"),
        "Could not find 'tests/locustfiles_for_tests/statsd_grpc.py'",
    ),
    "thresholds file not in the image": (
        refused("-f", "locustfiles/grpc.py", "--master", "--thresholds", "monitoring/thresholds.yaml"),
        "no such file in the image",
    ),
    "config file not in the image": (refused("--config", "profiles/missing.conf"), "Unable to open config file"),
}


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staged image: this directory stands for the image's ``/``."""
    root = tmp_path_factory.mktemp("image")
    stage_image(root)
    return root


@pytest.fixture(scope="module")
def image(image_root: Path) -> Path:
    """The staged image's WORKDIR."""
    return image_root / dict(dockerfile())["WORKDIR"].lstrip("/")


@pytest.fixture(scope="module")
def checked(image_root: Path, image: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command of COMMANDS and REFUSED through the checker in the staged image (one process, a fork each;
    ``python -I``: nothing of this checkout on the import path but what the container would have)."""
    todo = {command.where: command for command in COMMANDS} | {f"refused:{k}": v for k, (v, _) in REFUSED.items()}
    assert len(todo) == len(COMMANDS) + len(REFUSED), "two commands share a name"
    done = subprocess.run(
        [sys.executable, "-I", str(CHECKER), str(image_root)],
        input=json.dumps([{"argv": command.argv, "env": command.env} for command in todo.values()]),
        cwd=image,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    return {
        where: subprocess.CompletedProcess(command.argv, result["returncode"], result["stdout"], result["stderr"])
        for (where, command), result in zip(todo.items(), results, strict=True)
    }


def found(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.where)
def test_command_line_starts_in_the_image(
    command: ContainerCommand, checked: dict[str, subprocess.CompletedProcess[str]], image: Path
) -> None:
    report = found(checked[command.where])
    if report["role"] == "backend":
        return
    assert Path(report["suite"]).is_relative_to(image), "the checker must load the staged suite"
    args = command.locust_args
    if report["role"] == "worker":
        # The standard worker command: no --host (the master sends it), nothing else the master decides.
        assert args[2:] == ["--worker", "--master-host", args[-1]], args
        assert "LOCUST_HOST" not in command.env
    else:
        assert report["hosts"], "the checker found no user class to check the host against"


@pytest.mark.parametrize("reason", REFUSED)
def test_checker_refuses_a_broken_command(reason: str, checked: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = checked[f"refused:{reason}"]
    assert result.returncode != 0, result.stdout
    assert REFUSED[reason][1] in result.stderr, result.stderr[-2000:]


def hostname(value: str) -> str:
    return urlsplit(value if "://" in value else f"//{value}").hostname or ""


def referenced_hosts(command: ContainerCommand) -> set[str]:
    """Host names a container dials: the master, StatsD, the backends (env or --host)."""
    args = command.locust_args
    hosts = {hostname(value) for key, value in command.env.items() if key.endswith("_HOST")}
    for flag in ("--master-host", "--host", "-H"):
        if flag in args:
            hosts.add(hostname(args[args.index(flag) + 1]))
    return hosts


def test_compose_names_only_its_own_services_and_files() -> None:
    services = COMPOSE["services"]
    assert set(services) >= {"graphite", "grafana", "grpc-backend", "websocket-backend", "master", "worker"}
    assert services["graphite"]["image"].startswith("graphiteapp/graphite-statsd:")
    for service in services.values():
        for volume in service.get("volumes", []):
            assert (MONITORING / volume.split(":")[0]).exists(), volume
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker, "--scale worker=N needs neither"
    for command in (command for shell in COMPOSE_SHELLS for command in compose_commands(shell)):
        assert referenced_hosts(command) <= set(services), command
    assert services["master"]["build"]["context"] == ".." and services["master"]["build"]["dockerfile"] == (
        "monitoring/Dockerfile"
    )
    header = (MONITORING / "docker-compose.yml").read_text().split("\nx-", 1)[0]
    assert "LOCUSTFILE" in header and "LOCUST_HOST" in header


def test_kubernetes_manifests_deploy_as_shipped() -> None:
    by_kind_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in K8S}
    services = {name: doc for (kind, name), doc in by_kind_name.items() if kind == "Service"}
    deployments = [doc for doc in K8S if doc["kind"] == "Deployment"]
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for service in services.values():
        selected = [
            (deployment, container)
            for deployment, container in k8s_containers()
            if service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        port_names = {port["name"] for _, container in selected for port in container.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)
    for deployment, container in k8s_containers():
        where = deployment["metadata"]["name"]
        # A locally built image is used as loaded into the nodes, never pulled (a :latest tag defaults to Always).
        assert container.get("imagePullPolicy") in ("IfNotPresent", "Never"), where
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), where
    for command in k8s_commands():
        assert referenced_hosts(command) <= set(services), command
    master = by_kind_name[("Deployment", "locust-master")]["spec"]["template"]["spec"]["containers"][0]
    probe = master["readinessProbe"]["httpGet"]
    web_port = next(port for port in master["ports"] if port["containerPort"] == 8089)
    assert probe["port"] in (8089, web_port["name"])
    assert {port["port"] for port in services["locust-master"]["spec"]["ports"]} == {8089, 5557}


def test_kubernetes_statsd_config_is_the_repository_config() -> None:
    config = next(doc for doc in K8S if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("statsd"))
    assert config["data"] == {
        "udp.js": (MONITORING / "statsd/config.js").read_text(),
        "storage-schemas.conf": (MONITORING / "graphite/storage-schemas.conf").read_text(),
        "storage-aggregation.conf": (MONITORING / "graphite/storage-aggregation.conf").read_text(),
    }


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
def test_panels_use_the_provisioned_datasource_and_known_variables(path: Path) -> None:
    uid = datasource_uid()
    board = load_dashboard(path)
    for panel in panels(board):
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(target["datasource"]["uid"] == uid for target in panel["targets"]), panel["title"]
    assert all("$" not in expression.replace("'$'", "") for _, expression in targets(board))


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
