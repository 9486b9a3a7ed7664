"""The native gRPC transport: HTTP/2 and gRPC framing on gevent sockets, a ``grpc.Channel`` for generated stubs.

Modules, one job each: ``frames`` (HTTP/2 frame codec, sans-I/O), ``headers`` (HPACK blocks cached per method,
response blocks decoded once), ``status`` (a finished stream's gRPC outcome), ``connection`` (one HTTP/2
connection: reader greenlet, flow control, SETTINGS/PING/GOAWAY), ``calls`` and ``multicallables`` (what
stubs call), ``channel`` (connecting, TLS with ALPN h2, reconnecting, option checks).
"""

from locust_ext.grpc.native.channel import NativeChannel, UnsupportedOption, check_options, tls_context

__all__ = ["NativeChannel", "UnsupportedOption", "check_options", "tls_context"]
