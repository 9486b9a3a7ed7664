"""A master that waits for its workers' final reports before it quits.

Locust's ``MasterRunner.quit`` tells every worker to quit, then sleeps 0.5 s "for final stats report from all
workers" and stops listening. A worker answers ``quit`` by stopping its users (up to ``--stop-timeout``), sending
its final report, then a ``quit`` of its own. On a loaded machine, or whenever stopping the users takes longer
than half a second, that final report arrives after the master stopped listening and every request it carried
is lost: Locust's totals then fall short of what the workers did (a ``--processes 2`` run counted 16 of the
68 calls its server served).

:func:`wait_for_final_reports` makes a master's ``quit`` wait until each worker has said it
quit (its final report comes before that, on the same connection), for at most ``--stop-timeout`` plus
:data:`REPORT_GRACE_S`. Workers Locust marked missing are waited for too: a loaded worker misses heartbeats for
a few seconds and comes back with its reports; one that is really gone costs that bound once, at the end.

A worker that ``--processes`` forked keeps the parent's ``--json-file`` (Locust drops ``--html`` and ``--csv`` in
its children, not that one) and writes its own, nearly empty, stats over the master's report when it exits;
whichever process wrote last won. :func:`no_json_file_in_forked_workers` drops it there. Wiring:
:mod:`locust_ext.locust_hooks` (``init``: the first on a master, the second on a worker).
"""

from __future__ import annotations

import time

import gevent
from locust.env import Environment
from locust.rpc import Message
from locust.runners import MasterRunner

from locust_ext.roles import is_forked_worker

__all__ = ["REPORT_GRACE_S", "no_json_file_in_forked_workers", "wait_for_final_reports"]

#: Seconds a quitting master waits for the workers' final reports beyond the users' stop timeout.
REPORT_GRACE_S = 5.0


def wait_for_final_reports(runner: MasterRunner) -> None:
    """Replace ``runner.quit`` (this runner only) with one that waits for the workers' final reports."""

    def quit() -> None:
        runner.stop(send_stop_to_client=False)
        for client in runner.clients.all:
            runner.server.send_to_client(Message("quit", None, client.id))
        deadline = time.monotonic() + (runner.environment.stop_timeout or 0.0) + REPORT_GRACE_S
        while time.monotonic() < deadline and len(runner.clients):
            gevent.sleep(0.05)
        runner.greenlet.kill(block=True)

    runner.quit = quit  # type: ignore[method-assign]


def no_json_file_in_forked_workers(environment: Environment) -> None:
    """On a worker forked by ``--processes``, forget ``--json-file``: the master writes that report."""
    options = environment.parsed_options
    if options is not None and is_forked_worker(environment) and getattr(options, "json_file", None):
        options.json_file = None
