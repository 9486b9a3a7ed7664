"""What the native transport's conformance tests share: the three servers, and channels on either transport."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from locust_ext.grpc.channels import ChannelSpec, open_channel
from locust_ext.grpc.target import parse_target
from locust_ext.testing import Backend, running_server
from tests.support import REPO_ROOT

HERE = Path(__file__).resolve().parent
GRPC_JS = REPO_ROOT / ".cache" / "grpc-js-server" / "node_modules"
SERVER_KINDS = ("grpcio", "aio", "node")
TRANSPORTS = ("native", "grpcio")


def server_command(kind: str, args: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """(command, extra env) of a conformance server; skips the Node one when node or grpc-js is missing."""
    if kind == "node":
        node = shutil.which("node")
        if node is None or not (GRPC_JS / "@grpc" / "grpc-js").is_dir():
            reason = "node or @grpc/grpc-js missing (make .cache/grpc-js-server/.installed installs it)"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        return [node, str(HERE / "node_grpc_server.js"), *args], {"NODE_PATH": str(GRPC_JS)}
    extra = ["--aio"] if kind == "aio" else []
    return [sys.executable, str(HERE / "grpc_conformance_server.py"), *extra, *args], {}


@contextmanager
def conformance_server(kind: str, *args: str) -> Iterator[Backend]:
    command, env = server_command(kind, args)
    with running_server(command, kind=f"grpc-{kind}", env=env) as backend:
        yield backend


def channel(address: str, transport: str, *, secure: bool = False, **spec: Any) -> grpc.Channel:
    """A channel to ``address`` on ``transport``, as GrpcUser opens it (``spec``: more ChannelSpec fields)."""
    target = parse_target(f"{'grpcs' if secure else 'grpc'}://{address}")
    return open_channel(ChannelSpec(target=target, transport=transport, **spec))
