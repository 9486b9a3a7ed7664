"""Opening gRPC channels for load: the transport, TLS credentials, options, and real per-user TCP connections.

Two transports open the channel: ``"grpcio"`` (grpc's own, under gevent) and ``"native"`` (HTTP/2 on gevent
sockets, :mod:`locust_ext.grpc.native`). A user class picks one with ``GrpcUser.transport``; otherwise the run's
choice applies (``--grpc-transport`` / ``LOCUST_GRPC_TRANSPORT``, default ``"native"``: it passes the whole
conformance suite, tests/test_grpc/test_grpc_native_*.py, and GrpcUser's own tests on both transports).

grpc shares subchannels (TCP connections) between channels with the same target and options through a
process-wide pool, so "a channel per user" would silently become one connection for every user. Each grpcio
channel here asks for its own subchannel pool (``grpc.use_local_subchannel_pool``), so a channel is a
connection; a native channel always is one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import grpc

from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.target import GrpcTarget

__all__ = [
    "DEFAULT_TRANSPORT",
    "TRANSPORTS",
    "ChannelSpec",
    "SharedChannels",
    "open_channel",
    "run_transport",
    "set_run_transport",
    "tls_credentials",
]

#: The gRPC transports a channel can be opened with.
TRANSPORTS = ("grpcio", "native")
DEFAULT_TRANSPORT = "native"
_run_transport: str | None = None


def set_run_transport(transport: str | None) -> None:
    """The run-wide transport (``--grpc-transport``), for user classes that do not set ``transport``."""
    global _run_transport
    _run_transport = transport


def run_transport() -> str:
    """The run's transport: the flag once Locust parsed it, else ``LOCUST_GRPC_TRANSPORT``, else native."""
    return _run_transport or os.environ.get("LOCUST_GRPC_TRANSPORT") or DEFAULT_TRANSPORT


#: Makes grpc give this channel subchannels of its own instead of sharing the process-wide pool.
OWN_CONNECTION_OPTION = ("grpc.use_local_subchannel_pool", 1)


@dataclass(frozen=True)
class ChannelSpec:
    """Everything needed to open an equivalent channel; hashable, so shared pools can be keyed by it."""

    target: GrpcTarget
    options: tuple[tuple[str, Any], ...] = ()
    compression: grpc.Compression | None = None
    root_certificates: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    server_name_override: str | None = None
    transport: str = DEFAULT_TRANSPORT
    owner: str = field(default="GrpcUser", compare=False)

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials from the configured PEM files; mTLS when a client certificate is given."""
        return tls_credentials(self.owner, self.root_certificates, self.client_certificate, self.client_key)

    def channel_options(self) -> list[tuple[str, Any]]:
        options = [OWN_CONNECTION_OPTION, *self.options]
        if self.server_name_override:
            options.append(("grpc.ssl_target_name_override", self.server_name_override))
        return options

    def validate(self) -> None:
        """Fail now, with the attribute and path, rather than at the first call."""
        tls_files = (self.root_certificates, self.client_certificate, self.client_key, self.server_name_override)
        if any(tls_files) and not self.target.secure:
            raise GrpcConfigError(
                f"{self.owner}: TLS settings are set but host {self.target.address!r} is plaintext; use grpcs://"
            )
        if self.transport not in TRANSPORTS:
            raise GrpcConfigError(
                f"{self.owner}: transport {self.transport!r} is not one of {', '.join(map(repr, TRANSPORTS))}"
            )
        if self.transport == "native":
            from locust_ext.grpc.native import UnsupportedOption, check_options

            try:
                check_options(self.channel_options(), self.compression)
            except UnsupportedOption as exc:
                raise GrpcConfigError(f"{self.owner}: {exc}") from None
        if self.target.secure:
            self.credentials()


def tls_credentials(
    owner: str, root_certificates: str | None, client_certificate: str | None, client_key: str | None
) -> grpc.ChannelCredentials:
    """Credentials from PEM paths; raises GrpcConfigError naming ``owner``'s attribute and path when one is unusable."""
    root, key, chain = _tls_files(owner, root_certificates, client_certificate, client_key)
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def _tls_files(
    owner: str, root_certificates: str | None, client_certificate: str | None, client_key: str | None
) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(root certificates, client key, client chain) as PEM bytes, each None when not configured."""
    if bool(client_certificate) != bool(client_key):
        raise GrpcConfigError(f"{owner}: client_certificate and client_key must be set together")

    def read(attribute: str, path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise GrpcConfigError(f"{owner}.{attribute} = {path!r}: cannot read: {exc.strerror or exc}") from None

    return (
        read("root_certificates", root_certificates),
        read("client_key", client_key),
        read("client_certificate", client_certificate),
    )


def _open_native(spec: ChannelSpec) -> grpc.Channel:
    from locust_ext.grpc.native import NativeChannel, tls_context

    tls = None
    if spec.target.secure:
        tls = tls_context(*_tls_files(spec.owner, spec.root_certificates, spec.client_certificate, spec.client_key))
    return NativeChannel(spec.target.address, tls=tls, options=spec.channel_options(), compression=spec.compression)


def open_channel(spec: ChannelSpec) -> grpc.Channel:
    """A new channel with a TCP connection of its own, on the spec's transport."""
    if spec.transport == "native":
        return _open_native(spec)
    options: Sequence[tuple[str, Any]] = spec.channel_options()
    if spec.target.secure:
        return grpc.secure_channel(spec.target.address, spec.credentials(), options, spec.compression)
    return grpc.insecure_channel(spec.target.address, options, spec.compression)


class SharedChannels:
    """A process-wide pool of N channels per spec, handed out round-robin and closed with their last user."""

    _lock = threading.Lock()
    _pools: ClassVar[dict[tuple[ChannelSpec, int], SharedChannels]] = {}

    def __init__(self, spec: ChannelSpec, size: int) -> None:
        self._key = (spec, size)
        self._channels = [open_channel(spec) for _ in range(size)]
        self._next = 0
        self._users = 0

    @classmethod
    def acquire(cls, spec: ChannelSpec, size: int) -> tuple[SharedChannels, grpc.Channel]:
        """Join (or create) the pool for ``spec`` and take its next channel."""
        with cls._lock:
            pool = cls._pools.get((spec, size))
            if pool is None:
                pool = cls._pools[(spec, size)] = cls(spec, size)
            pool._users += 1
            channel = pool._channels[pool._next % size]
            pool._next += 1
            return pool, channel

    def release(self) -> None:
        """Leave the pool; the last user to leave closes its channels."""
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            del self._pools[self._key]
        for channel in self._channels:
            channel.close()
