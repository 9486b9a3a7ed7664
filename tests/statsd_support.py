"""Test kit for the StatsD mirror: a strict StatsD line parser, a loopback UDP capture, the npm StatsD daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import free_port
from tests.support import REPO_ROOT

STATSD_BIN = REPO_ROOT / ".cache" / "statsd" / "node_modules" / "statsd" / "bin" / "statsd"
INSTALL = "npm install --prefix .cache/statsd --no-audit --no-fund statsd@0.9.0"

_LINE = re.compile(
    r"(?P<name>[A-Za-z0-9_.\-;=/]+):(?P<value>-?\d+(?:\.\d+)?)\|(?P<type>c|ms|g)"
    r"(?:\|@(?P<rate>0\.\d+|1(?:\.0+)?))?(?:\|#(?P<tags>[^|\s]+))?"
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
_GRAPHITE_TAG = re.compile(r"[A-Za-z0-9_]+=[A-Za-z0-9_./\-]+")
_DOG_TAG = re.compile(r"[A-Za-z0-9_]+:[A-Za-z0-9_./\-]+")


@dataclass(frozen=True)
class StatsdLine:
    """One parsed line: ``name:value|type[|@rate][|#tags]`` (Graphite tags stay in ``name`` as ``;k=v``)."""

    name: str
    value: float
    type: str
    rate: float = 1.0
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def base(self) -> str:
        """The metric name without Graphite tags."""
        return self.name.split(";", 1)[0]

    def tag(self, key: str) -> str | None:
        """A tag's value, DogStatsD or Graphite style."""
        found = dict(self.tags)
        for part in self.name.split(";")[1:]:
            key, _, value = part.partition("=")
            found[key] = value
        return found.get(key)


def parse_line(line: str) -> StatsdLine:
    """Parse strictly; ValueError naming the line for anything a StatsD daemon could misread."""
    match = _LINE.fullmatch(line)
    if not match:
        raise ValueError(f"not a StatsD line: {line!r}")
    base, *graphite_tags = match["name"].split(";")
    if not _PLAIN_NAME.fullmatch(base) or not all(_GRAPHITE_TAG.fullmatch(tag) for tag in graphite_tags):
        raise ValueError(f"bad metric name in {line!r}")
    tags: tuple[tuple[str, str], ...] = ()
    if match["tags"]:
        parts = match["tags"].split(",")
        if not all(_DOG_TAG.fullmatch(part) for part in parts):
            raise ValueError(f"bad tags in {line!r}")
        tags = tuple((key, value) for key, _, value in (part.partition(":") for part in parts))
    rate = float(match["rate"]) if match["rate"] else 1.0
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"bad sample rate in {line!r}")
    return StatsdLine(match["name"], float(match["value"]), match["type"], rate, tags)


@dataclass
class UdpCapture:
    """Everything received on a loopback UDP port: (payload, sender address) per datagram."""

    sock: socket.socket
    datagrams: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def lines(self) -> list[StatsdLine]:
        """Every line of every datagram, parsed strictly."""
        return [parse_line(line) for payload, _ in self.datagrams for line in payload.decode("ascii").split("\n")]

    def lines_by_sender(self) -> dict[tuple[str, int], list[StatsdLine]]:
        by_sender: dict[tuple[str, int], list[StatsdLine]] = {}
        for payload, sender in self.datagrams:
            by_sender.setdefault(sender, []).extend(parse_line(x) for x in payload.decode("ascii").split("\n"))
        return by_sender


@contextmanager
def udp_capture() -> Iterator[UdpCapture]:
    """Listen on 127.0.0.1 at a free port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    capture = UdpCapture(sock)
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                capture.datagrams.append(sock.recvfrom(65535))
            except TimeoutError:
                continue
            except OSError:
                return

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    try:
        yield capture
    finally:
        done.set()
        reader.join(5)
        sock.close()


def require_daemon() -> str:
    """The node binary, when node and the npm StatsD daemon are installed; skips otherwise (fails under CI=true)."""
    node = shutil.which("node")
    if node and STATSD_BIN.exists():
        return node
    reason = f"StatsD daemon not installed (needs node and `{INSTALL}`)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def running_statsd_daemon(config: dict[str, Any], config_dir: Path) -> Iterator[int]:
    """The npm StatsD daemon with ``config`` (its config file written to ``config_dir``), listening on a free
    loopback UDP port, management on a free loopback TCP port; yields the UDP port, stops the daemon at the end."""
    node = require_daemon()
    port = free_port("udp")
    config = {**config, "address": "127.0.0.1", "port": port, "mgmt_address": "127.0.0.1", "mgmt_port": free_port()}
    config_path = config_dir / "statsd_config.js"
    config_path.write_text(json.dumps(config))
    daemon = subprocess.Popen(
        [node, str(STATSD_BIN), str(config_path)],
        cwd=STATSD_BIN.parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        for line in daemon.stdout:
            if "server is up" in line:
                break
        else:
            pytest.fail(f"statsd daemon did not start (exit {daemon.wait()})")
        threading.Thread(target=daemon.stdout.read, daemon=True).start()
        yield port
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
