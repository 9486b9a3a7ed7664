from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HelloRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class HelloReply(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class ComputeRequest(_message.Message):
    __slots__ = ("rounds", "seed")
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    rounds: int
    seed: bytes
    def __init__(self, rounds: _Optional[int] = ..., seed: _Optional[bytes] = ...) -> None: ...

class ComputeReply(_message.Message):
    __slots__ = ("rounds", "digest")
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    rounds: int
    digest: bytes
    def __init__(self, rounds: _Optional[int] = ..., digest: _Optional[bytes] = ...) -> None: ...

class EchoRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("payload", "seq")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    seq: int
    def __init__(self, payload: _Optional[bytes] = ..., seq: _Optional[int] = ...) -> None: ...

class EchoSummary(_message.Message):
    __slots__ = ("message_count", "total_bytes")
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    message_count: int
    total_bytes: int
    def __init__(self, message_count: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("count", "interval_ms", "payload_size")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    count: int
    interval_ms: int
    payload_size: int
    def __init__(self, count: _Optional[int] = ..., interval_ms: _Optional[int] = ..., payload_size: _Optional[int] = ...) -> None: ...

class StreamMessage(_message.Message):
    __slots__ = ("seq", "sent_at_unix_nanos", "payload")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sent_at_unix_nanos: int
    payload: bytes
    def __init__(self, seq: _Optional[int] = ..., sent_at_unix_nanos: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class GetCountersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetCountersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MethodCounters(_message.Message):
    __slots__ = ("received", "completed", "failed", "cancelled", "messages_sent", "messages_received")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    received: int
    completed: int
    failed: int
    cancelled: int
    messages_sent: int
    messages_received: int
    def __init__(self, received: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., messages_sent: _Optional[int] = ..., messages_received: _Optional[int] = ...) -> None: ...

class Counters(_message.Message):
    __slots__ = ("methods", "distinct_peers")
    class MethodsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MethodCounters
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MethodCounters, _Mapping]] = ...) -> None: ...
    METHODS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_PEERS_FIELD_NUMBER: _ClassVar[int]
    methods: _containers.MessageMap[str, MethodCounters]
    distinct_peers: int
    def __init__(self, methods: _Optional[_Mapping[str, MethodCounters]] = ..., distinct_peers: _Optional[int] = ...) -> None: ...
