"""Calls without generated code: any method of a server that offers reflection, by name, with dict/JSON messages.

    self.client.call("loadtest.v1.Hello/SayHello", {"name": "a"})

Descriptors are fetched once per user through server reflection (on the plain channel, so the lookups are not
recorded as load); the calls themselves go through the recording channel and are recorded exactly like stub
calls. Responses are protobuf messages of the server's types (``google.protobuf.json_format.MessageToDict``
turns one into a dict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.recording import RecordedStream, RecordingChannel

__all__ = ["ReflectionClient", "split_method"]

Message = Mapping[str, Any] | str


def split_method(method: str) -> tuple[str, str]:
    """("pkg.Service", "Method") from ``pkg.Service/Method``, ``/pkg.Service/Method`` or ``pkg.Service.Method``."""
    text = method.strip().lstrip("/")
    service, sep, name = text.rpartition("/")
    if not sep:
        service, sep, name = text.rpartition(".")
    if not sep or not service or not name:
        raise GrpcConfigError(f"method {method!r}: expected 'package.Service/Method'")
    return service, name


class ReflectionClient:
    """Dynamic calls for one user: resolves methods by reflection, converts dict/JSON to messages, records calls."""

    def __init__(self, channel: RecordingChannel, reflection_channel: grpc.Channel) -> None:
        self._channel = channel
        self._pool = DescriptorPool(ProtoReflectionDescriptorDatabase(reflection_channel))
        self._callables: dict[str, tuple[MethodDescriptor, Any, type[Any]]] = {}

    def _resolve(self, method: str) -> tuple[MethodDescriptor, Any, type[Any]]:
        resolved = self._callables.get(method)
        if resolved is not None:
            return resolved
        service_name, method_name = split_method(method)
        try:
            service = self._pool.FindServiceByName(service_name)
        except KeyError:
            raise GrpcConfigError(f"method {method!r}: the server's reflection does not know {service_name}") from None
        descriptor = service.methods_by_name.get(method_name)
        if descriptor is None:
            raise GrpcConfigError(f"method {method!r}: {service_name} has no method {method_name}")
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        path = f"/{service_name}/{method_name}"
        kind = {
            (False, False): self._channel.unary_unary,
            (False, True): self._channel.unary_stream,
            (True, False): self._channel.stream_unary,
            (True, True): self._channel.stream_stream,
        }[(descriptor.client_streaming, descriptor.server_streaming)]
        multicallable = kind(
            path, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString
        )
        resolved = self._callables[method] = (descriptor, multicallable, request_class)
        return resolved

    def call(self, method: str, message: Message | Iterable[Message] = (), **call_options: Any) -> Any:
        """Call ``method`` with a dict or JSON message (an iterable of them for client/bidi streams).

        Returns the response message, or a :class:`RecordedStream` of them for server/bidi streams.
        ``call_options`` are the usual ``timeout=``, ``metadata=``, ``wait_for_ready=``, ``compression=``.
        A failed call raises ``GrpcCallError`` after being recorded, as stub calls do.
        """
        descriptor, multicallable, request_class = self._resolve(method)
        if descriptor.client_streaming:
            if isinstance(message, (str, Mapping)):
                raise GrpcConfigError(f"method {method!r} is client-streaming: pass an iterable of messages")
            requests: Any = (_to_message(request_class, item) for item in message)
            return multicallable(requests, **call_options)
        if not isinstance(message, (str, Mapping)):
            raise GrpcConfigError(f"method {method!r} takes one message: pass a dict or a JSON string")
        return multicallable(_to_message(request_class, message), **call_options)

    def stream(self, method: str, message: Message | Iterable[Message] = (), **call_options: Any) -> RecordedStream:
        """Like :meth:`call` for a server-streaming or bidi method; typed as the stream it returns."""
        stream: RecordedStream = self.call(method, message, **call_options)
        return stream


def _to_message(message_class: type[Any], message: Message) -> Any:
    if isinstance(message, str):
        try:
            return json_format.Parse(message, message_class())
        except json_format.ParseError as exc:
            raise GrpcConfigError(f"{message_class.DESCRIPTOR.full_name}: bad JSON message: {exc}") from None
    try:
        return json_format.ParseDict(dict(message), message_class())
    except json_format.ParseError as exc:
        raise GrpcConfigError(f"{message_class.DESCRIPTOR.full_name}: bad message: {exc}") from None
