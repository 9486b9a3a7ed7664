"""NativeChannel: a ``grpc.Channel`` speaking HTTP/2 on gevent sockets, for unmodified generated stubs.

One channel is one TCP (or TLS, ALPN ``h2``) connection, opened on the first call and opened again on the
next call after it broke or the server sent GOAWAY; calls in flight on a broken connection fail UNAVAILABLE,
as grpcio reports them. Channel options are checked when the channel is built: an option this transport does
not implement is refused by name (:func:`check_options`), never ignored.
"""

from __future__ import annotations

import time
import weakref
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
from gevent import ssl
from gevent.lock import Semaphore

from locust_ext import local_ips
from locust_ext.grpc.native import frames as f
from locust_ext.grpc.native.connection import Connection, ConnectionGone, Stream
from locust_ext.grpc.native.headers import InvalidMetadata, RequestHeaders
from locust_ext.grpc.native.multicallables import StreamStream, StreamUnary, UnaryStream, UnaryUnary

if TYPE_CHECKING:
    from locust_ext.grpc.native.calls import StreamCall

__all__ = ["SUPPORTED_OPTIONS", "NativeChannel", "UnsupportedOption", "check_options", "tls_context"]

USER_AGENT = "locust-grpc-websocket-native/1"
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024  # grpcio's default

#: Channel arguments the native transport honours (the others are refused at start-up).
SUPPORTED_OPTIONS = frozenset(
    (
        "grpc.max_receive_message_length",
        "grpc.max_send_message_length",
        "grpc.primary_user_agent",
        "grpc.ssl_target_name_override",
        "grpc.default_authority",
        "grpc.use_local_subchannel_pool",  # every native channel has a connection of its own anyway
    )
)


class UnsupportedOption(ValueError):
    """A channel option or setting the native transport does not implement."""


def check_options(options: Sequence[tuple[str, Any]], compression: Any = None) -> dict[str, Any]:
    """The options as a dict; raises UnsupportedOption naming every option this transport would ignore."""
    unsupported = sorted({name for name, _ in options if name not in SUPPORTED_OPTIONS})
    if unsupported:
        raise UnsupportedOption(
            f"channel option(s) {', '.join(unsupported)} not supported by the native transport "
            f"(it supports {', '.join(sorted(SUPPORTED_OPTIONS))}); use transport = 'grpcio'"
        )
    if compression not in (None, grpc.Compression.NoCompression, grpc.Compression.Gzip, grpc.Compression.Deflate):
        raise UnsupportedOption(f"compression {compression!r} not supported by the native transport")
    return dict(options)


def tls_context(
    root_certificates: bytes | None, private_key: bytes | None, certificate_chain: bytes | None
) -> ssl.SSLContext:
    """A client TLS context offering ALPN h2; mTLS when a key and chain are given (PEM bytes, as grpcio takes)."""
    context = ssl.create_default_context(cadata=root_certificates.decode() if root_certificates else None)
    if certificate_chain and private_key:
        import tempfile

        with tempfile.NamedTemporaryFile("wb") as cert, tempfile.NamedTemporaryFile("wb") as key:
            cert.write(certificate_chain)
            cert.flush()
            key.write(private_key)
            key.flush()
            context.load_cert_chain(cert.name, key.name)
    context.set_alpn_protocols(["h2"])
    return context


class _ChannelHeaders(RequestHeaders):
    """Request header blocks whose invalid metadata fails the call as grpcio fails it: INTERNAL, nothing sent."""

    def metadata(self, metadata: Sequence[tuple[str, Any]]) -> bytes:
        try:
            return super().metadata(metadata)
        except InvalidMetadata:
            from locust_ext.grpc.native.calls import FinishedCall

            raise FinishedCall(grpc.StatusCode.INTERNAL, "Invalid metadata") from None


