"""The suite's command-line boundary: how a feature refuses bad input before any load starts."""

from __future__ import annotations

import signal
import sys
from contextlib import suppress
from typing import NoReturn

import psutil

__all__ = ["EXIT_INVALID", "exit_invalid"]

#: Exit code for bad input (flags, files, user class configuration) found before load.
EXIT_INVALID = 2


def exit_invalid(message: str) -> NoReturn:
    """End the process with one line naming the problem and exit code 2 (used from Locust's ``init`` event).

    A ``--processes`` master has already forked its workers; they are stopped too, since Locust's own clean-up
    would leave them waiting for a master that is gone.
    """
    print(f"error: {message}", file=sys.stderr, flush=True)
    _stop_forked_workers()
    raise SystemExit(EXIT_INVALID)


def _stop_forked_workers() -> None:
    """SIGTERM the children that are forks of this process (same command line): ``--processes`` workers.

    Not waited for here: Locust's exit handler reaps them.
    """
    me = psutil.Process()
    try:
        command = me.cmdline()
        forks = [child for child in me.children() if child.cmdline() == command]
    except psutil.Error:
        return
    for child in forks:
        with suppress(psutil.Error):
            child.send_signal(signal.SIGTERM)
