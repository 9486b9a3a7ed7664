"""A finished stream's gRPC outcome: status code, details, metadata and response messages, as grpcio reports them.

Pure functions over what :class:`~locust_ext.grpc.native.connection.Stream` collected, so the rules (trailers
and trailers-only responses, HTTP status mapping, RST_STREAM codes, compressed messages) are testable alone.
"""

from __future__ import annotations

import zlib

import grpc

from locust_ext.grpc.native import frames as f
from locust_ext.grpc.native.headers import RawHeaders, grpc_message_text

__all__ = ["CODES", "MessageError", "decompress", "http_status_code", "reset_status", "take_message", "trailer_status"]

CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

#: gRPC's mapping of HTTP statuses for responses without grpc-status (doc/http-grpc-status-mapping.md).
_HTTP_CODES = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}


class MessageError(Exception):
    """A response message that cannot be taken as it is: (code, details) to end the call with."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def http_status_code(status: int) -> grpc.StatusCode:
    return _HTTP_CODES.get(status, grpc.StatusCode.UNKNOWN)


def reset_status(error_code: int) -> tuple[grpc.StatusCode, str]:
    """The status of a stream the server reset, as grpc's core names it."""
    if error_code == f.REFUSED_STREAM:
        return grpc.StatusCode.UNAVAILABLE, "Stream refused by server"
    if error_code == f.CANCEL:
        return grpc.StatusCode.CANCELLED, "Received RST_STREAM with error code 8"
    if error_code == f.ENHANCE_YOUR_CALM:
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "Received RST_STREAM with error code 11"
    return grpc.StatusCode.INTERNAL, f"Received RST_STREAM with error code {error_code}"


def trailer_status(headers: RawHeaders | None, trailers: RawHeaders | None) -> tuple[grpc.StatusCode, str]:
    """Status and details from trailers (or a trailers-only response); HTTP status when grpc-status is missing."""
    status: bytes | None = None
    message = b""
    http: bytes | None = None
    for name, value in trailers or ():
        if name == b"grpc-status":
            status = value
        elif name == b"grpc-message":
            message = value
        elif name == b":status":
            http = value
    if status is not None:
        try:
            code = CODES.get(int(status), grpc.StatusCode.UNKNOWN)
        except ValueError:
            code = grpc.StatusCode.UNKNOWN
        return code, grpc_message_text(message) if message else ""
    for name, value in headers or ():
        if name == b":status":
            http = value
    if http is not None and http != b"200":
        return http_status_code(int(http)), f"Received http2 header with status: {http.decode()}"
    if trailers is None:
        return grpc.StatusCode.INTERNAL, "Server closed the stream without sending trailers"
    return grpc.StatusCode.UNKNOWN, "missing grpc-status in trailers"


def header_value(headers: RawHeaders | None, name: bytes) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


def decompress(payload: bytes, encoding: bytes | None) -> bytes:
    """A compressed message's payload, for the encodings grpc servers use (gzip, deflate)."""
    if encoding == b"gzip":
        wbits = 31
    elif encoding == b"deflate":
        wbits = 15
    else:
        raise MessageError(
            grpc.StatusCode.INTERNAL, f"compressed message with grpc-encoding {encoding!r}, which is not supported"
        )
    try:
        return zlib.decompress(payload, wbits)
    except zlib.error as exc:
        raise MessageError(grpc.StatusCode.INTERNAL, f"cannot decompress message: {exc}") from None


def take_message(data: bytearray, pos: int, encoding: bytes | None, limit: int) -> tuple[bytes | None, int]:
    """The next whole message in ``data`` from ``pos`` and the position after it, or (None, pos) if incomplete."""
    if len(data) - pos < 5:
        return None, pos
    compressed = data[pos]
    length = int.from_bytes(data[pos + 1 : pos + 5], "big")
    if 0 <= limit < length:
        raise MessageError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, f"Received message larger than max ({length} vs. {limit})"
        )
    end = pos + 5 + length
    if end > len(data):
        return None, pos
    payload = bytes(data[pos + 5 : end])
    if compressed:
        payload = decompress(payload, encoding)
        if 0 <= limit < len(payload):
            raise MessageError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"Received message larger than max ({len(payload)} vs. {limit})"
            )
    return payload, end
