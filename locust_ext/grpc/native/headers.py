"""gRPC header blocks for the native transport: request blocks encoded once and reused, responses decoded once.

Request blocks use only HPACK's static table and never-indexed literals (the ``hpack`` package encodes them),
so a block does not depend on the connection's dynamic table and can be cached per method and sent on any
connection. Response blocks go through one ``hpack`` decoder per connection; a block that left the decoder's
dynamic table as it was (only indexed fields, as servers send once their table is warm) is remembered by its
bytes, and the same bytes are answered from that memory until the table changes.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from hpack import Decoder, Encoder

__all__ = [
    "InvalidMetadata",
    "Metadata",
    "RequestHeaders",
    "ResponseDecoder",
    "encode_timeout",
    "metadata_from_headers",
]

Metadata = tuple[tuple[str, str | bytes], ...]
RawHeaders = list[tuple[bytes, bytes]]

#: Headers gRPC reserves: not user metadata (grpcio leaves them out of initial and trailing metadata too).
RESERVED = frozenset(
    (b"content-type", b"grpc-status", b"grpc-message", b"grpc-encoding", b"grpc-accept-encoding", b"te")
)
_CACHE_LIMIT = 512
#: grpc-core's legal metadata keys (after lowercasing, which this transport does for the caller).
_LEGAL_KEY = re.compile(rb"[0-9a-z_.\-]+")
#: grpc-core's legal values of keys without ``-bin``: printable ASCII.
_LEGAL_VALUE = re.compile(rb"[\x20-\x7e]*")
#: Request headers the transport sets itself: user metadata of these names is dropped, as grpcio drops it (a
#: second ``te`` is a protocol error that closes the connection).
_OWN_HEADERS = frozenset((b"content-type", b"te", b"user-agent", b"grpc-timeout"))


class InvalidMetadata(ValueError):
    """Metadata grpcio refuses before sending anything (INTERNAL "Invalid metadata"): a key or a value HTTP/2 does
    not allow, which a server would answer with a connection error, failing every call on the connection."""


def _literal_block(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Header fields as static-table references or never-indexed literals: no dynamic table state involved."""
    return Encoder().encode([(name, value, True) for name, value in headers], huffman=True)


def encode_timeout(seconds: float) -> bytes:
    """A ``grpc-timeout`` value: at most 8 digits and a unit, rounded up so the server never sees a longer one."""
    millis = max(1, math.ceil(seconds * 1000))
    if millis < 100_000_000:
        return b"%dm" % millis
    secs = math.ceil(seconds)
    if secs < 100_000_000:
        return b"%dS" % secs
    return b"%dH" % min(99_999_999, math.ceil(seconds / 3600))


def _metadata_fields(metadata: Sequence[tuple[str, Any]]) -> list[tuple[bytes, bytes]]:
    fields = []
    for key, value in metadata:
        name = key.lower().encode("ascii", "replace")
        if not _LEGAL_KEY.fullmatch(name):
            raise InvalidMetadata(f"metadata key {key!r} is invalid")
        if name in _OWN_HEADERS:
            continue
        if name.endswith(b"-bin"):
            raw = value if isinstance(value, bytes) else str(value).encode()
            fields.append((name, base64.b64encode(raw).rstrip(b"=")))
        else:
            text = value if isinstance(value, bytes) else str(value).encode("utf-8")
            if not _LEGAL_VALUE.fullmatch(text):  # non-ASCII included
                raise InvalidMetadata(f"metadata value for key {key!r} is invalid")
            fields.append((name, text))
    return fields


class RequestHeaders:
    """Encoded request header blocks for one target: per method, per timeout, per metadata tuple; cached."""

    def __init__(self, scheme: str, authority: str, user_agent: str, accept_encoding: bytes = b"identity,gzip") -> None:
        self._scheme = scheme.encode()
        self._authority = authority.encode()
        self._user_agent = user_agent.encode()
        self._accept_encoding = accept_encoding
        self._methods: dict[str, bytes] = {}
        self._timeouts: dict[float, bytes] = {}
        self._metadata: dict[Any, bytes] = {}

    def method(self, path: str) -> bytes:
        """The block every call of ``path`` starts with: pseudo-headers, content-type, te, user-agent."""
        block = self._methods.get(path)
        if block is None:
            block = self._methods[path] = _literal_block(
                [
                    (b":method", b"POST"),
                    (b":scheme", self._scheme),
                    (b":path", path.encode()),
                    (b":authority", self._authority),
                    (b"content-type", b"application/grpc"),
                    (b"te", b"trailers"),
                    (b"user-agent", self._user_agent),
                    (b"grpc-accept-encoding", self._accept_encoding),
                ]
            )
        return block

    def timeout(self, seconds: float) -> bytes:
        block = self._timeouts.get(seconds)
        if block is None:
            if len(self._timeouts) > _CACHE_LIMIT:
                self._timeouts.clear()
            block = self._timeouts[seconds] = _literal_block([(b"grpc-timeout", encode_timeout(seconds))])
        return block

    def metadata(self, metadata: Sequence[tuple[str, Any]]) -> bytes:
        """The block of user metadata (``-bin`` values base64-encoded); cached when the pairs are hashable."""
        key = tuple(metadata)
        try:
            block = self._metadata.get(key)
        except TypeError:
            return _literal_block(_metadata_fields(key))
        if block is None:
            if len(self._metadata) > _CACHE_LIMIT:
                self._metadata.clear()
            block = self._metadata[key] = _literal_block(_metadata_fields(key))
        return block

    @staticmethod
    def extra(fields: Sequence[tuple[bytes, bytes]]) -> bytes:
        """Fields that change per call (e.g. ``grpc-encoding``)."""
        return _literal_block(fields)


class ResponseDecoder:
    """One connection's HPACK decoder, with decoded blocks remembered by their bytes while that is exact."""

    def __init__(self, max_header_list_size: int = 1 << 20) -> None:
        self._decoder = Decoder(max_header_list_size=max_header_list_size)
        self._table = self._decoder.header_table
        self._known: dict[bytes, RawHeaders] = {}

    def _state(self) -> tuple[int, Any, int]:
        entries = self._table.dynamic_entries
        return len(entries), entries[0] if entries else None, self._table.maxsize

    def decode(self, block: bytes) -> RawHeaders:
        """The header fields of ``block`` as raw ``(name, value)`` bytes."""
        known = self._known.get(block)
        if known is not None:
            return known
        before = self._state()
        headers: RawHeaders = [(bytes(n), bytes(v)) for n, v in self._decoder.decode(block, raw=True)]
        after = self._state()
        if after[0] == before[0] and after[1] is before[1] and after[2] == before[2]:
            if len(self._known) > _CACHE_LIMIT:
                self._known.clear()
            self._known[block] = headers
        else:  # the table changed: blocks remembered so far may now mean something else
            self._known.clear()
        return headers

    @property
    def header_table_size(self) -> int:
        return int(self._decoder.max_allowed_table_size)


def metadata_from_headers(headers: RawHeaders) -> Metadata:
    """User metadata from response headers or trailers: reserved and pseudo headers left out, ``-bin`` decoded."""
    out: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        if name[:1] == b":" or name in RESERVED:
            continue
        key = name.decode("ascii")
        if name.endswith(b"-bin"):
            out.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
        else:
            out.append((key, value.decode("utf-8", "replace")))
    return tuple(out)


def grpc_message_text(raw: bytes) -> str:
    """``grpc-message`` percent-decoded (UTF-8), as gRPC's spec has it."""
    return unquote(raw.decode("ascii", "replace"), encoding="utf-8", errors="replace")
