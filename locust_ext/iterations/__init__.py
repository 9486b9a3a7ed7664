"""Iteration control: an exact iteration limit (``--iteration-limit``) or the open model
(``--arrival-rate`` / ``--arrival-stages``), with latency measured from each iteration's intended start.
The two are refused together (see ``plan``)."""

from locust_ext.iterations.arrival import OpenModel, arrival_offsets
from locust_ext.iterations.intended_start import begin_iteration, correct_request_events, end_iteration
from locust_ext.iterations.limit import IterationLimit
from locust_ext.iterations.locust_hooks import add_arguments, on_init

__all__ = [
    "IterationLimit",
    "OpenModel",
    "add_arguments",
    "arrival_offsets",
    "begin_iteration",
    "correct_request_events",
    "end_iteration",
    "on_init",
]
