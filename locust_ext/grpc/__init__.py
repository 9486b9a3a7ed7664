"""gRPC support for Locust: GrpcUser, its recording channel and call errors.

Importing this package sets up grpc's gevent integration, once, before any channel exists.
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
