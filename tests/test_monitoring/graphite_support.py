"""Real Graphite for the tests: carbon-cache and graphite-web's render API on loopback (Debian packages).

Each runs as a subprocess of the current user with its configuration and storage in a temporary directory, on
free loopback ports, and is always stopped. Carbon uses the repository's storage schemas and aggregation rules
(monitoring/graphite/); graphite-web reads carbon's whisper files and asks carbon's cache (CARBONLINK) for
points not written yet. Install with ``make system-deps`` (as root; ``make test`` runs it); without the packages
the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from locust_ext.testing import free_port, stop_process
from tests.support import REPO_ROOT

__all__ = ["Carbon", "render", "require_graphite", "running_carbon", "running_graphite_web"]

CARBON_CACHE = Path("/usr/bin/carbon-cache")
SYSTEM_PYTHON = Path("/usr/bin/python3")
GRAPHITE_WEB = Path("/usr/lib/python3/dist-packages/graphite/wsgi.py")
INSTALL = "apt-get install -y --no-install-recommends graphite-carbon graphite-web (`make system-deps` as root)"
START_TIMEOUT_S = 30.0


def require_graphite() -> None:
    """Skip (fail under CI=true) unless Debian's carbon and graphite-web are installed."""
    missing = [str(path) for path in (CARBON_CACHE, SYSTEM_PYTHON, GRAPHITE_WEB) if not path.exists()]
    if not missing:
        return
    reason = f"Graphite not installed (missing {', '.join(missing)}); install with {INSTALL}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Carbon:
    """A running carbon-cache: plaintext receiver, cache query port, and where it keeps whisper files."""

    line_port: int
    query_port: int
    whisper_dir: Path


def _system_env() -> dict[str, str]:
    """An environment for the system python3's programs: nothing of the project's venv."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}


def _wait_until(ready: Any, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def running_carbon(root: Path) -> Iterator[Carbon]:
    """carbon-cache in the foreground with a carbon.conf under ``root`` and the repository's storage rules."""
    conf, storage = root / "conf", root / "storage"
    for folder in (conf, storage / "whisper", storage / "lists", root / "log"):
        folder.mkdir(parents=True)
    for name in ("storage-schemas.conf", "storage-aggregation.conf"):
        shutil.copy(REPO_ROOT / "monitoring" / "graphite" / name, conf / name)
    carbon = Carbon(line_port=free_port(), query_port=free_port(), whisper_dir=storage / "whisper")
    # No rate limits: every metric the run sends gets its whisper file at once (the default creates 50 a minute).
    (conf / "carbon.conf").write_text(
        f"""[cache]
STORAGE_DIR = {storage}/
LOCAL_DATA_DIR = {carbon.whisper_dir}/
WHITELISTS_DIR = {storage}/lists/
CONF_DIR = {conf}/
LOG_DIR = {root}/log/
PID_DIR = {root}/
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {carbon.line_port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = 0
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {carbon.query_port}
LOG_LISTENER_CONN_SUCCESS = False
"""
    )
    log = root / "carbon.out"
    command = [str(CARBON_CACHE), "--config", str(conf / "carbon.conf"), "--pidfile", str(root / "carbon.pid")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--debug", "start"], stdout=out, stderr=subprocess.STDOUT, env=_system_env()
        )
    try:
        _wait_until(lambda: _accepts(carbon.line_port) and _accepts(carbon.query_port), process, log, "carbon-cache")
        yield carbon
    finally:
        stop_process(process)


def render(base_url: str, target: str, *, since: str = "-10min") -> list[dict[str, Any]]:
    """``/render?format=json`` for one target: the series, each with its ``datapoints`` ([value, time] pairs)."""
    query = urllib.parse.urlencode({"target": target, "format": "json", "from": since})
    with urllib.request.urlopen(f"{base_url}/render?{query}", timeout=30) as response:
        series: list[dict[str, Any]] = json.load(response)
    return series


@contextmanager
def running_graphite_web(root: Path, carbon: Carbon) -> Iterator[str]:
    """graphite-web (tests/test_monitoring/graphite_web.py under the system python3) reading ``carbon``; yields its
    base URL."""
    settings = root / "settings"
    for folder in (settings, root / "log", root / "conf"):
        folder.mkdir(parents=True)
    (settings / "graphite_test_settings.py").write_text(
        f"""SECRET_KEY = "graphite-web under test, loopback only"
ALLOWED_HOSTS = ["127.0.0.1"]
TIME_ZONE = "UTC"
GRAPHITE_ROOT = "/usr/share/graphite-web"
STATIC_ROOT = "/usr/share/graphite-web/static"
CONF_DIR = "{root}/conf"
STORAGE_DIR = "{root}"
WHISPER_DIR = "{carbon.whisper_dir}"
STANDARD_DIRS = ["{carbon.whisper_dir}"]
LOG_DIR = "{root}/log"
INDEX_FILE = "{root}/index"
CARBONLINK_HOSTS = ["127.0.0.1:{carbon.query_port}:a"]
DEFAULT_XFILES_FACTOR = 0
DATABASES = {{"default": {{"NAME": "{root}/graphite.db", "ENGINE": "django.db.backends.sqlite3"}}}}
FUNCTION_PLUGINS = []
"""
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**_system_env(), "PYTHONPATH": str(settings), "GRAPHITE_SETTINGS_MODULE": "graphite_test_settings"}
    log = root / "graphite-web.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SYSTEM_PYTHON), str(Path(__file__).with_name("graphite_web.py")), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def answers() -> bool:
        try:
            render(base_url, "carbon.none")
        except (OSError, urllib.error.URLError):
            return False
        return True

    try:
        _wait_until(answers, process, log, "graphite-web")
        yield base_url
    finally:
        stop_process(process)
