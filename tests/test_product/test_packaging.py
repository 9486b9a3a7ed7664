"""The distribution as an index would serve it: its wheel ships the library and nothing else.

The wheel is built from a copy of only what the build reads (pyproject.toml, README.md, locust_ext/), so it
cannot pick up the checkout's other folders, and is unpacked away from the checkout: ``backends``, ``loadtest``,
``tests``, ``bench`` and ``scripts`` are run from a checkout and must claim no top-level name in site-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib.metadata import distributions
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
NAME = PYPROJECT["project"]["name"]
DIST_INFO = f"{NAME.replace('-', '_')}-{PYPROJECT['project']['version']}.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds with the project's own build backend (no build isolation: nothing is fetched)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    shutil.copy(REPO_ROOT / "README.md", source)
    shutil.copytree(REPO_ROOT / "locust_ext", source / "locust_ext", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(out)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel_file,) = out.glob("*.whl")
    return wheel_file


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as an installer lays it into site-packages."""
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_holds_only_the_library(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/", 1)[0] for name in archive.namelist()}
    assert top_level == {"locust_ext", DIST_INFO}
    assert wheel.name.startswith(f"{NAME.replace('-', '_')}-")


def test_metadata_name_python_floor_and_dependencies(installed: Path) -> None:
    metadata = Parser().parsestr((installed / DIST_INFO / "METADATA").read_text())
    assert metadata["Name"] == NAME == "locust-grpc-websocket"
    assert metadata["Requires-Python"] == ">=3.11"
    required = [line.split(";")[0] for line in metadata.get_all("Requires-Dist") or [] if "extra ==" not in line]
    names = {requirement.split(">")[0].split("=")[0].strip() for requirement in required}
    assert {"locust", "grpcio", "websocket-client", "gevent", "pyyaml"} <= names
    # Neither is used by the library: statsd only by a bench (extra "bench"); locust-plugins never, and Locust
    # would auto-load it, adding -i/--check-* flags beside the suite's own.
    assert not {"statsd", "locust-plugins"} & names


def test_the_console_script_is_the_distribution_name(installed: Path) -> None:
    (dist,) = distributions(path=[str(installed)])
    scripts = {entry.name: entry.value for entry in dist.entry_points if entry.group == "console_scripts"}
    assert scripts == {NAME: "locust_ext.command:main"}


def test_the_installed_library_runs_without_the_checkout(installed: Path, tmp_path: Path) -> None:
    """``python -m locust_ext`` from the unpacked wheel, run outside the checkout; the checkout's own top-level
    packages are not importable there."""
    env = {"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}
    probe = (
        "import importlib.util, locust_ext; print(locust_ext.__file__); "
        "print([n for n in ('backends', 'loadtest', 'tests', 'bench', 'scripts') if importlib.util.find_spec(n)])"
    )
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-2000:]
    library_file, claimed = found.stdout.splitlines()[-2:]
    assert Path(library_file).is_relative_to(installed)
    assert claimed == "[]"
    for command in (["--help"], ["grpc", "--help"], ["ws", "--help"]):
        ran = subprocess.run(
            [sys.executable, "-m", "locust_ext", *command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert ran.returncode == 0, (command, ran.stderr[-2000:])
        assert "usage: python -m locust_ext" in ran.stdout
