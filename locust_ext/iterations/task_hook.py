"""The one hook at task boundaries: controllers bound to an Environment see every iteration begin and end.

An iteration is one task function run by a user (a nested TaskSet is not one; the tasks inside it are).
Locust has no event for it, so ``TaskSet.execute_task`` (and ``DefaultTaskSet``'s, which User-level tasks
go through) are wrapped once per process; the wrapper does nothing for environments without controllers.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from functools import wraps
from typing import Any, Protocol

from locust import User
from locust.env import Environment
from locust.user.task import DefaultTaskSet, TaskSet

__all__ = ["IterationController", "set_controllers"]


class IterationController(Protocol):
    """Gets control before and after each iteration of the users of one Environment."""

    def begin(self, user: User) -> None:
        """Called in the user's greenlet before the task runs; may block, or raise StopUser to end the user."""

    def end(self, user: User) -> None:
        """Called in the user's greenlet after the task, however it ended."""


_controllers: weakref.WeakKeyDictionary[Environment, list[IterationController]] = weakref.WeakKeyDictionary()
_installed = False


def set_controllers(environment: Environment, controllers: list[IterationController]) -> None:
    """Let ``controllers`` see the iterations of ``environment``'s users: ``begin`` in this order, ``end`` in
    reverse."""
    _install()
    _controllers[environment] = list(controllers)


def _is_iteration(task: Any) -> bool:
    return not (inspect.isclass(task) and issubclass(task, TaskSet))


def _wrap(execute_task: Callable[[Any, Any], Any]) -> Callable[[Any, Any], None]:
    @wraps(execute_task)
    def execute_iteration(self: TaskSet, task: Any) -> None:
        controllers = _controllers.get(self.user.environment)
        if not controllers or not _is_iteration(task):
            execute_task(self, task)
            return
        begun: list[IterationController] = []
        try:
            for controller in controllers:
                controller.begin(self.user)
                begun.append(controller)
            execute_task(self, task)
        finally:
            for controller in reversed(begun):
                controller.end(self.user)

    return execute_iteration


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    TaskSet.execute_task = _wrap(TaskSet.execute_task)  # type: ignore[method-assign]
    DefaultTaskSet.execute_task = _wrap(DefaultTaskSet.execute_task)  # type: ignore[method-assign]
