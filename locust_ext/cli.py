"""The suite's command-line boundary: how a feature refuses bad input before any load starts."""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["EXIT_INVALID", "exit_invalid"]

#: Exit code for bad input (flags, files, user class configuration) found before load.
EXIT_INVALID = 2


def exit_invalid(message: str) -> NoReturn:
    """End the process with one line naming the problem and exit code 2 (used from Locust's ``init`` event)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INVALID)
