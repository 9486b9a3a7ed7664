"""The public surface: exactly these names at the top level and in each feature package, every public module
declares __all__, and every feature's Locust wiring is a ``locust_hooks`` module that the plugin registers."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import locust_ext
from locust_ext import plugin

EXPECTED_TOP_LEVEL = {
    "ChurnShape",
    "DeliveryTracking",
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

#: Each feature package's public names: what its ``__init__`` re-exports, and nothing else.
EXPECTED_PACKAGES = {
    "locust_ext.grpc": {
        "DERIVED_REQUEST_TYPES",
        "REQUEST_TYPE",
        "GrpcCallError",
        "GrpcConfigError",
        "GrpcUser",
        "GrpcUserError",
        "RecordedStream",
    },
    "locust_ext.websocket": {
        "ConnectionCounts",
        "DeliveryTracking",
        "ReconnectPolicy",
        "WebSocketConfigError",
        "WebSocketFailure",
        "WebSocketSession",
        "WebSocketUser",
        "WebSocketUserError",
    },
    "locust_ext.statsd": {"MirrorConfig", "StatsdMirror"},
    "locust_ext.thresholds": {
        "SCHEMA",
        "MetricResult",
        "Observation",
        "ThresholdGate",
        "ThresholdsError",
        "ThresholdsFileError",
        "ThresholdsSpec",
        "Verdict",
        "evaluate",
        "graded_event",
        "load_thresholds",
        "parse_thresholds",
        "render_report",
    },
    "locust_ext.shapes": {
        "SHAPES_BY_NAME",
        "ChurnShape",
        "ExponentialRampShape",
        "LinearRampShape",
        "ShapeError",
        "SpikeShape",
        "Stage",
        "StagesShape",
        "SteppedRampShape",
        "SuiteShape",
        "WaveShape",
        "parse_stages",
        "shape_from_options",
    },
    "locust_ext.iterations": {
        "IterationLimit",
        "OpenModel",
        "arrival_offsets",
        "begin_iteration",
        "correct_request_events",
        "end_iteration",
    },
}

#: Wiring, never public API: it belongs in ``locust_hooks`` modules, which the plugin registers.
WIRING = {"add_arguments", "on_init"}


def test_top_level_exports_are_exactly_the_public_api() -> None:
    assert set(locust_ext.__all__) == EXPECTED_TOP_LEVEL
    for name in locust_ext.__all__:
        assert getattr(locust_ext, name) is not None


@pytest.mark.parametrize("package", sorted(EXPECTED_PACKAGES))
def test_each_feature_package_exports_exactly_its_public_api(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED_PACKAGES[package]
    assert not WIRING & set(module.__all__)


def test_every_public_module_declares_all_and_its_names_exist() -> None:
    for module_info in pkgutil.walk_packages(locust_ext.__path__, prefix="locust_ext."):
        if any(part.startswith("_") for part in module_info.name.split(".")):
            continue
        module = importlib.import_module(module_info.name)
        assert hasattr(module, "__all__"), f"{module_info.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{module_info.name}.__all__ names {name}, which does not exist"


def test_the_plugin_registers_every_locust_hooks_module_and_only_they_offer_the_wiring() -> None:
    hooks = set()
    for module_info in pkgutil.walk_packages(locust_ext.__path__, prefix="locust_ext."):
        if module_info.name == "locust_ext.__main__":
            continue
        module = importlib.import_module(module_info.name)
        offers = set(vars(module)) >= WIRING
        if module_info.name.endswith(".locust_hooks"):
            assert offers, f"{module_info.name} lacks add_arguments/on_init"
            hooks.add(module_info.name)
        elif module_info.name.split(".")[1] != "command":  # the zero-code command's own parser, not Locust's
            assert not offers, f"{module_info.name} wires itself; move add_arguments/on_init to a locust_hooks module"
    assert set(plugin.FEATURES) == hooks
