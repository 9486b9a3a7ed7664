"""Locust plugin suite for gRPC and WebSocket load tests.

Importing this package registers the suite's command-line flags and listeners with Locust.
"""

from locust_ext import plugin
from locust_ext.statsd import publish_gauge

__all__: list[str] = ["publish_gauge"]
__version__ = "0.1.0"

plugin.register()
