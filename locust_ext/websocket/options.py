"""What a WebSocketUser connects with: a checked URL, headers, subprotocols, TLS context and timeouts.

Built once per user class and host, then shared by all of that class's users (one SSL context, not
ten thousand). A value that cannot work is rejected here, before any load, with a message naming it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from locust_ext.websocket.errors import WebSocketConfigError

__all__ = ["ConnectOptions", "check_settings", "check_url", "tls_context"]

SCHEMES = ("ws", "wss")
#: Handshake headers websocket-client writes itself, lower-cased, with the setting to use instead.
_HANDSHAKE_HEADERS = {
    "upgrade": "nothing: it is always 'websocket'",
    "connection": "nothing: it is always 'Upgrade'",
    "sec-websocket-key": "nothing: a fresh key is made per connection",
    "sec-websocket-version": "nothing: it is always 13",
    "sec-websocket-protocol": "the subprotocols attribute",
}


def check_url(url: str | None) -> str:
    """The URL itself, once it is ``ws://`` or ``wss://`` with a host and a valid port."""
    if not url:
        raise WebSocketConfigError(
            'no host: set `host = "ws://127.0.0.1:8080"` on the user class or pass --host ws://HOST:PORT'
        )
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise WebSocketConfigError(f"host {url!r}: the scheme must be ws:// or wss://")
    if not parts.hostname:
        raise WebSocketConfigError(f"host {url!r}: no host name or address")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535 or not a number
    except ValueError as exc:
        raise WebSocketConfigError(f"host {url!r}: bad port ({exc})") from None
    return url


def _readable(path: str, what: str) -> str:
    if not Path(path).is_file():
        raise WebSocketConfigError(f"{what} {path}: no such file")
    return path


def tls_context(
    *, ca_file: str | None = None, client_cert: str | None = None, client_key: str | None = None, verify: bool = True
) -> ssl.SSLContext:
    """A client TLS context: the system CAs (or ``ca_file``), an optional client certificate, verification on/off."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(_readable(ca_file, "tls_ca_file"))
        except ssl.SSLError as exc:
            raise WebSocketConfigError(f"tls_ca_file {ca_file}: not a PEM CA certificate ({exc.reason})") from None
    if client_key and not client_cert:
        raise WebSocketConfigError("tls_client_key is set without tls_client_cert")
    if client_cert:
        try:
            context.load_cert_chain(
                _readable(client_cert, "tls_client_cert"), client_key and _readable(client_key, "tls_client_key")
            )
        except ssl.SSLError as exc:
            raise WebSocketConfigError(
                f"tls_client_cert {client_cert}: not a usable PEM certificate and key ({exc.reason})"
            ) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _check_timeout(connect_timeout: float) -> None:
    if not connect_timeout > 0:
        raise WebSocketConfigError(f"connect_timeout {connect_timeout!r}: must be a positive number of seconds")


def _checked_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``headers`` once no name or value could break the upgrade request or repeat the handshake's."""
    extra = dict(headers or {})
    for key, value in extra.items():
        if "\n" in key or "\r" in key or "\n" in value or "\r" in value or ":" in key:
            raise WebSocketConfigError(f"headers[{key!r}]: a header name or value with ':' or a line break")
        if key.lower() in _HANDSHAKE_HEADERS:
            raise WebSocketConfigError(f"headers[{key!r}]: set by the handshake; use {_HANDSHAKE_HEADERS[key.lower()]}")
    return extra


def check_settings(
    *,
    connect_timeout: float,
    headers: Mapping[str, str] | None = None,
    tls_ca_file: str | None = None,
    tls_client_cert: str | None = None,
    tls_client_key: str | None = None,
    tls_verify: bool = True,
) -> None:
    """Check what does not depend on the URL: the timeout, the headers, and any TLS files given."""
    _check_timeout(connect_timeout)
    _checked_headers(headers)
    if tls_ca_file or tls_client_cert or tls_client_key:
        tls_context(ca_file=tls_ca_file, client_cert=tls_client_cert, client_key=tls_client_key, verify=tls_verify)


def _pop_header(headers: dict[str, str], name: str) -> str | None:
    """Remove header ``name`` (any case) from ``headers`` and return its value."""
    for key in headers:
        if key.lower() == name:
            return headers.pop(key)
    return None


@dataclass(frozen=True)
class ConnectOptions:
    """Everything one connection attempt needs, checked, immutable and shared between users."""

    url: str
    connect_timeout: float
    #: ``Name: value`` lines added to the upgrade request.
    headers: tuple[str, ...] = ()
    #: ``Origin`` and ``Host`` replace websocket-client's own (as extra headers they would be sent twice).
    origin: str | None = None
    host_header: str | None = None
    subprotocols: tuple[str, ...] = ()
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def build(
        cls,
        url: str | None,
        *,
        connect_timeout: float,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        tls_ca_file: str | None = None,
        tls_client_cert: str | None = None,
        tls_client_key: str | None = None,
        tls_verify: bool = True,
    ) -> ConnectOptions:
        """Check every value; a TLS context is made only for ``wss://``."""
        checked = check_url(url)
        _check_timeout(connect_timeout)
        extra = _checked_headers(headers)
        origin = _pop_header(extra, "origin")
        host_header = _pop_header(extra, "host")
        context = None
        if urlsplit(checked).scheme == "wss":
            context = tls_context(
                ca_file=tls_ca_file, client_cert=tls_client_cert, client_key=tls_client_key, verify=tls_verify
            )
        return cls(
            url=checked,
            connect_timeout=float(connect_timeout),
            headers=tuple(f"{key}: {value}" for key, value in extra.items()),
            origin=origin,
            host_header=host_header,
            subprotocols=tuple(subprotocols or ()),
            ssl_context=context,
        )
