"""Calls without generated code: any method by name, with dict/JSON messages.

    self.client.call("loadtest.v1.Hello/SayHello", {"name": "a"})

Method descriptors come from a :class:`~locust_ext.grpc.descriptors.MethodCatalog`: ``.proto`` files or a
protoset compiled at start-up, or the server's reflection (see :mod:`locust_ext.grpc.reflection`), shared by
every user of the process. The calls go through the user's recording channel and are recorded exactly like stub
calls. Responses are protobuf messages of the catalog's types (``google.protobuf.json_format.MessageToDict``
turns one into a dict).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message as ProtoMessage

from locust_ext.grpc.descriptors import MethodCatalog
from locust_ext.grpc.errors import GrpcCallError, GrpcConfigError
from locust_ext.grpc.recording import RecordedStream, RecordingChannel

__all__ = ["DynamicClient", "Message", "to_message"]

#: A request: a dict, JSON text, or a message of the method's input type (sent as it is).
Message = Mapping[str, Any] | str | ProtoMessage


class DynamicClient:
    """Dynamic calls for one user: methods from a shared catalog, dict/JSON converted to messages, calls recorded.

    When the catalog cannot be read (server reflection failed: unavailable, refused), the call is recorded as a
    failure under its method name and raised as :class:`GrpcCallError`, like a failed call; a method the catalog
    does not have raises :class:`GrpcConfigError` naming the services (or methods) it has.
    """

    def __init__(self, channel: RecordingChannel, catalog: MethodCatalog) -> None:
        self._channel = channel
        self.catalog = catalog
        self._callables: dict[str, tuple[MethodDescriptor, Any, type[Any]]] = {}

    def _resolve(self, method: str) -> tuple[MethodDescriptor, Any, type[Any]]:
        resolved = self._callables.get(method)
        if resolved is not None:
            return resolved
        started = time.perf_counter()
        try:
            descriptor = self.catalog.method(method)
        except GrpcCallError as failure:  # reflection itself failed: the user's call fails with it
            recorder = self._channel.recorder
            path = "/" + method.strip().lstrip("/")
            recorder.fire(recorder.name_override or path, started, 0, failure)
            recorder.pause_if_unavailable(failure)
            raise
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        path = f"/{descriptor.containing_service.full_name}/{descriptor.name}"
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

    def method(self, method: str) -> MethodDescriptor:
        """The descriptor of ``method`` (``pkg.Service/Method``): its kind, input and output types."""
        return self._resolve(method)[0]

    def call(self, method: str, message: Message | Iterable[Message] = (), **call_options: Any) -> Any:
        """Call ``method`` with a dict, JSON or protobuf message (an iterable of them for client/bidi streams).

        Returns the response message, or a :class:`RecordedStream` of them for server/bidi streams.
        ``call_options`` are the usual ``timeout=``, ``metadata=``, ``wait_for_ready=``, ``compression=``.
        A failed call raises ``GrpcCallError`` after being recorded, as stub calls do.
        """
        descriptor, multicallable, request_class = self._resolve(method)
        pool = self.catalog.pool
        if descriptor.client_streaming:
            if isinstance(message, (str, Mapping, ProtoMessage)):
                raise GrpcConfigError(f"method {method!r} is client-streaming: pass an iterable of messages")
            requests: Any = (to_message(request_class, item, pool) for item in message)
            return multicallable(requests, **call_options)
        if not isinstance(message, (str, Mapping, ProtoMessage)):
            raise GrpcConfigError(f"method {method!r} takes one message: pass a dict, a JSON string or a message")
        return multicallable(to_message(request_class, message, pool), **call_options)

    def stream(self, method: str, message: Message | Iterable[Message] = (), **call_options: Any) -> RecordedStream:
        """Like :meth:`call` for a server-streaming or bidi method; typed as the stream it returns."""
        stream: RecordedStream = self.call(method, message, **call_options)
        return stream


def to_message(message_class: type[Any], message: Message, pool: DescriptorPool | None = None) -> Any:
    """A ``message_class`` from a dict or JSON text (field names checked against its descriptor); one already of
    that type as it is."""
    if isinstance(message, message_class):
        return message
    if isinstance(message, ProtoMessage):
        raise GrpcConfigError(
            f"{message_class.DESCRIPTOR.full_name}: got a {message.DESCRIPTOR.full_name} message instead"
        )
    if isinstance(message, str):
        try:
            return json_format.Parse(message, message_class(), descriptor_pool=pool)
        except json_format.ParseError as exc:
            raise GrpcConfigError(f"{message_class.DESCRIPTOR.full_name}: bad JSON message: {exc}") from None
    try:
        return json_format.ParseDict(dict(message), message_class(), descriptor_pool=pool)
    except json_format.ParseError as exc:
        raise GrpcConfigError(f"{message_class.DESCRIPTOR.full_name}: bad message: {exc}") from None
