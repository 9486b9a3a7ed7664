"""GrpcUser: a Locust user whose ``self.stub`` calls are recorded as Locust requests, one event per RPC.

A failed RPC is recorded as a failure and raised into the task as ``GrpcCallError`` (a ``grpc.RpcError``),
as a real client would see it; left unhandled it ends the task quietly (it is a Locust ``RescheduleTask``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import grpc
from gevent import Greenlet
from gevent.pool import Group
from locust import User
from locust.env import Environment

from locust_ext.grpc.channels import ChannelSpec, SharedChannels, open_channel, run_transport, tls_credentials
from locust_ext.grpc.descriptors import MethodCatalog, proto_catalog
from locust_ext.grpc.dynamic import DynamicClient
from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.recording import CallRecorder, RecordingChannel, SendTime, sent_at_unix_nanos
from locust_ext.grpc.reflection import reflection_catalog
from locust_ext.grpc.target import parse_target
from locust_ext.host_check import HostCheckedUser
from locust_ext.stopping import CallsInFlight, GracefulStopUser

__all__ = ["GrpcUser", "grpc_user_classes"]


class GrpcUser(HostCheckedUser, GracefulStopUser):
    """Base class for gRPC users: set ``host`` and ``stub_class``, call ``self.stub`` in tasks.

    ``self.channel`` is the recording channel (build more stubs on it); ``self.raw_channel`` the plain one.
    """

    abstract = True

    #: Generated stub class (``svc_pb2_grpc.FooStub``); ``self.stub`` is an instance bound to ``self.channel``.
    stub_class: ClassVar[type | None] = None

    # Deadlines
    #: Default deadline of every call, in seconds; a call's own ``timeout=`` wins. None: no deadline.
    timeout: ClassVar[float | None] = 30.0

    #: After an UNAVAILABLE failure the user pauses (initial, cap) seconds, doubling, so a dead server is not
    #: hammered in a hot loop; None disables it. The pause is not counted in any response time.
    unavailable_backoff: ClassVar[tuple[float, float] | None] = (0.05, 1.0)

    # Metadata
    #: Sent with every call, before the call's own metadata (e.g. ``(("authorization", "Bearer x"),)``).
    metadata: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Sent on server reflection calls only, after ``metadata`` (a token the reflection service wants).
    reflection_metadata: ClassVar[tuple[tuple[str, str], ...]] = ()

    # Descriptors for ``self.client`` (calls by name); none of these set: server reflection
    #: ``.proto`` files compiled at start-up (no protoc binary, no generated code), e.g. ``("kv.proto",)``.
    proto_files: ClassVar[Sequence[str]] = ()
    #: Import paths for ``proto_files``; the well-known types (``google/protobuf/*.proto``) are always there.
    proto_paths: ClassVar[Sequence[str]] = ()
    #: A ``FileDescriptorSet`` file (``protoc --descriptor_set_out --include_imports``).
    protoset: ClassVar[str | None] = None

    # Channel
    #: ``"native"`` (HTTP/2 on gevent sockets, several times cheaper per call; refuses at start-up, by name, channel
    #: options it does not implement) or ``"grpcio"`` (grpc's own channel); None: the run's choice,
    #: ``--grpc-transport`` / ``LOCUST_GRPC_TRANSPORT`` (default ``"native"``).
    transport: ClassVar[str | None] = None
    #: grpc channel arguments, e.g. ``(("grpc.max_receive_message_length", 64 << 20),)``; keepalive lives here too.
    channel_options: ClassVar[tuple[tuple[str, Any], ...]] = ()
    #: Channel-wide compression (``grpc.Compression.Gzip``); None for none.
    compression: ClassVar[grpc.Compression | None] = None
    #: None: every user has its own channel and TCP connection. N: the users of a process share N channels.
    channel_pool_size: ClassVar[int | None] = None

    # TLS (used with a grpcs:// host); paths to PEM files
    root_certificates: ClassVar[str | None] = None
    client_certificate: ClassVar[str | None] = None
    client_key: ClassVar[str | None] = None
    #: Name to verify the server certificate against, when it differs from the host dialled.
    server_name_override: ClassVar[str | None] = None

    # Streams
    #: Extracts a message's send time (Unix seconds) for per-message latency; None turns those events off.
    stream_send_time: ClassVar[SendTime | None] = staticmethod(sent_at_unix_nanos)
    #: Record a round trip per bidi reply (assumes one reply per request, in order).
    bidi_round_trips: ClassVar[bool] = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        spec = self.channel_spec(environment.host or self.host)
        self._recorder = CallRecorder(
            environment.events.request,
            context=self.context,
            timeout=self.timeout,
            metadata=self.metadata,
            send_time=cast(SendTime | None, self.stream_send_time),  # staticmethod: no self bound
            bidi_round_trips=self.bidi_round_trips,
            unavailable_backoff=self.unavailable_backoff,
        )
        self._shared: SharedChannels | None = None
        if self.channel_pool_size:
            self._shared, self.raw_channel = SharedChannels.acquire(spec, self.channel_pool_size)
        else:
            self.raw_channel = open_channel(spec)
        self.channel = RecordingChannel(self.raw_channel, self._recorder)
        self.stub: Any = self.stub_class(self.channel) if self.stub_class is not None else None
        self._spec = spec
        self._client: DynamicClient | None = None
        self._closed = False

    @property
    def client(self) -> DynamicClient:
        """Calls by method name with dict/JSON messages (no generated code needed): descriptors from
        ``proto_files`` / ``protoset`` when set, else from server reflection, shared by the process's users."""
        if self._client is None:
            self._client = DynamicClient(self.channel, self.method_catalog(self._spec))
        return self._client

    @classmethod
    def method_catalog(cls, spec: ChannelSpec) -> MethodCatalog:
        """The process-wide catalog this class finds methods in for ``spec``'s target (built on first use)."""
        if cls.proto_files or cls.protoset:
            return cls.proto_catalog()
        return reflection_catalog(spec, (*cls.metadata, *cls.reflection_metadata), cls.timeout)

    @classmethod
    def proto_catalog(cls) -> MethodCatalog:
        """The catalog of ``proto_files`` and ``protoset``, compiled once per process."""
        owner = f"{cls.__name__}.{'proto_files' if cls.proto_files else 'protoset'}"
        return proto_catalog(tuple(cls.proto_files), tuple(cls.proto_paths), cls.protoset, owner=owner)

    @classmethod
    def channel_spec(cls, host: str | None) -> ChannelSpec:
        """The channel this class opens for ``host``; raises GrpcConfigError naming what is wrong."""
        spec = ChannelSpec(
            target=parse_target(host, owner=cls.__name__),
            options=tuple(cls.channel_options),
            compression=cls.compression,
            root_certificates=cls.root_certificates,
            client_certificate=cls.client_certificate,
            client_key=cls.client_key,
            server_name_override=cls.server_name_override,
            transport=cls.transport or run_transport(),
            owner=cls.__name__,
        )
        spec.validate()
        return spec

    @classmethod
    def check_settings(cls) -> None:
        """What does not depend on the host: the pool size, the TLS files are there, readable and paired, and
        ``proto_files`` / ``protoset`` compile (once per process; the users share the result)."""
        if cls.channel_pool_size is not None and cls.channel_pool_size < 1:
            raise GrpcConfigError(f"{cls.__name__}.channel_pool_size must be None or >= 1, not {cls.channel_pool_size}")
        tls_credentials(cls.__name__, cls.root_certificates, cls.client_certificate, cls.client_key)
        if isinstance(cls.proto_files, str) or isinstance(cls.proto_paths, str):
            raise GrpcConfigError(f"{cls.__name__}.proto_files and proto_paths are lists of paths, not one string")
        if cls.proto_files or cls.protoset:
            cls.proto_catalog()

    @classmethod
    def check_host(cls, host: str | None) -> None:
        """The class can open channels to ``host``: a gRPC target, TLS settings only with ``grpcs://``."""
        cls.channel_spec(host)
        cls.check_settings()

    @contextmanager
    def call_name(self, name: str) -> Iterator[None]:
        """Record the calls made inside the block under ``name`` instead of their method path."""
        previous = self._recorder.name_override
        self._recorder.name_override = name
        try:
            yield
        finally:
            self._recorder.name_override = previous

    @property
    def calls_in_flight(self) -> CallsInFlight:
        """Calls awaiting their outcome; a stop waits for them (``stop_grace``) before any kill."""
        return self._recorder.in_flight

    def start(self, group: Group) -> Greenlet:
        greenlet = super().start(group)
        # However the user ends (task done, graceful stop, kill), its streams are settled and its channel closed.
        greenlet.link(self._close)
        return greenlet

    def _close(self, _greenlet: Any = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._recorder.cancel_open_streams("cancelled: the user stopped")
        if self._shared is not None:
            self._shared.release()
        else:
            self.raw_channel.close()


def grpc_user_classes(user_classes: list[type[User]]) -> list[type[GrpcUser]]:
    """The GrpcUser subclasses among a run's user classes."""
    return [cls for cls in user_classes if isinstance(cls, type) and issubclass(cls, GrpcUser)]
