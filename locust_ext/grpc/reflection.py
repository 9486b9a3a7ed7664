"""Method descriptors from the server's reflection service, fetched once per process and target.

``grpc.reflection.v1`` is asked first and ``grpc.reflection.v1alpha`` when the server does not implement v1
(the two share their messages field for field, so one set of message classes serves both). Reflection calls
carry the user's ``metadata`` and ``reflection_metadata`` and use the same channel settings (TLS) as the
calls; each lookup opens a short-lived channel, so nothing of it is left open (or inherited by a fork). They
are not recorded as load. All users of a process that reflect on the same target with the same settings
share one :class:`ReflectionCatalog`: a service's descriptors are fetched once, by the first user that needs
them, while the others wait.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from locust_ext.grpc.channels import ChannelSpec, open_channel
from locust_ext.grpc.descriptors import MethodCatalog
from locust_ext.grpc.errors import GrpcCallError, GrpcConfigError

__all__ = ["REFLECTION_SERVICES", "ReflectionCatalog", "reflection_catalog"]

#: Reflection services tried in this order; the first one the server implements is kept.
REFLECTION_SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")

Metadata = tuple[tuple[str, str], ...]


class ReflectionCatalog(MethodCatalog):
    """A :class:`MethodCatalog` filled on demand by server reflection; safe to share between users."""

    def __init__(self, spec: ChannelSpec, metadata: Metadata = (), timeout: float | None = 30.0) -> None:
        super().__init__(DescriptorPool(), (), "the server's reflection")
        self.spec = spec
        self.metadata = metadata
        self.timeout = timeout
        #: The reflection service the server answered on, once known.
        self.service_path: str | None = None
        self._listed: list[str] | None = None
        self._files: set[str] = set()
        self._lock = threading.RLock()

    def service_names(self) -> list[str]:
        """The services the server lists (fetched once)."""
        with self._lock:
            if self._listed is None:
                (response,) = self._exchange([rpb.ServerReflectionRequest(list_services="")])
                self._listed = sorted(service.name for service in response.list_services_response.service)
            return list(self._listed)

    def service(self, name: str) -> ServiceDescriptor:
        """The service ``name``, fetched with its file and that file's imports the first time it is asked for."""
        with self._lock:
            try:
                return self.pool.FindServiceByName(name)
            except KeyError:
                pass
            requests = [rpb.ServerReflectionRequest(file_containing_symbol=name)]
            if self._listed is None:
                requests.append(rpb.ServerReflectionRequest(list_services=""))
            responses = self._exchange(requests)
            if self._listed is None:
                self._listed = sorted(service.name for service in responses[1].list_services_response.service)
            found = responses[0]
            if found.HasField("error_response"):
                known = ", ".join(self._listed) or "none"
                raise GrpcConfigError(f"{self.where} does not know {name}; services: {known}")
            self._add(list(found.file_descriptor_response.file_descriptor_proto))
            return self.pool.FindServiceByName(name)

    def _add(self, serialized: Sequence[bytes]) -> None:
        """Add files (fetching imports the server left out) to the pool, each after its dependencies."""
        pending = {proto.name: proto for proto in map(descriptor_pb2.FileDescriptorProto.FromString, serialized)}
        while True:
            missing = sorted(
                {dep for proto in pending.values() for dep in proto.dependency} - self._files - set(pending)
            )
            if not missing:
                break
            responses = self._exchange([rpb.ServerReflectionRequest(file_by_filename=name) for name in missing])
            for name, response in zip(missing, responses, strict=True):
                if response.HasField("error_response"):
                    raise GrpcConfigError(f"{self.where} cannot supply {name}: {response.error_response.error_message}")
                for data in response.file_descriptor_response.file_descriptor_proto:
                    proto = descriptor_pb2.FileDescriptorProto.FromString(data)
                    pending.setdefault(proto.name, proto)

        def add(name: str) -> None:
            if name in self._files:
                return
            proto = pending[name]
            for dependency in proto.dependency:
                add(dependency)
            self.pool.AddSerializedFile(proto.SerializeToString())
            self._files.add(name)

        for name in list(pending):
            add(name)

    def _exchange(self, requests: list[rpb.ServerReflectionRequest]) -> list[rpb.ServerReflectionResponse]:
        """One reflection stream: send ``requests``, return one response each (v1 first, then v1alpha)."""
        services = (self.service_path,) if self.service_path else REFLECTION_SERVICES
        channel = open_channel(self.spec)
        try:
            for service in services:
                call = channel.stream_stream(
                    f"/{service}/ServerReflectionInfo",
                    request_serializer=rpb.ServerReflectionRequest.SerializeToString,
                    response_deserializer=rpb.ServerReflectionResponse.FromString,
                )
                try:
                    responses = list(call(iter(requests), metadata=self.metadata or None, timeout=self.timeout))
                except grpc.RpcError as error:
                    if error.code() is grpc.StatusCode.UNIMPLEMENTED and service != services[-1]:
                        continue
                    failure = GrpcCallError.from_rpc_error(error)
                    raise GrpcCallError(failure.code(), f"server reflection: {failure.details()}") from None
                self.service_path = service
                if len(responses) != len(requests):
                    raise GrpcCallError(
                        grpc.StatusCode.INTERNAL,
                        f"server reflection: {len(responses)} answers to {len(requests)} questions",
                    )
                return responses
        finally:
            channel.close()
        raise AssertionError("unreachable: the last reflection service either answers or raises")


_catalogs: dict[tuple[ChannelSpec, Metadata, float | None], ReflectionCatalog] = {}
_catalogs_lock = threading.Lock()


def reflection_catalog(spec: ChannelSpec, metadata: Metadata = (), timeout: float | None = 30.0) -> ReflectionCatalog:
    """The process's catalog for reflecting on ``spec``'s target with ``metadata`` (made on first use)."""
    key = (spec, tuple(metadata), timeout)
    with _catalogs_lock:
        catalog = _catalogs.get(key)
        if catalog is None:
            catalog = _catalogs[key] = ReflectionCatalog(spec, tuple(metadata), timeout)
        return catalog
