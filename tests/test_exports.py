"""The public surface: exactly these names at the top level, and every public module declares __all__."""

from __future__ import annotations

import importlib
import pkgutil

import locust_ext

EXPECTED_TOP_LEVEL = {
    "ChurnShape",
    "ExponentialRampShape",
    "GrpcCallError",
    "GrpcUser",
    "LinearRampShape",
    "ReconnectPolicy",
    "SpikeShape",
    "StagesShape",
    "SteppedRampShape",
    "ThresholdGate",
    "WaveShape",
    "WebSocketUser",
    "graded_event",
    "load_thresholds",
    "publish_gauge",
    "register_derived",
}


def test_top_level_exports_are_exactly_the_public_api() -> None:
    assert set(locust_ext.__all__) == EXPECTED_TOP_LEVEL
    for name in locust_ext.__all__:
        assert getattr(locust_ext, name) is not None


def test_every_public_module_declares_all_and_its_names_exist() -> None:
    for module_info in pkgutil.walk_packages(locust_ext.__path__, prefix="locust_ext."):
        if any(part.startswith("_") for part in module_info.name.split(".")):
            continue
        module = importlib.import_module(module_info.name)
        assert hasattr(module, "__all__"), f"{module_info.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{module_info.name}.__all__ names {name}, which does not exist"
