"""Locust plugin suite for gRPC and WebSocket load tests.

Importing this package registers the suite's command-line flags and listeners with Locust.
"""

from locust_ext import plugin
from locust_ext.derived import register_derived
from locust_ext.grpc import GrpcCallError, GrpcUser
from locust_ext.shapes import (
    ChurnShape,
    ExponentialRampShape,
    LinearRampShape,
    SpikeShape,
    StagesShape,
    SteppedRampShape,
    WaveShape,
)
from locust_ext.statsd import publish_gauge
from locust_ext.thresholds import ThresholdGate, graded_event, load_thresholds
from locust_ext.websocket import ReconnectPolicy, WebSocketUser

__all__: list[str] = [
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
]
__version__ = "0.1.0"

plugin.register()
