"""One request per user naming what its process looks like once the run has started: Python's young-collection
threshold, and how many times Locust's argument parser was built since this file was imported (a worker used to
build it once per option of every spawn message). Read from the master's stats by tests/test_core/
test_process_tuning.py."""

from __future__ import annotations

import gc
import time

import locust.argument_parser
from locust import User, constant, events, task
from locust.exception import StopUser

import locust_ext.plugin  # noqa: F401  (the suite's hooks)

builds = 0
_setup = locust.argument_parser.setup_parser_arguments


def _counting_setup(*args: object, **kwargs: object) -> None:
    global builds
    builds += 1
    _setup(*args, **kwargs)


locust.argument_parser.setup_parser_arguments = _counting_setup


class Reporter(User):
    wait_time = constant(0.1)

    @task
    def report(self) -> None:
        for name in (f"gc young every {gc.get_threshold()[0]}", f"parser builds {min(builds, 10)}"):
            events.request.fire(
                request_type="process", name=name, response_time=0.0, response_length=0, exception=None,
                context={}, start_time=time.time(),
            )  # fmt: skip
        raise StopUser()
