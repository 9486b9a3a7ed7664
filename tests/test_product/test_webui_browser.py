"""The web UI started with no ``--host`` and used in a real browser, as a person uses it.

Headless Chromium opens Locust's page, types into the React start form (keyboard input through DevTools), clicks
Start and Stop with the mouse, and reads what the page shows: the statistics table, the Thresholds tab and the
WebSocket tab. A wrong host typed into the form is refused in the page, nothing is spawned, and the same process
then starts a run from a corrected form. Runs wherever Chromium is installed (``make test`` installs it); under
``CI=true`` a missing Chromium fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from locust_ext.browser import Page, button, find_chromium, headless_chromium, tab
from locust_ext.testing import Backend, free_port, locust_command, running_locust
from tests.support import FOR_TESTS
from tests.test_product.counted import check_counts, served

pytestmark = pytest.mark.skipif(
    find_chromium() is None and os.environ.get("CI") != "true",
    reason="no Chromium on PATH (Debian: apt-get install chromium; `make test` installs it); CI runs this test",
)

USERS = 3
#: Longest wait for anything the page should show (a poll of /stats/requests every 2 s, a live grading).
SHOW_S = 45.0


@dataclass(frozen=True)
class Case:
    kind: str
    locustfile: str
    #: A host of the wrong kind for the locustfile, typed into the form first.
    wrong_host: str
    #: A request row that must fill in; the thresholds rule that grades it has the same name.
    row: str


CASES = {
    "grpc-example": Case("grpc", "locustfiles/grpc.py", "ws://127.0.0.1:1", "/loadtest.v1.Hello/SayHello"),
    "websocket-example": Case("websocket", "locustfiles/websocket.py", "http://127.0.0.1:1", "echo"),
    # A user class with no host: the form starts empty.
    "websocket-no-host": Case("websocket", str(FOR_TESTS / "no_host_ws.py"), "http://127.0.0.1:1", "echo"),
}


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.load(response))


@contextmanager
def web_ui(locustfile: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``locust -f LOCUSTFILE --web-host 127.0.0.1 --web-port N --thresholds thresholds.yaml`` (no ``--host``), once
    its page answers; (its URL, the process). Killed at the end of the block if still running."""
    port = free_port()
    command = locust_command(
        locustfile, "--web-host", "127.0.0.1", "--web-port", str(port), "--thresholds", "thresholds.yaml"
    )
    url = f"http://127.0.0.1:{port}/"
    with running_locust(command) as process:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                exited = process.poll() is not None
                if exited or time.monotonic() > deadline:
                    if not exited:
                        process.kill()
                    _, stderr = process.communicate()
                    pytest.fail(f"the web UI did not come up (exit {process.returncode}): {stderr[-2000:]}")
                time.sleep(0.1)
        yield url, process


def start_run(page: Page, host: str, users: int) -> None:
    """Type the host, user count and spawn rate into the start form and click Start."""
    page.type_into("input[name=host]", host)
    page.type_into("input[name=userCount]", str(users))
    page.type_into("input[name=spawnRate]", str(users))
    page.click(button("Start"))


def stats_rows(page: Page) -> dict[str, int]:
    """Requests per name in the page's statistics table (empty while another table, or none, is shown)."""
    rows = page.table()
    if not rows or "# Requests" not in rows[0]:
        return {}
    return {row["Name"]: int(row["# Requests"].replace(",", "")) for row in rows}


@pytest.fixture
def page() -> Iterator[Page]:
    with headless_chromium() as opened:
        yield opened


@pytest.mark.parametrize("name", CASES)
def test_the_start_form_refuses_a_wrong_host_then_runs_with_a_good_one(
    name: str, page: Page, grpc_backend: Backend, ws_backend: Backend
) -> None:
    case = CASES[name]
    backend = grpc_backend if case.kind == "grpc" else ws_backend
    good_host = backend.address if case.kind == "grpc" else backend.url
    served(backend, reset=True)
    with web_ui(case.locustfile) as (url, locust):
        page.navigate(url, timeout=30)

        # A host of the wrong scheme: the error shows in the form, nothing spawns, the process keeps serving.
        start_run(page, case.wrong_host, USERS)
        alerts = "[...document.querySelectorAll('form [role=alert]')]"
        page.wait_for(
            f"{alerts}.some(alert => alert.innerText.includes({json.dumps(case.wrong_host)}))",
            timeout=SHOW_S,
            what=f"an alert in the start form naming the refused host {case.wrong_host}",
        )
        refused = fetch_json(f"{url}stats/requests")
        assert (refused["state"], refused["user_count"]) == ("ready", 0)
        assert [(row["name"], row["num_requests"]) for row in refused["stats"]] == [("Aggregated", 0)]
        assert served(backend) == {}
        assert locust.poll() is None

        # The same form, corrected: requests fill the statistics table.
        start_run(page, good_host, USERS)
        page.until(lambda: stats_rows(page).get(case.row, 0) > 0, timeout=SHOW_S, what=f"a {case.row} row")

        page.click(tab("Thresholds"))
        graded = page.until(
            lambda: [row for row in page.table() if row.get("Rule") == case.row and row.get("Grade", "-") != "-"],
            timeout=SHOW_S,
            what=f"the Thresholds tab to grade {case.row}",
        )
        assert {row["Outcome"].split()[0] for row in graded} <= {"PASS", "FAIL"}
        if case.kind == "websocket":
            page.click(tab("WebSocket"))
            page.until(
                lambda: [row.get("Open connections") for row in page.table()] == [str(USERS)],
                timeout=SHOW_S,
                what=f"{USERS} open connections in the WebSocket tab",
            )

        page.click(button("Stop"))
        page.wait_for("document.body.innerText.includes('STOPPED')", timeout=SHOW_S, what="the run to stop")
        page.click(tab("Statistics"))
        final = fetch_json(f"{url}stats/requests")
        total = final["stats"][-1]["num_requests"]
        page.until(lambda: stats_rows(page).get("Aggregated") == total, timeout=SHOW_S, what=f"{total} requests")
        assert check_counts(backend, final["stats"], cut_short=USERS) > 0

        locust.send_signal(signal.SIGTERM)
        _, stderr = locust.communicate(timeout=30)
    assert locust.returncode in (0, 3), stderr[-3000:]  # the gate's verdict: 0 pass, 3 fail
