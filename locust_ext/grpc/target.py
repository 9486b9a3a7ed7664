"""Where a GrpcUser connects: ``host:port``, ``grpc://host:port`` (plaintext) or ``grpcs://host:port`` (TLS)."""

from __future__ import annotations

from dataclasses import dataclass

from locust_ext.grpc.errors import GrpcConfigError

__all__ = ["GrpcTarget", "parse_target"]


@dataclass(frozen=True)
class GrpcTarget:
    """A parsed host: the address grpc dials and whether to use TLS."""

    address: str
    secure: bool


def parse_target(host: str | None, *, owner: str = "GrpcUser") -> GrpcTarget:
    """Parse a Locust host for gRPC; raise GrpcConfigError saying what is wrong and how to fix it."""
    if not host:
        raise GrpcConfigError(
            f'{owner}: no host; set `host = "127.0.0.1:50051"` on the class or pass --host 127.0.0.1:50051'
        )
    text = host.strip()
    secure = False
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme not in ("grpc", "grpcs"):
            raise GrpcConfigError(f"{owner}: host {host!r}: scheme must be grpc:// or grpcs://, not {scheme}://")
        secure = scheme == "grpcs"
    text = text.rstrip("/")
    if "/" in text:
        raise GrpcConfigError(f"{owner}: host {host!r}: a gRPC target has no path")
    name, sep, port = text.rpartition(":")
    if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise GrpcConfigError(f"{owner}: host {host!r}: expected host:port, e.g. 127.0.0.1:50051")
    if ":" in name and not name.startswith("["):
        raise GrpcConfigError(f"{owner}: host {host!r}: put an IPv6 address in brackets, e.g. [::1]:50051")
    return GrpcTarget(address=text, secure=secure)
