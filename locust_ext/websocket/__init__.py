"""WebSocketUser: correlated round trips, pushes, pings, reconnects and connection gauges for WebSocket load.

Configured with typed class attributes on the user (see :class:`WebSocketUser`); the run-wide flag and the
Locust wiring are in ``locust_hooks``. Importing this package registers the suite with Locust, so a
locustfile that imports only this package gets the suite's flags and checks (see :mod:`locust_ext.plugin`).
"""

from locust_ext.websocket.deliveries import DeliveryTracking
from locust_ext.websocket.errors import WebSocketConfigError, WebSocketFailure, WebSocketUserError
from locust_ext.websocket.gauges import ConnectionCounts
from locust_ext.websocket.reconnect import ReconnectPolicy
from locust_ext.websocket.session import WebSocketSession
from locust_ext.websocket.user import WebSocketUser

__all__ = [
    "ConnectionCounts",
    "DeliveryTracking",
    "ReconnectPolicy",
    "WebSocketConfigError",
    "WebSocketFailure",
    "WebSocketSession",
    "WebSocketUser",
    "WebSocketUserError",
]

from locust_ext import plugin as _plugin  # noqa: F401  (registers the suite with Locust)
