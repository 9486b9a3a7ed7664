"""Checking a run's host against the suite's user classes at the moment the host is known (the checks; their
Locust wiring, at each of those moments, is in :mod:`locust_ext.locust_hooks`).

Locust learns the host at different times: from ``--host`` or the class at start-up (headless runs), from
the web UI's start form, and on a worker from the master's spawn message. Settings that do not depend on
the host (TLS files, timeouts, pool sizes) are checked at start-up everywhere; the host itself is checked:

- at start-up on a headless (or ``--autostart``) master or local runner: one line, exit 2, nothing spawned;
- on the web UI's start form (``POST /swarm``): the form shows the error, nothing spawns, the UI keeps serving;
- on a worker, when the master's spawn message brings the host: one line, the worker quits (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable

from locust import User

__all__ = ["HostCheckedUser", "host_problem", "settings_problem"]


class HostCheckedUser:
    """Mixin for the suite's user classes: their settings and host can be checked before any user spawns.

    Both checks raise ``ValueError`` (the packages' config errors are ValueErrors) with a message that names
    the class, the attribute or host, and what to do.
    """

    @classmethod
    def check_settings(cls) -> None:
        """Check what does not depend on the host (files, numbers); called at start-up in every process."""

    @classmethod
    def check_host(cls, host: str | None) -> None:
        """Check the class against ``host`` (None or "": no host given); called when the host is known."""


def _checked_classes(user_classes: Iterable[type[User]]) -> list[type[HostCheckedUser]]:
    return [cls for cls in user_classes if isinstance(cls, type) and issubclass(cls, HostCheckedUser)]


def settings_problem(user_classes: Iterable[type[User]]) -> str | None:
    """The first host-independent problem among ``user_classes``; None when they can all work."""
    for user_class in _checked_classes(user_classes):
        try:
            user_class.check_settings()
        except ValueError as exc:
            return str(exc)
    return None


def host_problem(user_classes: Iterable[type[User]], host: str | None) -> str | None:
    """The first problem of running ``user_classes`` against ``host`` (a run-wide host wins over a class's)."""
    for user_class in _checked_classes(user_classes):
        try:
            user_class.check_host(host or getattr(user_class, "host", None))
        except ValueError as exc:
            return str(exc)
    return None
