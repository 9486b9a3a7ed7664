"""gRPC support for Locust: GrpcUser, its recording channel and call errors.

Importing this package sets up grpc's gevent integration, once, before any grpc object exists (every gRPC
module of the suite is imported through here), and registers the suite with Locust, so a locustfile that
imports only this package gets the suite's flags and checks: the two import-time effects
:mod:`locust_ext.plugin` lists.
"""

from locust_ext.grpc.gevent_support import init_grpc_gevent

init_grpc_gevent()

from locust_ext.grpc.errors import GrpcCallError, GrpcConfigError, GrpcUserError  # noqa: E402
from locust_ext.grpc.recording import DERIVED_REQUEST_TYPES, REQUEST_TYPE, RecordedStream  # noqa: E402
from locust_ext.grpc.user import GrpcUser  # noqa: E402

__all__ = [
    "DERIVED_REQUEST_TYPES",
    "REQUEST_TYPE",
    "GrpcCallError",
    "GrpcConfigError",
    "GrpcUser",
    "GrpcUserError",
    "RecordedStream",
]

from locust_ext import plugin as _plugin  # noqa: E402, F401  (registers the suite with Locust)
