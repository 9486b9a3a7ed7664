"""Locust plugin suite for gRPC and WebSocket load tests.

A locustfile imports what it uses (``from locust_ext import GrpcUser``); taking any name from here registers
the suite's flags and listeners with Locust (:mod:`locust_ext.plugin` lists everything that happens at import,
and why). The names are imported on first use, so ``import locust_ext.thresholds`` (a report tool) brings in
neither the users nor grpc, and registers nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust_ext.derived import register_derived
    from locust_ext.grpc import GrpcCallError, GrpcUser
    from locust_ext.run_gauges import publish_gauge
    from locust_ext.shapes import (
        ChurnShape,
        ExponentialRampShape,
        LinearRampShape,
        SpikeShape,
        StagesShape,
        SteppedRampShape,
        WaveShape,
    )
    from locust_ext.thresholds import ThresholdGate, graded_event, load_thresholds
    from locust_ext.websocket import DeliveryTracking, ReconnectPolicy, WebSocketUser

__all__: list[str] = [
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
]
__version__ = "0.1.0"

#: The module each public name comes from.
_HOMES: dict[str, str] = {
    "ChurnShape": "locust_ext.shapes",
    "ExponentialRampShape": "locust_ext.shapes",
    "LinearRampShape": "locust_ext.shapes",
    "SpikeShape": "locust_ext.shapes",
    "StagesShape": "locust_ext.shapes",
    "SteppedRampShape": "locust_ext.shapes",
    "WaveShape": "locust_ext.shapes",
    "GrpcCallError": "locust_ext.grpc",
    "GrpcUser": "locust_ext.grpc",
    "DeliveryTracking": "locust_ext.websocket",
    "ReconnectPolicy": "locust_ext.websocket",
    "WebSocketUser": "locust_ext.websocket",
    "ThresholdGate": "locust_ext.thresholds",
    "graded_event": "locust_ext.thresholds",
    "load_thresholds": "locust_ext.thresholds",
    "publish_gauge": "locust_ext.run_gauges",
    "register_derived": "locust_ext.derived",
}


def __getattr__(name: str) -> Any:
    """A public name, imported on first use; the first one registers the suite with Locust."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'locust_ext' has no attribute {name!r}")
    importlib.import_module("locust_ext.plugin")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
