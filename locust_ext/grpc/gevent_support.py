"""grpc's gevent integration, set up once per process before any channel exists.

Locust patches the standard library with gevent; grpc's sync API must then run its completion
queue on gevent too, or a blocking call (or a request iterator consumed by grpc) stalls every greenlet.
"""

from __future__ import annotations

import locust  # noqa: F401  (patches the standard library with gevent before grpc opens sockets)

__all__ = ["init_grpc_gevent"]

_initialised = False


def init_grpc_gevent() -> None:
    """Switch grpc to gevent; later calls do nothing."""
    global _initialised
    if _initialised:
        return
    import grpc.experimental.gevent

    grpc.experimental.gevent.init_gevent()
    _initialised = True
