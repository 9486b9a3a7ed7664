"""WebSocketUser: a Locust user holding one WebSocket connection, ``self.ws``, connected before its first task."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from gevent.pool import Group
from locust import User
from locust.env import Environment

from locust_ext.host_check import HostCheckedUser
from locust_ext.stopping import CallsInFlight, GracefulStopUser
from locust_ext.websocket.deliveries import DeliveryTracking, ledger_for
from locust_ext.websocket.errors import WebSocketConfigError
from locust_ext.websocket.gauges import counts_for
from locust_ext.websocket.options import ConnectOptions, check_settings
from locust_ext.websocket.preflight import preflight_messages
from locust_ext.websocket.reconnect import ReconnectPolicy
from locust_ext.websocket.session import DEFAULT_RECONNECT, SessionSettings, WebSocketSession

__all__ = ["WebSocketUser", "session_settings"]

log = logging.getLogger("locust_ext.websocket")


class WebSocketUser(HostCheckedUser, GracefulStopUser):
    """A user with one WebSocket connection, ``self.ws`` (a :class:`WebSocketSession`).

    The connection opens when the user starts; ``on_start`` waits until it is up (connect failures are
    recorded and retried per ``reconnect``), so tasks begin connected. It is closed when the user's
    greenlet ends, however it ends, so overriding ``on_start``/``on_stop`` without ``super()`` leaks nothing.
    """

    abstract = True

    # Connection
    #: Seconds for TCP connect + TLS handshake + HTTP upgrade.
    connect_timeout: float = 10.0
    #: Extra HTTP headers for the upgrade request (auth tokens, cookies); ``Origin`` and ``Host`` replace the
    #: defaults; the handshake's own (``Upgrade``, ``Sec-WebSocket-*``, ...) are refused.
    headers: ClassVar[Mapping[str, str] | None] = None
    #: Subprotocols offered in Sec-WebSocket-Protocol; ``self.ws.subprotocol`` is the one the server chose.
    subprotocols: ClassVar[Sequence[str] | None] = None

    # TLS (wss:// only)
    #: PEM file of CAs to trust instead of the system's.
    tls_ca_file: str | None = None
    #: PEM client certificate (and key) for mutual TLS.
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    #: False skips certificate and host name checks: for test servers only.
    tls_verify: bool = True

    # Requests
    #: Default seconds a request, send or ping may take; None waits for ever.
    request_timeout: float | None = 10.0
    #: Decode text frames as JSON (falling back to the str); False hands every text frame over as a str.
    decode_json: bool = True

    # Keepalive
    #: Seconds of silence from the server before a protocol ping; None sends none.
    ping_interval: float | None = 20.0
    #: Seconds a keepalive ping may wait for its pong before the connection counts as dropped.
    ping_timeout: float = 10.0

    # Reconnect
    #: Backoff after a drop or failed connect; None: stay disconnected (requests then fail at once).
    reconnect: ClassVar[ReconnectPolicy | None] = DEFAULT_RECONNECT

    # Deliveries
    #: How to recognise deliveries among the messages received (publications made on other connections);
    #: None: every message no request waits for is a push.
    deliveries: ClassVar[DeliveryTracking | None] = None

    #: The session class, replaceable for protocols that need more than request/send/on/ping.
    session_class: ClassVar[type[WebSocketSession]] = WebSocketSession

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.ws = self.session_class(
            session_settings(type(self), self.host or environment.host),
            environment.events.request,
            counts_for(environment),
            context=self.context,
            deliveries=type(self).deliveries,
            ledger=ledger_for(environment),
        )

    @classmethod
    def check_settings(cls) -> None:
        """What does not depend on the host: the connect timeout, headers and TLS files."""
        try:
            check_settings(
                connect_timeout=cls.connect_timeout,
                headers=cls.headers,
                tls_ca_file=cls.tls_ca_file,
                tls_client_cert=cls.tls_client_cert,
                tls_client_key=cls.tls_client_key,
                tls_verify=cls.tls_verify,
            )
        except WebSocketConfigError as exc:
            raise WebSocketConfigError(f"{cls.__name__}: {exc}") from None

    @classmethod
    def check_host(cls, host: str | None) -> None:
        """The class can connect to ``host``: a ws:// or wss:// URL, with everything else it needs."""
        try:
            session_settings(cls, host)
        except WebSocketConfigError as exc:
            raise WebSocketConfigError(f"{cls.__name__}: {exc}") from None

    @property
    def calls_in_flight(self) -> CallsInFlight:
        """Requests and pings awaiting their reply; a stop waits for them (``stop_grace``) before any kill."""
        return self.ws.in_flight

    def start(self, group: Group) -> Any:
        """Start the user's greenlet and its connection; the connection closes when the greenlet ends."""
        _check_preflight(self.environment)
        greenlet = super().start(group)
        self.ws.start()
        greenlet.link(lambda _: self.ws.close(wait=False))
        return greenlet

    def on_start(self) -> None:
        """Wait until connected (or until reconnecting gave up) before the first task."""
        self.ws.wait_connected()

    def on_stop(self) -> None:
        self.ws.close()


_settings_cache: dict[tuple[type[WebSocketUser], str | None], SessionSettings] = {}


def session_settings(user_class: type[WebSocketUser], host: str | None) -> SessionSettings:
    """The checked settings of ``user_class`` against ``host``, built once and shared by its users."""
    key = (user_class, host)
    settings = _settings_cache.get(key)
    if settings is None:
        connect = ConnectOptions.build(
            host,
            connect_timeout=user_class.connect_timeout,
            headers=user_class.headers,
            subprotocols=user_class.subprotocols,
            tls_ca_file=user_class.tls_ca_file,
            tls_client_cert=user_class.tls_client_cert,
            tls_client_key=user_class.tls_client_key,
            tls_verify=user_class.tls_verify,
        )
        settings = _settings_cache[key] = SessionSettings(
            connect=connect,
            request_timeout=user_class.request_timeout,
            ping_interval=user_class.ping_interval,
            ping_timeout=user_class.ping_timeout,
            reconnect=user_class.reconnect,
            decode_json=user_class.decode_json,
        )
    return settings


_checked_targets: WeakKeyDictionary[Environment, int] = WeakKeyDictionary()


def _check_preflight(environment: Environment) -> None:
    """Warn once per process and per target count when this process cannot hold its WebSocket users."""
    runner = environment.runner
    if runner is None:
        return
    wanted = _websocket_users_wanted(environment)
    if wanted <= _checked_targets.get(environment, 0):
        return
    _checked_targets[environment] = wanted
    for message in preflight_messages(wanted, environment.host):
        log.warning(message)


def _websocket_users_wanted(environment: Environment) -> int:
    """WebSocket users this process is asked to run: per class on a worker, by class weight on a local runner."""
    runner = environment.runner
    classes = {user_class.__name__: user_class for user_class in environment.user_classes}
    per_class = getattr(runner, "target_user_classes_count", None) or {}
    if per_class:
        return sum(count for name, count in per_class.items() if issubclass(classes.get(name, User), WebSocketUser))
    weights = {user_class: max(0, getattr(user_class, "weight", 1)) for user_class in environment.user_classes}
    total = sum(weights.values()) or 1
    share = sum(weight for user_class, weight in weights.items() if issubclass(user_class, WebSocketUser)) / total
    return round(getattr(runner, "target_user_count", 0) * share)
