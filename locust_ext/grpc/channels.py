"""Opening gRPC channels for load: TLS credentials, options, and real per-user TCP connections.

grpc shares subchannels (TCP connections) between channels with the same target and options through a
process-wide pool, so "a channel per user" would silently become one connection for every user. Each channel
here asks for its own subchannel pool (``grpc.use_local_subchannel_pool``), so a channel is a connection.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import grpc

from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.target import GrpcTarget

__all__ = ["ChannelSpec", "SharedChannels", "open_channel", "tls_credentials"]

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
        if self.target.secure:
            self.credentials()


def tls_credentials(
    owner: str, root_certificates: str | None, client_certificate: str | None, client_key: str | None
) -> grpc.ChannelCredentials:
    """Credentials from PEM paths; raises GrpcConfigError naming ``owner``'s attribute and path when one is unusable."""
    if bool(client_certificate) != bool(client_key):
        raise GrpcConfigError(f"{owner}: client_certificate and client_key must be set together")

    def read(attribute: str, path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise GrpcConfigError(f"{owner}.{attribute} = {path!r}: cannot read: {exc.strerror or exc}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read("root_certificates", root_certificates),
        private_key=read("client_key", client_key),
        certificate_chain=read("client_certificate", client_certificate),
    )


def open_channel(spec: ChannelSpec) -> grpc.Channel:
    """A new channel with a TCP connection of its own."""
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
