"""Zero-code load tests, the ghz/k6 habit on the full Locust engine:

    python -m locust_ext grpc HOST --call pkg.Svc/Method -d '{"key": "a"}' [--proto F -I DIR | --protoset F]
                              [-m 'key: value'] [--cacert P --cert P --key P] [any Locust flag]
    python -m locust_ext ws URL -d '{"type": "echo"}' [--no-reply] [-m 'Name: value'] [any Locust flag]

The command reads its own flags, checks everything it can before load (one line, exit 2), builds a user class
in memory and runs Locust's own ``main`` with the remaining flags and a locustfile that only exposes that class
(:mod:`locust_ext.command.locustfile`). So the web UI, ``--processes``, master and workers (start workers the
same way, with ``--worker --master-host X``), the thresholds gate, StatsD and shapes all work as usual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from locust import User

from locust_ext.cli import EXIT_INVALID
from locust_ext.command import grpc_command, ws_command
from locust_ext.command.options import CommandParser

__all__ = ["built_user_classes", "main"]

#: How the command was started, for usage lines: the console script's name, or ``python -m locust_ext``.
PROG = "python -m locust_ext" if Path(sys.argv[0]).name in ("__main__.py", "-m", "-c", "") else Path(sys.argv[0]).name
_KINDS = {
    "grpc": "gRPC: HOST is host:port, grpc://host:port or grpcs://host:port",
    "ws": "WebSocket: URL is ws:// or wss://",
}
#: What each command's first argument is called.
_TARGET = {"grpc": "HOST", "ws": "URL"}
#: Locust flags the command sets itself.
_OWN_LOCUST_FLAGS = ("-f", "--locustfile", "-H", "--host")
_built: list[type[User]] = []

#: Attribute names in the user classes' messages, as the command's flags.
_FLAG_NAMES = {
    "GrpcCommandUser.proto_files": "--proto",
    "GrpcCommandUser.protoset": "--protoset",
    "GrpcCommandUser.root_certificates =": "--cacert",
    "GrpcCommandUser.client_certificate =": "--cert",
    "GrpcCommandUser.client_key =": "--key",
    "GrpcCommandUser: client_certificate and client_key": "--cert and --key",
    "GrpcCommandUser: ": "",
    "WebSocketCommandUser: ": "",
}


def built_user_classes() -> list[type[User]]:
    """The user classes the command built in this process (for its locustfile)."""
    return list(_built)


def _usage() -> str:
    kinds = "\n".join(f"  {kind:5} {text}" for kind, text in _KINDS.items())
    return (
        f"usage: {PROG} grpc HOST [--call pkg.Service/Method] [options] [Locust flags]\n"
        f"       {PROG} ws URL -d JSON [options] [Locust flags]\n{kinds}\n"
        f"{PROG} grpc --help / {PROG} ws --help for the options; locust --help for Locust's flags."
    )


def _parser(kind: str) -> argparse.ArgumentParser:
    parser = CommandParser(prog=f"{PROG} {kind}", allow_abbrev=False, add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    (grpc_command if kind == "grpc" else ws_command).add_arguments(parser)
    return parser


def _help(parser: argparse.ArgumentParser) -> NoReturn:
    parser.print_help()
    print("\nEvery other flag goes to Locust (locust --help).")
    raise SystemExit(0)


def _fail(message: str) -> NoReturn:
    for name, flag in _FLAG_NAMES.items():
        message = message.replace(name, flag)
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INVALID)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command (``argv`` without the program name); ends the process like Locust does."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        raise SystemExit(0 if args else EXIT_INVALID)
    kind = args[0]
    if kind not in _KINDS:
        _fail(f"unknown command {kind!r}: expected grpc or ws")
    parser = _parser(kind)
    if len(args) < 2 or args[1].startswith("-"):
        if any(arg in ("-h", "--help") for arg in args[1:]):
            _help(parser)
        _fail(f"{kind}: give the {_TARGET[kind]} first: {PROG} {kind} {_TARGET[kind]} ...")
    target = args[1]
    try:
        options, locust_args = parser.parse_known_args(args[2:])
        if options.help:
            _help(parser)
        taken = [arg for arg in locust_args if arg.split("=", 1)[0] in _OWN_LOCUST_FLAGS]
        if taken:
            _fail(f"{taken[0]}: the command sets it (the host is the first argument)")
        user_class: type[User] | None
        if kind == "grpc":
            user_class, listing = grpc_command.build_user(options, target)
            if user_class is None:
                print(listing)
                raise SystemExit(0)
        else:
            user_class = ws_command.build_user(options, target)
    except ValueError as exc:
        _fail(str(exc))
    assert user_class is not None
    _built[:] = [user_class]
    _run_locust(locust_args)


def _run_locust(locust_args: list[str]) -> None:
    """Locust's own main, as ``locust -f <the command's locustfile> <locust_args>``."""
    from locust import main as locust_main

    locustfile = Path(__file__).with_name("locustfile.py")
    sys.argv = ["locust", "-f", str(locustfile), *locust_args]
    locust_main.main()
