"""The Generator tab in a real browser: headless Chromium opens the web UI of a run started with ``--autostart``,
clicks the tab and reads the local process's row as the page shows it. Skips without Chromium (``make test``
installs it); under ``CI=true`` a missing Chromium fails instead."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import pytest

from locust_ext.browser import find_chromium, headless_chromium, tab
from locust_ext.testing import free_port, locust_command, running_locust
from tests.support import FOR_TESTS

pytestmark = pytest.mark.skipif(
    find_chromium() is None and os.environ.get("CI") != "true",
    reason="no Chromium on PATH (Debian: apt-get install chromium; `make test` installs it); CI runs this test",
)

#: Longest wait for anything the page should show (a poll of /stats/requests every 2 s; a report every 3 s).
SHOW_S = 45.0


def test_the_generator_tab_shows_each_process_live() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = locust_command(
        FOR_TESTS / "health_busy.py", "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart",
        "-u", "2", "-r", "2", "-t", "60s",
    )  # fmt: skip
    with running_locust(command, env={"HEALTH_BUSY_MS": "0"}) as locust, headless_chromium() as page:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                assert locust.poll() is None and time.monotonic() < deadline, "the web UI did not come up"
                time.sleep(0.1)
        page.navigate(url, timeout=30)
        assert "Generator" in page.tab_titles()
        page.click(tab("Generator"))
        rows = page.until(
            lambda: [
                row for row in page.table() if row.get("Process") == "local" and row.get("Memory (MiB)", "-") != "-"
            ],
            timeout=SHOW_S,
            what="the local process's row in the Generator tab",
        )
        (row,) = rows
        assert float(row["Memory (MiB)"]) > 0 and int(row["Open files"]) > 0
        assert float(row["Hub lag p99 (ms)"]) >= 0
        assert [r["Process"] for r in page.table()] == ["all", "local"]
        locust.send_signal(signal.SIGTERM)
        locust.wait(30)
