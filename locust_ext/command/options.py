"""What the zero-code commands share: their one-line argument parser, request data and header flags."""

from __future__ import annotations

import argparse
from typing import NoReturn

from locust_ext.command.data import SUBSTITUTIONS, RequestData

__all__ = ["CommandError", "CommandParser", "data_arguments", "metadata_pairs", "request_data"]


class CommandError(ValueError):
    """Bad input to a command, found before load: printed as one line, exit 2."""


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose errors are a CommandError (one line), not usage text and exit 2 of its own."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(message)


def data_arguments(parser: argparse.ArgumentParser) -> None:
    """``-d JSON`` / ``-D FILE``."""
    names = " ".join(f"{{{{{name}}}}}" for name in SUBSTITUTIONS)
    data = parser.add_argument_group(f"request data (substitutions: {names})")
    source = data.add_mutually_exclusive_group()
    source.add_argument("-d", "--data", metavar="JSON", help="the message, as JSON")
    source.add_argument("-D", "--data-file", metavar="FILE", help="a JSON file, or JSON lines sent in turn")


def request_data(args: argparse.Namespace, default: str = "{}") -> RequestData:
    """The run's request data from ``-d`` / ``-D`` (``default`` when neither is given)."""
    if args.data_file is not None:
        return RequestData.from_file(args.data_file)
    return RequestData.from_text(args.data if args.data is not None else default, "-d")


def metadata_pairs(values: list[str], flag: str) -> tuple[tuple[str, str], ...]:
    """``["key: value", ...]`` as pairs; CommandError naming the flag and value for one without a colon."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        key, sep, text = value.partition(":")
        if not sep or not key.strip():
            raise CommandError(f"{flag} {value!r}: expected 'key: value'")
        pairs.append((key.strip().lower(), text.strip()))
    return tuple(pairs)
