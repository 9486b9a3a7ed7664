"""Locust wiring of the gRPC user: check every GrpcUser class's configuration before any user spawns."""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from locust_ext.cli import exit_invalid
from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.user import grpc_user_classes

__all__ = ["add_arguments", "on_init"]


def add_arguments(parser: Any) -> None:
    """The gRPC user takes its settings from class attributes and --host; it adds no flags."""


def on_init(environment: Environment, **_kwargs: Any) -> None:
    """Refuse to start (exit 2, one line) when a GrpcUser class cannot work: bad host, unreadable TLS file."""
    for user_class in grpc_user_classes(list(environment.user_classes)):
        try:
            user_class.check_config(environment.host or user_class.host)
        except (GrpcConfigError, ValueError) as exc:
            exit_invalid(str(exc))
