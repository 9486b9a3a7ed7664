"""``python -m locust_ext grpc HOST --call pkg.Svc/Method -d JSON [...]``: a GrpcUser built from flags.

Descriptors come from ``--proto``/``--import-path``, ``--protoset``, or the server's reflection. Everything is
checked before Locust starts (host, TLS files, protos, the method, the data against the method's input type);
without ``--call`` the services and methods are listed instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any, ClassVar

from google.protobuf import message_factory
from locust import constant, task

from locust_ext.command.data import DataError, RequestData
from locust_ext.command.options import CommandError, data_arguments, metadata_pairs, request_data
from locust_ext.grpc import GrpcUser
from locust_ext.grpc.descriptors import MethodCatalog, proto_catalog
from locust_ext.grpc.dynamic import to_message
from locust_ext.grpc.errors import GrpcCallError, GrpcConfigError
from locust_ext.grpc.reflection import reflection_catalog

__all__ = ["add_arguments", "build_user", "list_methods"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gRPC command's own flags (everything else goes to Locust)."""
    parser.add_argument("--call", metavar="pkg.Service/Method", help="the method to load; without it: list methods")
    data_arguments(parser)
    protos = parser.add_argument_group("descriptors (default: server reflection)")
    protos.add_argument("--proto", action="append", default=[], metavar="FILE", help=".proto file (repeatable)")
    protos.add_argument(
        "--import-path", "-I", action="append", default=[], metavar="DIR", help="import path for --proto (repeatable)"
    )
    protos.add_argument("--protoset", metavar="FILE", help="FileDescriptorSet (protoc --descriptor_set_out)")
    meta = parser.add_argument_group("metadata")
    meta.add_argument("-m", "--metadata", action="append", default=[], metavar="'KEY: VALUE'", help="on every call")
    meta.add_argument(
        "--reflect-metadata", action="append", default=[], metavar="'KEY: VALUE'", help="on reflection calls only"
    )
    tls = parser.add_argument_group("TLS (implies grpcs:// for a host without a scheme)")
    tls.add_argument("--cacert", metavar="PEM", help="CA that signed the server's certificate")
    tls.add_argument("--cert", metavar="PEM", help="client certificate (mTLS)")
    tls.add_argument("--key", metavar="PEM", help="client key (mTLS)")
    tls.add_argument("--server-name", metavar="NAME", help="name to check the server certificate against")
    parser.add_argument("--connections", type=int, metavar="N", help="users of a process share N channels")
    parser.add_argument("--call-timeout", type=float, default=30.0, metavar="S", help="deadline per call (default 30)")


class _CommandUser(GrpcUser):
    """Calls ``method`` back to back with the run's request data (set on the class the command builds)."""

    abstract = True
    wait_time = constant(0)
    method: ClassVar[str] = ""
    client_streaming: ClassVar[bool] = False
    server_streaming: ClassVar[bool] = False
    data: ClassVar[RequestData]
    #: This user's requests, made at its first call.
    values: Iterator[Any] | None = None

    def _values(self) -> Iterator[Any]:
        """This user's requests as messages; the method is resolved here, so a failure is the call's (recorded)."""
        request_class = message_factory.GetMessageClass(self.client.method(self.method).input_type)
        pool = self.client.catalog.pool

        def convert(value: Any) -> Any:  # JSON to messages, once for data without substitutions
            if self.client_streaming:
                return [
                    to_message(request_class, item, pool) for item in (value if isinstance(value, list) else [value])
                ]
            return to_message(request_class, value, pool)

        return self.data.for_user(convert)

    @task
    def call(self) -> None:
        if self.values is None:
            self.values = self._values()
        value = next(self.values)
        if self.server_streaming:
            for _ in self.client.stream(self.method, value):
                pass
        else:
            self.client.call(self.method, value)


def _user_class(args: argparse.Namespace, host: str) -> type[_CommandUser]:
    tls = args.cacert or args.cert or args.key or args.server_name
    if tls and "://" not in host:
        host = f"grpcs://{host}"
    attributes: dict[str, Any] = {
        "host": host,
        "metadata": metadata_pairs(args.metadata, "-m"),
        "reflection_metadata": metadata_pairs(args.reflect_metadata, "--reflect-metadata"),
        "proto_files": tuple(args.proto),
        "proto_paths": tuple(args.import_path),
        "protoset": args.protoset,
        "root_certificates": args.cacert,
        "client_certificate": args.cert,
        "client_key": args.key,
        "server_name_override": args.server_name,
        "channel_pool_size": args.connections,
        "timeout": args.call_timeout,
        "__module__": __name__,
    }
    return type("GrpcCommandUser", (_CommandUser,), attributes)


def _catalog(user_class: type[GrpcUser]) -> MethodCatalog:
    if user_class.proto_files or user_class.protoset:
        owner = "--proto" if user_class.proto_files else "--protoset"
        return proto_catalog(user_class.proto_files, user_class.proto_paths, user_class.protoset, owner=owner)
    return reflection_catalog(
        user_class.channel_spec(user_class.host),
        (*user_class.metadata, *user_class.reflection_metadata),
        user_class.timeout,
    )


def list_methods(catalog: MethodCatalog) -> str:
    """Every service and its methods, one per line, grpcurl-style."""
    lines: list[str] = []
    for name in catalog.service_names():
        lines.append(name)
        for method in catalog.service(name).methods:
            takes = f"{'stream ' if method.client_streaming else ''}{method.input_type.full_name}"
            returns = f"{'stream ' if method.server_streaming else ''}{method.output_type.full_name}"
            lines.append(f"  {method.name}({takes}) returns ({returns})")
    return "\n".join(lines)


def build_user(args: argparse.Namespace, host: str) -> tuple[type[GrpcUser] | None, str | None]:
    """(the user class, None) for a run; (None, the listing) without ``--call``. CommandError for bad input."""
    if args.connections is not None and args.connections < 1:
        raise CommandError(f"--connections must be >= 1, not {args.connections}")
    user_class = _user_class(args, host)
    try:
        user_class.check_host(user_class.host)
        catalog = _catalog(user_class)
        if args.call is None:
            return None, list_methods(catalog)
        method = catalog.method(args.call)
    except GrpcConfigError as exc:
        raise CommandError(str(exc)) from None
    except GrpcCallError as exc:
        raise CommandError(f"{user_class.host}: {exc}") from None
    data = request_data(args)
    request_class = message_factory.GetMessageClass(method.input_type)

    def check(value: Any) -> None:
        messages = value if method.client_streaming and isinstance(value, list) else [value]
        for message in messages:
            if not isinstance(message, dict):
                kind = "a JSON object or an array of them" if method.client_streaming else "a JSON object"
                raise DataError(f"{method.input_type.full_name} needs {kind}, not {type(message).__name__}")
            to_message(request_class, message, catalog.pool)

    data.check(check)
    user_class.method = args.call
    user_class.client_streaming = method.client_streaming
    user_class.server_streaming = method.server_streaming
    user_class.data = data
    return user_class, None