class NativeChannel(grpc.Channel):
    """A gRPC channel over one HTTP/2 connection of its own; see the module docstring."""

    def __init__(
        self,
        address: str,
        *,
        tls: ssl.SSLContext | None = None,
        options: Sequence[tuple[str, Any]] = (),
        compression: grpc.Compression | None = None,
        receive_window: int = 1 << 30,
    ) -> None:
        settings = check_options(options, compression)
        host, _, port = address.rpartition(":")
        self._host = host[1:-1] if host.startswith("[") else host
        self._port = int(port)
        self._address = address
        self._tls = tls
        self._server_name = settings.get("grpc.ssl_target_name_override") or self._host
        authority = settings.get("grpc.default_authority") or settings.get("grpc.ssl_target_name_override") or address
        agent = settings.get("grpc.primary_user_agent")
        self.request_headers = _ChannelHeaders(
            "https" if tls else "http", authority, f"{agent} {USER_AGENT}" if agent else USER_AGENT
        )
        self.max_receive: int = int(settings.get("grpc.max_receive_message_length", DEFAULT_MAX_RECEIVE))
        self.max_send: int = int(settings.get("grpc.max_send_message_length", -1))
        self.compression = None if compression == grpc.Compression.NoCompression else compression
        names = {grpc.Compression.Gzip: b"gzip", grpc.Compression.Deflate: b"deflate"}
        self._encoding = names.get(self.compression) if self.compression else None
        self.encoding_block = (
            RequestHeaders.extra([(b"grpc-encoding", self._encoding)]) if self._encoding is not None else b""
        )
        self._receive_window = receive_window
        self._conn: Connection | None = None
        self._connect_lock = Semaphore()
        self._calls: weakref.WeakSet[StreamCall] = weakref.WeakSet()
        self._closed = False

    # Used by the multicallables

    def check_compression(self, compression: Any) -> None:
        if (None if compression == grpc.Compression.NoCompression else compression) != self.compression:
            raise NotImplementedError(
                "the native gRPC transport compresses per channel (GrpcUser.compression), not per call"
            )

    def encode_message(self, payload: bytes) -> bytes:
        """A length-prefixed message, compressed when the channel compresses."""
        if 0 <= self.max_send < len(payload):
            from locust_ext.grpc.native.calls import FinishedCall

            raise FinishedCall(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"Sent message larger than max ({len(payload)} vs. {self.max_send})"
            )
        if self._encoding is None:
            return f.grpc_message(payload)
        packer = zlib.compressobj(wbits=31 if self._encoding == b"gzip" else 15)
        return f.grpc_message(packer.compress(payload) + packer.flush(), compressed=True)

    def open_stream(
        self, block: bytes, message: bytes | None, end_stream: bool, wake_on_data: bool, deadline: float | None
    ) -> tuple[Connection, Stream]:
        """A new stream on the live connection (connecting first if needed); raises ConnectionGone (UNAVAILABLE).
        A stream still waiting for a slot or window at ``deadline`` (``time.monotonic``) comes back expired."""
        for _attempt in range(3):
            conn = self._conn
            if conn is None or not conn.usable:
                conn = self._connect(None if deadline is None else max(0.0, deadline - time.monotonic()))
            try:
                return conn, conn.open_stream(block, message, end_stream, wake_on_data, deadline)
            except ConnectionGone:
                if conn.closed_reason is not None and conn.next_id > 1 and not conn.streams:
                    raise
        raise ConnectionGone("connection lost while starting the call")

    def track(self, call: StreamCall) -> None:
        self._calls.add(call)

    def untrack(self, call: StreamCall) -> None:
        self._calls.discard(call)

    def _connect(self, timeout: float | None) -> Connection:
        with self._connect_lock:
            if self._closed:
                raise ConnectionGone("Channel closed!")
            conn = self._conn
            if conn is not None and conn.usable:
                return conn
            try:
                sock = local_ips.connect_tcp((self._host, self._port), min(timeout or 20.0, 20.0))  # --local-ips
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
                    if sock.selected_alpn_protocol() != "h2":
                        sock.close()
                        raise ConnectionGone(f"{self._address}: the server did not agree to HTTP/2 (ALPN h2)")
                sock.settimeout(None)
                self._conn = Connection(sock, receive_window=self._receive_window)
            except ssl.SSLError as exc:
                raise ConnectionGone(f"failed to connect to {self._address}: TLS handshake failed: {exc}") from None
            except OSError as exc:
                raise ConnectionGone(f"failed to connect to {self._address}: {exc.strerror or exc}") from None
            return self._conn

    # grpc.Channel

    def unary_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        return UnaryUnary(self, method, request_serializer, response_deserializer)

    def unary_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        return UnaryStream(self, method, request_serializer, response_deserializer)

    def stream_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        return StreamUnary(self, method, request_serializer, response_deserializer)

    def stream_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        return StreamStream(self, method, request_serializer, response_deserializer)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        """Connectivity callbacks are not reported by the native transport (no-op)."""

    def unsubscribe(self, callback: Any) -> None:
        """No-op, see :meth:`subscribe`."""

    def close(self) -> None:
        """Cancel the calls still running (CANCELLED, as grpcio) and close the connection."""
        self._closed = True
        for call in list(self._calls):
            call.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close("Channel closed!")

    def __enter__(self) -> NativeChannel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
