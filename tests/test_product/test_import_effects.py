"""What importing the suite does, each in a fresh interpreter: a report tool's ``import locust_ext.thresholds``
neither sets up grpc (nor imports it) nor registers anything with Locust; a locustfile's ``from locust_ext import
GrpcUser`` registers each feature's two listeners, once, and switches grpc to gevent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT

#: Prints what the import left behind: grpc modules, Locust listeners per event, Locust's own hooks or the suite's.
PROBE = """
import json, sys
{imports}
import locust, locust.stats
from locust.event import EventHook
from locust.stats import RequestStats

listeners = {{
    name: len(hook._handlers) for name, hook in vars(locust.events).items() if isinstance(hook, EventHook)
}}
print(json.dumps({{
    "grpc_modules": sorted(name for name in sys.modules if name == "grpc" or name.startswith("grpc.")),
    "suite_modules": sorted(name for name in sys.modules if name.startswith("locust_ext")),
    "listeners": {{name: count for name, count in listeners.items() if count}},
    "bucket": locust.stats.bucket_response_time.__module__,
    "log_request": RequestStats.log_request.__module__,
}}))
"""


def imported(*imports: str) -> dict[str, object]:
    code = PROBE.format(imports="\n".join(imports))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "imports",
    [
        ("import locust_ext.thresholds",),
        ("from locust_ext.thresholds import load_thresholds, render_report",),
        ("import locust_ext", "import locust_ext.statsd", "import locust_ext.shapes", "import locust_ext.iterations"),
    ],
)
def test_library_packages_register_nothing_and_leave_grpc_alone(imports: tuple[str, ...]) -> None:
    found = imported(*imports)
    assert found["grpc_modules"] == []
    assert found["listeners"] == {}
    assert found["bucket"] == "locust.stats"
    assert found["log_request"] == "locust.stats"
    suite = found["suite_modules"]
    assert isinstance(suite, list)
    assert not [name for name in suite if name.startswith(("locust_ext.grpc", "locust_ext.websocket"))]
    assert "locust_ext.plugin" not in suite


def test_a_locustfile_import_registers_every_feature_once_and_sets_up_grpc() -> None:
    found = imported(
        "from locust_ext import GrpcUser",
        "from locust_ext import WebSocketUser",
        "import locust_ext.plugin",
        "from locust_ext.plugin import FEATURES, register",
        "register()",
    )
    features = len(__import__("locust_ext.plugin", fromlist=["FEATURES"]).FEATURES)
    # Each feature's two, and the loop-clock refresh for --run-time after every feature's init.
    assert found["listeners"] == {"init_command_line_parser": features, "init": features + 1}
    assert "grpc.experimental.gevent" in found["grpc_modules"]  # type: ignore[operator]
    assert found["log_request"] == "locust_ext.derived"  # the gRPC and WebSocket users registered derived types
    assert found["bucket"] == "locust.stats"  # fine buckets come with Locust's init, not with the import
