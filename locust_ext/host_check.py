"""Checking a run's host against the suite's user classes at the moment the host is known.

Locust learns the host at different times: from ``--host`` or the class at start-up (headless runs), from
the web UI's start form, and on a worker from the master's spawn message. Settings that do not depend on
the host (TLS files, timeouts, pool sizes) are checked at start-up everywhere; the host itself is checked:

- at start-up on a headless (or ``--autostart``) master or local runner: one line, exit 2, nothing spawned;
- on the web UI's start form (``POST /swarm``): the form shows the error, nothing spawns, the UI keeps serving;
- on a worker, when the master's spawn message brings the host: one line, the worker quits (exit 2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import gevent
from flask import Response, jsonify, request
from locust import User
from locust.env import Environment
from locust.runners import WorkerRunner

from locust_ext.cli import EXIT_INVALID, exit_invalid

__all__ = ["HostCheckedUser", "add_arguments", "host_problem", "on_init", "settings_problem"]

log = logging.getLogger("locust_ext")


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


def add_arguments(parser: Any) -> None:
    """Host checks add no flags."""


def on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_kwargs: Any) -> None:
    """Check settings now, the host now or when it becomes known (see the module docstring)."""
    options = environment.parsed_options
    if options is None:  # Locust used as a library: the caller builds users and checks what it wants
        return
    problem = settings_problem(environment.user_classes)
    if problem:
        exit_invalid(problem)
    if isinstance(runner, WorkerRunner) or getattr(options, "worker", False):
        environment.events.test_start.add_listener(_check_on_worker)
        return
    if getattr(options, "headless", False) or getattr(options, "autostart", False):
        problem = host_problem(environment.user_classes, environment.host)
        if problem:
            exit_invalid(problem)
    if web_ui is not None:
        web_ui.app.before_request(lambda: _check_start_form(environment))


def _check_start_form(environment: Environment) -> Response | None:
    """Refuse a start (or edit) from the web UI's form whose host cannot work, with the message in the form."""
    if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
        return None
    host = request.form.get("host") or environment.host
    chosen = set(request.form.getlist("user_classes"))
    user_classes = [cls for cls in environment.user_classes if not chosen or cls.__name__ in chosen]
    if chosen and environment.available_user_classes:
        available: dict[str, Any] = environment.available_user_classes
        user_classes = [cls for name, cls in available.items() if name in chosen]
    problem = host_problem(user_classes, host)
    if problem is None:
        return None
    log.error("not started: %s", problem)
    return jsonify({"success": False, "message": problem, "host": environment.host})


def _check_on_worker(environment: Environment, **_kwargs: Any) -> None:
    """On a worker, the host arrives with the master's first spawn message: check it, quit on a bad one."""
    problem = host_problem(environment.user_classes, environment.host)
    if problem is None:
        return
    log.error("worker quits: %s", problem)
    environment.process_exit_code = EXIT_INVALID
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)
