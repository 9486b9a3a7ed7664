"""What the reference backends and their launchers share: fail-fast errors, flags, TLS files, fd limits.

The ready line a backend prints once it listens, and stopping a child process, are the library's
(:mod:`locust_ext.testing`): any server started by its test kit uses them, not only these.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


class StartupError(Exception):
    """A problem found before serving (bad flag value, unreadable file, port in use)."""


def fail(message: str) -> NoReturn:
    """Print one line naming the problem to stderr and exit 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that reports a bad command line in one line (no usage dump), exit 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: {message}")


def run_backend(body: Callable[[], None]) -> NoReturn:
    """Run a backend's main body: a StartupError becomes one line and exit 2; Ctrl-C or a clean end exit 0."""
    try:
        body()
    except StartupError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


def read_file_bytes(path: str | None, flag: str) -> bytes | None:
    """Read a TLS file named by ``flag``; raise StartupError naming flag and path when it cannot."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"{flag} {path}: cannot read file: {exc.strerror or exc}") from exc


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            logging.getLogger(__name__).warning("could not raise the open-file limit above %d", soft)
    return soft


def probability(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 meaning 'any free port'."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is outside 0-65535")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Flags every backend has: where to listen, TLS files, log level."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=default_port, help=f"0 picks a free port (default {default_port})"
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="server certificate chain; enables TLS")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def check_tls_pair(args: argparse.Namespace) -> None:
    """--tls-cert and --tls-key go together."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise StartupError("--tls-cert and --tls-key must be given together")
