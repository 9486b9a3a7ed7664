"""``--run-time`` lasts as long as asked, however long the start-up took (Locust sets its stop timer from gevent's
cached loop time; the suite brings that clock up to date after ``init``)."""

from __future__ import annotations

import re
from datetime import datetime

from locust_ext.testing import locust_command, run_locust
from tests.support import FOR_TESTS

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*?: (.*)$")


def logged_at(stderr: str, text: str) -> datetime:
    """When Locust logged the first line containing ``text``."""
    for line in stderr.splitlines():
        match = STAMP.match(line)
        if match and text in match.group(2):
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    raise AssertionError(f"no log line with {text!r}:\n{stderr[-3000:]}")


def test_a_slow_start_does_not_shorten_the_run() -> None:
    command = locust_command(FOR_TESTS / "slow_import.py", "--headless", "-u", "1", "-r", "1", "-t", "3s")
    done = run_locust(command, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = logged_at(done.stderr, "--run-time limit reached") - logged_at(done.stderr, "Run time limit set to 3")
    # A timer never fires early; log stamps are whole milliseconds.
    assert ran.total_seconds() >= 2.99, (ran, done.stderr[-3000:])
