"""Locust wiring of the top-level features, which are single modules: latency buckets and host checks.

* ``--latency-buckets`` (:mod:`locust_ext.latency`): at ``init``, the process's response-time bucketing is
  set from the flag (fine by default). Locust's bucket function is process-wide, and a Locust process has one
  Environment, so the Environment that inits sets it.
* ``--local-ips`` (:mod:`locust_ext.local_ips`): at ``init``, the process's source addresses (exit 2 on a
  spec that cannot work); again at each ``test_start``, where a worker has the master's value and a local run
  the web UI form's.
* Host checks (:mod:`locust_ext.host_check`): at ``init``, every suite user class's settings; its host at
  start-up (headless or ``--autostart``), on the web UI's start form, or on a worker when the master's spawn
  message brings it.
* Process tuning (:mod:`locust_ext.process_tuning`): at ``init``, Locust's default arguments are built once
  per process; at the first ``test_start`` of a process that runs users, the cycle collector is tuned for many
  users (``--gc-tuning off`` leaves Python's defaults).
* Final reports (:mod:`locust_ext.final_reports`): at ``init`` on a master, its ``quit`` waits for the workers'
  final reports instead of Locust's fixed half second; a worker forked by ``--processes`` leaves ``--json-file``
  to the master.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from flask import Response, jsonify, request
from locust.env import Environment

from locust_ext import latency, local_ips, process_tuning
from locust_ext.cli import EXIT_INVALID, exit_invalid
from locust_ext.final_reports import no_json_file_in_forked_workers, wait_for_final_reports
from locust_ext.host_check import host_problem, settings_problem
from locust_ext.roles import is_master, is_worker, master_runner, started_as_worker

__all__ = ["add_arguments", "on_init"]

log = logging.getLogger("locust_ext")


def add_arguments(parser: Any, **_: Any) -> None:
    """``--latency-buckets``, in its own group, with an env var (host checks add no flags)."""
    group = parser.add_argument_group("Latency resolution")
    group.add_argument(
        "--latency-buckets",
        choices=["fine", "locust"],
        default="fine",
        env_var="LOCUST_LATENCY_BUCKETS",
        help="fine: 2 significant digits down to 1 µs below 10 ms (default); locust: whole ms below 100 ms",
    )
    sources = parser.add_argument_group("Source addresses", "where outgoing connections come from")
    sources.add_argument(
        "--local-ips",
        env_var="LOCUST_LOCAL_IPS",
        default="",
        metavar="ADDRESSES",
        help="source addresses connections bind to, round-robin per connection: a list, ranges "
        "(127.0.0.2-127.0.0.9) and CIDR blocks; each address has its own ephemeral ports per target "
        "(WebSocketUser, GrpcUser on the native transport)",
    )
    tuning = parser.add_argument_group("Process tuning", "for thousands of users per process")
    tuning.add_argument(
        "--gc-tuning",
        choices=["on", "off"],
        default="on",
        env_var="LOCUST_GC_TUNING",
        help="on: objects built before the run are left out of Python's cycle collections, young collections "
        "every 50,000 allocations (default); off: Python's defaults",
    )


def on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    """Set the bucketing from ``--latency-buckets``, then check the user classes and the host."""
    options = environment.parsed_options
    latency.install(fine=getattr(options, "latency_buckets", "fine") != "locust")
    if options is not None:
        process_tuning.cache_default_arguments()
        try:
            local_ips.pool.configure(getattr(options, "local_ips", "") or None)
        except ValueError as exc:
            exit_invalid(str(exc))
        environment.events.test_start.add_listener(_local_ips_at_start)
        environment.events.test_start.add_listener(_tune_collector_at_start)
    if (master := master_runner(environment)) is not None:
        wait_for_final_reports(master)
    elif is_worker(environment):
        no_json_file_in_forked_workers(environment)
    _check_hosts(environment, web_ui)


def _tune_collector_at_start(environment: Environment, **_kwargs: Any) -> None:
    """A process that runs users (not a master), unless ``--gc-tuning off`` (a worker has the master's value)."""
    if not is_master(environment) and getattr(environment.parsed_options, "gc_tuning", "on") != "off":
        process_tuning.tune_collector()


def _local_ips_at_start(environment: Environment, **_kwargs: Any) -> None:
    """The spec as the run starts (a worker's comes with the master's spawn message); quit on a bad one."""
    try:
        local_ips.pool.configure(getattr(environment.parsed_options, "local_ips", "") or None)
    except ValueError as exc:
        log.error("not started: %s", exc)
        environment.process_exit_code = EXIT_INVALID
        if environment.runner is not None:
            gevent.spawn(environment.runner.quit)


def _check_hosts(environment: Environment, web_ui: Any) -> None:
    """Check settings now, the host now or when it becomes known (see :mod:`locust_ext.host_check`)."""
    options = environment.parsed_options
    if options is None:  # Locust used as a library: the caller builds users and checks what it wants
        return
    problem = settings_problem(environment.user_classes)
    if problem:
        exit_invalid(problem)
    if started_as_worker(environment):
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
