"""RFC 6455 frames, client side: masked frames out, buffered parsing and message reassembly in.

The session keeps websocket-client for the opening handshake and then speaks frames itself on the connected
socket: one ``recv`` into :class:`FrameReader` yields every frame the bytes hold, where websocket-client
issues a ``recv`` per header and per payload. Text payloads are returned as bytes; the session validates
UTF-8 when it decodes them (``bytes.decode("utf-8")`` rejects what RFC 6455 section 8.1 forbids). No
extension is negotiated, so a frame with an RSV bit set is a protocol error, as is a masked server frame.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import TypeVar

__all__ = [
    "MAX_MESSAGE_BYTES",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "FrameReader",
    "ProtocolError",
    "encode_frame",
    "fresh_mask_key",
    "mask",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = (OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
#: A message (all its fragments) larger than this is refused: a server cannot make the client hoard memory.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_MAX_CONTROL_PAYLOAD = 125
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


Frame = tuple[int, bytes]  # (opcode, payload): a whole message or a control frame
_Sink = TypeVar("_Sink", list[Frame], deque[Frame])


class ProtocolError(Exception):
    """The server broke RFC 6455 framing; nothing after it on the connection can be trusted."""


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (masking and unmasking are the same operation).

    One big-integer XOR over the whole payload: measured about 2x faster than websocket-client's masking for
    a 100-byte message and as fast for 70 kB.
    """
    size = len(payload)
    if size == 0:
        return b""
    keys = (key * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(size, "little")


#: Masking keys are cut from this many bytes of ``os.urandom`` at a time: one getrandom call per 1024 frames
#: instead of one per frame (a system call was a measurable share of a small echo's cost).
_KEY_POOL_BYTES = 4096
_key_pool = b""
_key_offset = _KEY_POOL_BYTES


def _discard_key_pool() -> None:
    """A forked child (``--processes``) must not hand out the keys its parent already has."""
    global _key_offset
    _key_offset = _KEY_POOL_BYTES


os.register_at_fork(after_in_child=_discard_key_pool)


def fresh_mask_key() -> bytes:
    """Four bytes never handed out before, from the operating system's CSPRNG (RFC 6455 section 5.3)."""
    global _key_pool, _key_offset
    if _key_offset >= _KEY_POOL_BYTES:
        _key_pool, _key_offset = os.urandom(_KEY_POOL_BYTES), 0
    offset = _key_offset
    _key_offset = offset + 4
    return _key_pool[offset : offset + 4]


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final (FIN) client frame, masked with a fresh random key as RFC 6455 section 5.3 requires."""
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 0x10000:
        header = _HEADER_16.pack(first, 0x80 | 126, size)
    else:
        header = _HEADER_64.pack(first, 0x80 | 127, size)
    key = fresh_mask_key()
    return header + key + mask(payload, key)


class FrameReader:
    """Server bytes in (:meth:`feed`), complete messages and control frames out, as ``(opcode, payload)``.

    Fragmented messages come out once, whole, with their first frame's opcode; control frames may arrive
    between fragments and come out at once. Bytes of an incomplete frame wait for more.
    """

    __slots__ = ("_fragments", "_fragments_size", "_message_opcode", "_needed", "_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # received bytes not parsed yet, joined only when a frame is complete
        self._size = 0
        self._needed = 2  # bytes the next frame needs before parsing can get anywhere
        self._message_opcode: int | None = None  # a fragmented message in progress
        self._fragments: list[bytes] = []
        self._fragments_size = 0

    def feed(self, data: bytes, into: _Sink) -> _Sink:
        """Take ``data`` from the socket; append every message and control frame it completes to ``into``, in
        order, and return it. Frames completed before a :class:`ProtocolError` stay in ``into``."""
        self._parts.append(data)
        self._size += len(data)
        if self._size < self._needed:
            return into
        parts = self._parts
        buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        end = len(buffer)
        offset = 0
        out = into
        while True:  # each pass consumes one whole frame, so it ends within len(buffer) / 2 passes
            available = end - offset
            if available < 2:
                needed = 2
                break
            first = buffer[offset]
            second = buffer[offset + 1]
            if second & 0x80:
                raise ProtocolError("masked frame from the server")
            size = second & 0x7F
            start = offset + 2
            if size >= 126:  # the length follows in 2 bytes (126) or 8 bytes (127)
                length_bytes = 2 if size == 126 else 8
                if available < 2 + length_bytes:
                    needed = 2 + length_bytes
                    break
                size = int.from_bytes(buffer[start : start + length_bytes], "big")
                start += length_bytes
            if size > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"frame of {size} bytes (more than {MAX_MESSAGE_BYTES})")
            stop = start + size
            if stop > end:
                needed = stop - offset
                break
            self._frame(first, buffer[start:stop], out)
            offset = stop
        rest = buffer[offset:] if offset else buffer
        self._parts = [rest] if rest else []
        self._size = len(rest)
        self._needed = needed
        return out

    def _frame(self, first: int, payload: bytes, out: list[Frame] | deque[Frame]) -> None:
        """Check one frame's header bits and reassemble fragments; completed items go to ``out``."""
        if first & 0x70:
            raise ProtocolError("reserved bits set with no extension negotiated")
        opcode = first & 0x0F
        fin = first & 0x80
        if opcode in _DATA_OPCODES:
            if self._message_opcode is not None:
                raise ProtocolError("a new message before the fragmented one ended")
            if fin:
                out.append((opcode, payload))
                return
            self._message_opcode = opcode
            self._fragments = [payload]
            self._fragments_size = len(payload)
        elif opcode == OP_CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolError("a continuation frame with no message to continue")
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if self._fragments_size > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"message of more than {MAX_MESSAGE_BYTES} bytes")
            if fin:
                out.append((self._message_opcode, b"".join(self._fragments)))
                self._message_opcode = None
                self._fragments = []
                self._fragments_size = 0
        elif opcode in _CONTROL_OPCODES:
            if not fin or len(payload) > _MAX_CONTROL_PAYLOAD:
                raise ProtocolError("a fragmented or oversized control frame")
            out.append((opcode, payload))
        else:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
