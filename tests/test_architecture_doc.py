"""docs/architecture.md stays true: every file and folder it names exists, every feature package is one of its
rooms, and the three places a newcomer looks for are where it says."""

from __future__ import annotations

import re

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
