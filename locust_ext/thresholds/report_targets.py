"""Where the gate's reports go: ``--thresholds-report`` values (``PATH.ext`` or ``format:PATH``) checked before load."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "REPORT_FORMATS",
    "REPORT_PREFIXES",
    "ReportPathError",
    "ReportTarget",
    "report_path_problem",
    "report_target",
]

#: File extension -> format name.
REPORT_FORMATS = {".json": "json", ".xml": "junit", ".md": "markdown", ".html": "html"}
#: ``format:`` prefix of a report path -> format name, for paths whose extension says nothing
#: (``md:$GITHUB_STEP_SUMMARY``).
REPORT_PREFIXES = {
    "json": "json",
    "junit": "junit",
    "xml": "junit",
    "md": "markdown",
    "markdown": "markdown",
    "html": "html",
}
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):(.+)$")


class ReportPathError(ValueError):
    """A ``--thresholds-report`` value whose format cannot be told (unknown prefix or extension)."""


@dataclass(frozen=True)
class ReportTarget:
    """Where one report goes and in which format."""

    path: str
    format: str


def report_target(value: str) -> ReportTarget:
    """``md:PATH`` (an explicit format prefix) or ``PATH.ext`` (the format from the extension); raises
    :class:`ReportPathError` with a one-line reason otherwise."""
    found = _PREFIX.match(value)
    if found is not None:
        prefix, path = found.groups()
        fmt = REPORT_PREFIXES.get(prefix.lower())
        if fmt is None:
            raise ReportPathError(f"unknown format prefix {prefix!r} (use {', '.join(REPORT_PREFIXES)})")
        return ReportTarget(path, fmt)
    fmt = REPORT_FORMATS.get(os.path.splitext(value)[1].lower())
    if fmt is None:
        raise ReportPathError(f"unsupported extension (use {', '.join(REPORT_FORMATS)}, or a prefix such as md:PATH)")
    return ReportTarget(value, fmt)


def report_path_problem(path: str) -> str | None:
    """Why a report cannot be written to ``path``, or None when it can: creates its parent folders and opens
    it for appending (an existing report is left as it is; a file created only to try is removed again)."""
    target = Path(path)
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        return f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
    return None
