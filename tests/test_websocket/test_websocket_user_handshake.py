"""WebSocketUser handshakes against small servers made here, for what the reference backend does not do:
show the upgrade request's headers, negotiate a subprotocol, require a client certificate, never answer."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import locust  # noqa: F401 - patches the standard library (threading too) before sockets are made
from locust.env import Environment
from websockets.http11 import Request
from websockets.sync.server import ServerConnection, serve

from locust_ext import WebSocketUser
from tests.tls_certs import make_pki
from tests.ws_sessions import Recorder, open_session, serving


@dataclass
class EchoServer:
    """Where a test server listens, and every upgrade request it received."""

    url: str
    upgrades: list[Request] = field(default_factory=list)


@contextmanager
def echo_server(
    ssl_context: ssl.SSLContext | None = None, subprotocols: Sequence[str] | None = None
) -> Iterator[EchoServer]:
    """A ``websockets`` echo server on a loopback port (its threads are greenlets here), always shut down."""

    def keep(connection: ServerConnection, request: Request) -> None:
        found.upgrades.append(request)

    def echo(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    server = serve(echo, "127.0.0.1", 0, ssl=ssl_context, subprotocols=subprotocols, process_request=keep)  # type: ignore[arg-type]
    port = server.socket.getsockname()[1]
    found = EchoServer(f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{port}")
    with serving(server):
        yield found


def test_origin_and_host_replace_the_clients_own_and_other_headers_arrive() -> None:
    class WithHeaders(WebSocketUser):
        headers: ClassVar[dict[str, str]] = {
            "Origin": "https://app.example",
            "host": "chat.example",
            "Authorization": "Bearer t0k3n",
        }

    environment = Environment()
    with echo_server() as server:
        session = open_session(environment, server.url, WithHeaders)
        assert session.request({"type": "echo"})["type"] == "echo"
        session.close()
    [upgrade] = server.upgrades
    assert upgrade.headers.get_all("Origin") == ["https://app.example"]
    assert upgrade.headers.get_all("Host") == ["chat.example"]
    assert upgrade.headers.get_all("Authorization") == ["Bearer t0k3n"]


def test_the_subprotocol_the_server_chose_is_exposed() -> None:
    class Chat(WebSocketUser):
        subprotocols = ("chat.v1", "chat.v2")

    environment = Environment()
    with echo_server(subprotocols=["chat.v2"]) as server:
        session = open_session(environment, server.url, Chat)
        assert session.subprotocol == "chat.v2"
        session.close()
    assert server.upgrades[0].headers["Sec-WebSocket-Protocol"] == "chat.v1,chat.v2"


def test_mutual_tls_with_a_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED

    class WithClientCert(WebSocketUser):
        tls_ca_file = str(pki.ca_cert)
        tls_client_cert = str(pki.client_cert)
        tls_client_key = str(pki.client_key)

    class WithoutClientCert(WebSocketUser):
        tls_ca_file = str(pki.ca_cert)
        reconnect = None

    environment = Environment()
    recorder = Recorder(environment)
    with echo_server(context) as server:
        session = open_session(environment, server.url, WithClientCert)
        assert session.request({"type": "echo", "payload": "mtls"})["payload"] == "mtls"
        session.close()
        session = open_session(environment, server.url, WithoutClientCert, wait=False)
        assert not session.wait_connected(10)
    [accepted, refused] = [failure for _, failure, _ in recorder.named("connect")]
    assert accepted is None
    assert refused == "connect: TLS: TLSV13_ALERT_CERTIFICATE_REQUIRED"  # the server's alert, named
    assert len(server.upgrades) == 1


def test_a_server_that_never_answers_the_upgrade_is_a_connect_timeout() -> None:
    class Impatient(WebSocketUser):
        connect_timeout = 0.2
        reconnect = None

    environment = Environment()
    recorder = Recorder(environment)
    # The kernel completes TCP connects into the listen backlog; nobody ever reads the upgrade request.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        session = open_session(environment, f"ws://127.0.0.1:{silent.getsockname()[1]}", Impatient, wait=False)
        assert not session.wait_connected(10)
    assert recorder.named("connect") == [("connect", "connect: timeout", 0)]
