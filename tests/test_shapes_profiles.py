"""The profiles are valid Locust config files: Locust's own parser (with the suite's flags registered) reads
each one to the intended users, spawn rate, duration or stages, and the stages build a shape."""

from __future__ import annotations

from typing import Any

import pytest
from locust.argument_parser import parse_options

import locust_ext  # noqa: F401  (registers the suite's flags, --stages among them)
from locust_ext.shapes import StagesShape, shape_from_options
from tests.support import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"
LEVELS = ("light", "medium", "heavy", "stress")


def read_profile(name: str) -> Any:
    return parse_options(args=["--config", str(PROFILES / f"{name}.conf")])


@pytest.mark.parametrize("protocol", ["grpc", "websocket"])
def test_each_protocol_has_four_profiles_of_growing_load(protocol: str) -> None:
    peaks = []
    for level in LEVELS:
        options = read_profile(f"{protocol}-{level}")
        assert options.locustfile == f"locustfiles/{protocol}.py"
        assert options.headless
        shape = shape_from_options(options.stages, options.shape)
        if shape is None:
            assert options.run_time > 0 and options.spawn_rate > 0
            peaks.append(options.num_users)
        else:
            assert isinstance(shape, StagesShape)
            peaks.append(max(stage.target for stage in shape.parsed))
    assert peaks == sorted(peaks) and len(set(peaks)) == len(LEVELS)


def test_no_stray_profile_files() -> None:
    expected = {f"{protocol}-{level}.conf" for protocol in ("grpc", "websocket") for level in LEVELS}
    assert {path.name for path in PROFILES.iterdir()} == expected
