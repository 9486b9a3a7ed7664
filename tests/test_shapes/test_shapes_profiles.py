"""The profiles are valid Locust config files: Locust's own parser (with the suite's flags registered) reads
each one to the intended users, spawn rate, duration or stages, and the stages build a shape. A figure in a
profile's comment is its total peak (-u and --stages count users across all workers)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from locust.argument_parser import parse_options

import locust_ext.plugin  # noqa: F401  (registers the suite's flags, --stages among them)
from locust_ext.shapes import StagesShape, shape_from_options
from tests.support import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"
PROTOCOLS = ("grpc", "websocket")
LEVELS = ("light", "medium", "heavy", "stress")
FIGURE = re.compile(r"(\d[\d,]*) (?:connections|users)")


def read_profile(name: str) -> Any:
    return parse_options(args=["--config", str(PROFILES / f"{name}.conf")])


def peak_users(options: Any) -> int:
    """The most users a profile asks for at once, across all workers."""
    shape = shape_from_options(options.stages, options.shape)
    if shape is None:
        assert options.run_time > 0 and options.spawn_rate > 0
        return int(options.num_users)
    assert isinstance(shape, StagesShape)
    return round(max(stage.target for stage in shape.parsed))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_protocol_has_four_profiles_of_growing_load(protocol: str) -> None:
    peaks = []
    for level in LEVELS:
        options = read_profile(f"{protocol}-{level}")
        assert options.locustfile == f"locustfiles/{protocol}.py"
        assert options.headless
        peaks.append(peak_users(options))
    assert peaks == sorted(peaks) and len(set(peaks)) == len(LEVELS)


@pytest.mark.parametrize("name", [f"{protocol}-{level}" for protocol in PROTOCOLS for level in LEVELS])
def test_a_figure_in_the_comment_is_the_total_peak(name: str) -> None:
    comment = (PROFILES / f"{name}.conf").read_text().splitlines()[0]
    figures = [int(figure.replace(",", "")) for figure in FIGURE.findall(comment)]
    assert figures in ([], [peak_users(read_profile(name))]), comment
    assert "per worker" not in comment


def test_no_stray_profile_files() -> None:
    expected = {f"{protocol}-{level}.conf" for protocol in PROTOCOLS for level in LEVELS}
    # The chat scenarios and their thresholds tables (tests/test_websocket/test_ws_deliveries_profiles.py).
    expected |= {
        f"chat-{scenario}.{ext}" for scenario in ("live-event", "flash-sale", "iot") for ext in ("conf", "yaml")
    }
    # The IM-gateway profile and its thresholds table (tests/test_websocket/test_ws_sessions_lifetime.py).
    expected |= {"websocket-im-gateway.conf", "websocket-im-gateway.yaml"}
    assert {path.name for path in PROFILES.iterdir()} == expected
