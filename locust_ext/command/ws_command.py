"""``python -m locust_ext ws URL -d JSON [--no-reply] [...]``: a WebSocketUser built from flags.

Each task sends the next message and waits for its reply (matched by ``id``, which the session adds), or with
``--no-reply`` only sends it. Everything is checked before Locust starts (URL, TLS files, headers, data).
"""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

from locust import constant, task

from locust_ext.command.data import DataError, RequestData
from locust_ext.command.options import data_arguments, metadata_pairs, request_data
from locust_ext.websocket import WebSocketUser

__all__ = ["add_arguments", "build_user"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The WebSocket command's own flags (everything else goes to Locust)."""
    data_arguments(parser)
    parser.add_argument("--no-reply", action="store_true", help="send only; do not wait for replies")
    parser.add_argument(
        "-m", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="upgrade request header"
    )
    tls = parser.add_argument_group("TLS (wss:// only)")
    tls.add_argument("--cacert", metavar="PEM", help="CA to trust instead of the system's")
    tls.add_argument("--cert", metavar="PEM", help="client certificate (mTLS)")
    tls.add_argument("--key", metavar="PEM", help="client key (mTLS)")
    tls.add_argument("--insecure", action="store_true", help="skip certificate checks (test servers only)")
    parser.add_argument("--request-timeout", type=float, default=10.0, metavar="S", help="reply wait (default 10)")


class _CommandUser(WebSocketUser):
    """Sends the run's request data back to back (set on the class the command builds)."""

    abstract = True
    wait_time = constant(0)
    expect_reply: ClassVar[bool] = True
    data: ClassVar[RequestData]

    def on_start(self) -> None:
        super().on_start()
        self.values = self.data.for_user()

    @task
    def send_message(self) -> None:
        message = next(self.values)
        if self.expect_reply:
            self.ws.request(message)
        else:
            self.ws.send(message)


def build_user(args: argparse.Namespace, url: str) -> type[WebSocketUser]:
    """The user class for a run; ValueError (one line) for bad input."""
    headers = dict(metadata_pairs(args.header, "-m"))
    attributes: dict[str, Any] = {
        "host": url,
        "headers": headers or None,
        "tls_ca_file": args.cacert,
        "tls_client_cert": args.cert,
        "tls_client_key": args.key,
        "tls_verify": not args.insecure,
        "request_timeout": args.request_timeout,
        "expect_reply": not args.no_reply,
        "__module__": __name__,
    }
    user_class: type[_CommandUser] = type("WebSocketCommandUser", (_CommandUser,), attributes)
    user_class.check_settings()
    user_class.check_host(url)
    if args.data is None and args.data_file is None:
        raise DataError("no message: give it with -d JSON or -D FILE")
    data = request_data(args)

    def check(value: Any) -> None:
        if user_class.expect_reply and not isinstance(value, dict):
            raise DataError(
                f"a request awaiting its reply must be a JSON object, not {type(value).__name__}; or use --no-reply"
            )

    data.check(check)
    user_class.data = data
    return user_class
