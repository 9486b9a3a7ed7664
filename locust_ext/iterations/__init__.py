"""Iteration control: an exact iteration limit (``--iteration-limit``) or the open model
(``--arrival-rate`` / ``--arrival-stages``), with latency measured from each iteration's intended start.
The two are refused together (see ``plan``); Locust wiring: ``locust_hooks``."""

from locust_ext.iterations.arrival import OpenModel, arrival_offsets
from locust_ext.iterations.intended_start import begin_iteration, correct_request_events, end_iteration
from locust_ext.iterations.limit import IterationLimit

__all__ = [
    "IterationLimit",
    "OpenModel",
    "arrival_offsets",
    "begin_iteration",
    "correct_request_events",
    "end_iteration",
]
