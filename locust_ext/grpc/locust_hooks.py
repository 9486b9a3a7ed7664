"""Locust wiring of GrpcUser: the ``--grpc-transport`` flag.

``--grpc-transport`` is the run-wide choice of transport for GrpcUser classes that do not set ``transport``
themselves: ``native`` (HTTP/2 on gevent sockets, :mod:`locust_ext.grpc.native`, the default) or ``grpcio``
(grpc's own channel under gevent). Everything else is configured with typed class attributes on the user; the
user classes' settings and host (transport included) are checked by :mod:`locust_ext.locust_hooks`.
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext import local_ips
from locust_ext.cli import exit_invalid
from locust_ext.grpc.channels import DEFAULT_TRANSPORT, TRANSPORTS, run_transport, set_run_transport
from locust_ext.grpc.user import GrpcUser

__all__ = ["add_arguments", "on_init"]


def add_arguments(parser: Any, **_: Any) -> None:
    """``--grpc-transport``, in its own group, with an env var."""
    group = parser.add_argument_group("gRPC users", "channels of GrpcUser classes")
    group.add_argument(
        "--grpc-transport",
        env_var="LOCUST_GRPC_TRANSPORT",
        choices=TRANSPORTS,
        default=DEFAULT_TRANSPORT,
        help=f"transport of GrpcUser classes that set no `transport` (default {DEFAULT_TRANSPORT}: HTTP/2 on "
        "gevent sockets, cheaper per call; grpcio: grpc's own channel, for channel options native refuses)",
    )


def on_init(environment: Environment, **_: Any) -> None:
    """Set this process's run-wide transport from the flag; refuse ``--local-ips`` with grpcio channels."""
    options = environment.parsed_options
    if options is not None:
        set_run_transport(getattr(options, "grpc_transport", None))
        if local_ips.pool.configured:
            for cls in environment.user_classes:
                if (
                    isinstance(cls, type)
                    and issubclass(cls, GrpcUser)
                    and (cls.transport or run_transport()) == "grpcio"
                ):
                    exit_invalid(
                        f"{cls.__name__}: --local-ips needs the native transport (transport = 'native' or "
                        "--grpc-transport native): grpcio channels cannot bind a source address"
                    )
