"""Connection lifetimes (the ``session`` row, kept out of Locust's totals) and the IM-gateway profile that grades
them with the guide's other criteria."""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

from locust.argument_parser import parse_options

import locust_ext.plugin  # noqa: F401  (registers the suite's flags)
from backends.kit import running_backend
from locust_ext.derived import is_derived
from locust_ext.shapes import StagesShape, shape_from_options
from locust_ext.testing import locust_command, run_locust
from locust_ext.thresholds.loader import load_thresholds
from locust_ext.websocket.lifetimes import SESSION_TYPE
from tests.support import FOR_TESTS, REPO_ROOT

LOCUSTFILE = FOR_TESTS / "local_ips_ws.py"
PROFILE = REPO_ROOT / "profiles" / "websocket-im-gateway.conf"


def _rows(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Locust's final stats (``--json``, printed after the users stopped: sessions end then)."""
    return {(entry["method"], entry["name"]): entry for entry in json.loads(stdout)}


def test_sessions_closed_by_their_users_succeed_with_their_lifetime() -> None:
    with running_backend("websocket") as backend:
        command = locust_command(LOCUSTFILE, "--headless", "-u", "4", "-r", "4", "-t", "4s", "-H", backend.url)
        done = run_locust([*command, "--session-floor", "60", "--json"], cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(done.stdout)
    session = rows[("websocket-session", "session")]
    assert (session["num_requests"], session["num_failures"]) == (4, 0)
    connect = rows[("websocket", "connect")]
    assert session["min_response_time"] > 0 and connect["num_requests"] == 4
    assert is_derived(SESSION_TYPE)  # not an operation: Locust's total leaves it out (tests/test_core/test_derived.py)


def test_sessions_dropped_before_the_floor_fail_by_name() -> None:
    with running_backend("websocket", ["--fault-drop-rate", "1"]) as backend:
        command = locust_command(LOCUSTFILE, "--headless", "-u", "4", "-r", "4", "-t", "3s", "-H", backend.url)
        done = run_locust([*command, "--session-floor", "60", "--json"], cwd=REPO_ROOT)
    assert done.returncode == 1, done.stderr[-3000:]
    session = _rows(done.stdout)[("websocket-session", "session")]
    assert (session["num_requests"], session["num_failures"]) == (4, 4)
    assert "session: dropped before the 60 s floor" in done.stderr


def _chat_flags() -> None:
    """Register locustfiles/chat.py's flags as Locust does when it imports it, unless already registered (by
    tests/test_websocket/test_ws_deliveries_profiles.py in the same session)."""
    try:
        parse_options(args=["--chat-rooms", "1"])
        return
    except SystemExit:
        pass
    sys.path.insert(0, str(REPO_ROOT / "locustfiles"))
    try:
        spec = importlib.util.spec_from_file_location("chat_im_profile_check", REPO_ROOT / "locustfiles" / "chat.py")
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    finally:
        sys.path.remove(str(REPO_ROOT / "locustfiles"))


def test_the_im_gateway_profile_ramps_holds_and_grades_the_guides_criteria() -> None:
    _chat_flags()
    options = parse_options(args=["--config", str(PROFILE)])
    shape = shape_from_options(options.stages, options.shape)
    assert isinstance(shape, StagesShape)
    assert [stage.target for stage in shape.parsed] == [10_000, 10_000, 0]
    assert options.session_floor == 60
    spec = load_thresholds(REPO_ROOT / options.thresholds)
    graded = {
        (rule.selector.pattern, metric.label): metric.absolute.limits["acceptable"]
        for rule in spec.rules
        for metric in rule.metrics
        if metric.absolute is not None
    }
    assert graded == {
        ("connect", "error_rate"): 5.0,
        ("connect", "response_time p95"): 5000.0,
        ("deliver", "response_time p99"): 200.0,
        ("deliver", "throughput"): 400.0,
        ("session", "error_rate"): 5.0,
    }
