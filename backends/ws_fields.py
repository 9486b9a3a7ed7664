"""Checks on the fields of a WebSocket request; a failed check names the field and becomes an error reply."""

from __future__ import annotations

__all__ = ["BadRequest", "bounded_number"]


class BadRequest(ValueError):
    """A request the server cannot serve; answered with an error reply naming what was wrong."""


def bounded_number(label: str, value: object, low: float, high: float, *, integer: bool = False) -> float:
    """``value`` when it is a JSON number (an integer if asked) within [low, high]; BadRequest naming ``label``."""
    wanted = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise BadRequest(f"{label}: {value!r} is not {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise BadRequest(f"{label}: {value} is outside [{low:g}, {high:g}]")
    return value
