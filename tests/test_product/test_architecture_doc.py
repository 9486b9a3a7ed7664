"""docs/architecture.md stays true: every file and folder it names exists, every feature package is one of its
rooms, the three places a newcomer looks for are where it says, and the tests' folders follow its naming rule."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from locust_ext import plugin
from tests.support import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "architecture.md").read_text()
#: Where a path in the document may be relative to: the checkout, the library, the protos.
ROOTS = (REPO_ROOT, REPO_ROOT / "locust_ext", REPO_ROOT / "protos")
#: Where a bare file name (in a room's row: ``session.py`` of ``websocket/``) may be.
FOLDERS = ("locust_ext", "backends", "scripts", "bench", "tests")


def named_paths() -> list[str]:
    """Backticked names that are files (``grpc/streams.py``, ``pyproject.toml``) or folders (``tests/``)."""
    quoted = re.findall(r"`([^`\s]+)`", DOC)
    return sorted({name for name in quoted if re.fullmatch(r"[\w./-]+(\.(py|md|toml|yaml|proto)|/)", name)})


def exists(name: str) -> bool:
    if any((root / name).exists() for root in ROOTS):
        return True
    return "/" not in name and any(any((REPO_ROOT / folder).rglob(name)) for folder in FOLDERS)


@pytest.mark.parametrize("name", named_paths())
def test_every_named_path_exists(name: str) -> None:
    assert exists(name), f"docs/architecture.md names {name}, which is gone"


def test_every_feature_package_is_a_room() -> None:
    packages = {hooks.split(".")[1] for hooks in plugin.FEATURES if hooks.count(".") == 2}
    rooms = set(re.findall(r"^\| `(\w+)/` \|", DOC, re.M))
    assert packages <= rooms


def source(path: str) -> str:
    return (REPO_ROOT / "locust_ext" / path).read_text()


def test_the_places_a_newcomer_looks_for_are_where_it_says() -> None:
    # Where a gRPC status becomes a failure.
    assert "**A gRPC status becomes a failure in `grpc/streams.py` `call_error`**" in DOC
    assert re.search(r"def call_error\(.*\n(.*\n){0,8}.*GrpcCallError\.from_rpc_error", source("grpc/streams.py"))
    # Where the gate sets the exit code.
    assert "`ThresholdGate._on_quitting`" in DOC
    quitting = source("thresholds/locust_hooks.py").split("def _on_quitting", 1)[1].split("\n    def ", 1)[0]
    assert "environment.process_exit_code = " in quitting
    # Where reconnect backoff lives.
    assert "`ReconnectPolicy.delay`" in DOC and "`Connector._connect_loop`" in DOC
    assert "def delay(" in source("websocket/reconnect.py")
    loop = source("websocket/connector.py").split("def _connect_loop", 1)[1].split("\n    def ", 1)[0]
    assert "policy.delay(attempt)" in loop


TESTS = REPO_ROOT / "tests"


def names_under_tests() -> dict[str, Path]:
    """Every name a folder under tests/ offers to ``import`` when that folder is first on ``sys.path`` (a script
    run as ``python tests/.../x.py``, a locustfile's folder): its subfolders and its modules."""
    folders = [TESTS, *(path for path in TESTS.rglob("*") if path.is_dir() and path.name != "__pycache__")]
    return {
        entry.stem: entry.relative_to(REPO_ROOT)
        for folder in folders
        for entry in folder.iterdir()
        if entry.stem.isidentifier()
        and entry.name not in ("__pycache__", "__init__.py")
        and (entry.is_dir() or entry.suffix == ".py")
    }


def test_no_folder_or_module_under_tests_hides_an_importable_one() -> None:
    # tests/grpc/ would be imported as grpc by any script run from tests/; so would tests/statsd/ as statsd.
    names = names_under_tests()
    probe = "import importlib.util as u, json, sys; print(json.dumps([n for n in sys.argv[2:] if u.find_spec(n)]))"
    # -I: neither the working directory nor the user's site; the checkout only as scripts put it, last.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.append(sys.argv[1]); {probe}", str(REPO_ROOT), *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    hiding = {str(names[name]): name for name in json.loads(result.stdout)}
    assert not hiding, f"these would hide an importable module of the same name: {hiding}"


def test_every_folder_of_tests_is_a_package() -> None:
    # Without __init__.py, pytest would put the folder itself first on sys.path and import its modules by bare name.
    loose = sorted(
        str(folder.relative_to(REPO_ROOT))
        for folder in {module.parent for module in TESTS.rglob("test_*.py")}
        if not (folder / "__init__.py").exists()
    )
    assert not loose, f"test folders without __init__.py: {loose}"
