"""HTTP/2 frames and gRPC message framing as bytes in, bytes out: no sockets, no state beyond a read buffer.

The native transport's hot path builds frames with ``struct`` and parses them from one growing buffer; this
module is that codec (RFC 9113 section 4 and 6; gRPC's length-prefixed messages), testable without a socket.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

__all__ = [
    "CONNECTION_PREFACE",
    "DATA",
    "END_HEADERS",
    "END_STREAM",
    "GOAWAY",
    "HEADERS",
    "PING",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "FrameReader",
    "data_frames",
    "frame",
    "goaway_frame",
    "grpc_message",
    "headers_frames",
    "ping_frame",
    "rst_stream_frame",
    "settings_frame",
    "window_update_frame",
]

CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

# Error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

_HEADER = struct.Struct(">HBBBL")  # length (24 bits as 16 + 8), type, flags, stream id (31 bits)
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY = struct.Struct(">LL")
_MESSAGE_PREFIX = struct.Struct(">BL")


class FrameError(Exception):
    """The peer sent bytes that are not HTTP/2 frames (e.g. a frame over our maximum size)."""


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: 9-byte header and payload."""
    length = len(payload)
    return _HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """A HEADERS frame for ``block``, followed by CONTINUATION frames when the block exceeds ``max_frame``."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    parts = [block[i : i + max_frame] for i in range(0, len(block), max_frame)]
    out = [frame(HEADERS, flags, stream_id, parts[0])]
    for part in parts[1:-1]:
        out.append(frame(CONTINUATION, 0, stream_id, part))
    out.append(frame(CONTINUATION, END_HEADERS, stream_id, parts[-1]))
    return b"".join(out)


def data_frames(stream_id: int, data: bytes, end_stream: bool, max_frame: int) -> bytes:
    """DATA frames carrying ``data`` in chunks of at most ``max_frame``; END_STREAM on the last one."""
    if len(data) <= max_frame:
        return frame(DATA, END_STREAM if end_stream else 0, stream_id, data)
    chunks = [data[i : i + max_frame] for i in range(0, len(data), max_frame)]
    last = len(chunks) - 1
    return b"".join(
        frame(DATA, END_STREAM if end_stream and i == last else 0, stream_id, chunk) for i, chunk in enumerate(chunks)
    )


def settings_frame(settings: dict[int, int] | None = None, ack: bool = False) -> bytes:
    """SETTINGS with the given identifier → value pairs, or an empty acknowledgement."""
    payload = b"".join(_SETTING.pack(key, value) for key, value in (settings or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream_frame(stream_id: int, error_code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(error_code))


def ping_frame(opaque: bytes, ack: bool = False) -> bytes:
    return frame(PING, ACK if ack else 0, 0, opaque)


def goaway_frame(last_stream_id: int, error_code: int = NO_ERROR, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, error_code) + debug)


def grpc_message(payload: bytes, compressed: bool = False) -> bytes:
    """A gRPC length-prefixed message: compressed flag, 4-byte big-endian length, payload."""
    return _MESSAGE_PREFIX.pack(1 if compressed else 0, len(payload)) + payload


def parse_settings(payload: bytes) -> dict[int, int]:
    if len(payload) % 6:
        raise FrameError("SETTINGS payload is not a multiple of 6 bytes")
    return dict(_SETTING.iter_unpack(payload))


def parse_u32(payload: bytes) -> int:
    """The 31-bit value of WINDOW_UPDATE or the error code of RST_STREAM."""
    if len(payload) != 4:
        raise FrameError("expected a 4-byte payload")
    return int(_U32.unpack(payload)[0])


def parse_goaway(payload: bytes) -> tuple[int, int, bytes]:
    """(last stream id, error code, debug data)."""
    if len(payload) < 8:
        raise FrameError("GOAWAY payload shorter than 8 bytes")
    last, code = _GOAWAY.unpack_from(payload)
    return last & 0x7FFFFFFF, code, payload[8:]


def strip_padding(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding (and HEADERS priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            raise FrameError("PADDED frame without a pad length")
        start, end = 1, end - payload[0]
    if priority and flags & PRIORITY_FLAG:
        start += 5
    if end < start:
        raise FrameError("padding longer than the frame")
    return payload[start:end] if (start or end != len(payload)) else payload


class FrameReader:
    """Accumulates received bytes and yields whole frames ``(type, flags, stream_id, payload)``."""

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = 1 << 24) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
        """Add ``data`` and yield every frame now complete; a partial frame waits for more bytes."""
        buffer = self._buffer
        buffer += data
        size = len(buffer)
        pos = 0
        unpack = _HEADER.unpack_from
        try:
            while size - pos >= 9:
                high, low, kind, flags, stream_id = unpack(buffer, pos)
                length = (high << 8) | low
                if length > self.max_frame:
                    raise FrameError(f"frame of {length} bytes exceeds the maximum of {self.max_frame}")
                end = pos + 9 + length
                if end > size:
                    break
                yield kind, flags, stream_id & 0x7FFFFFFF, bytes(buffer[pos + 9 : end])
                pos = end
        finally:
            del buffer[:pos]
