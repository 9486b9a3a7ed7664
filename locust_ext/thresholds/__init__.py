"""Thresholds gate: grade a Locust run against per-endpoint YAML tables, live and at the end, and set the exit code.

See the README section "Thresholds gate" for the file format, flags, exit codes and report schema.
"""

from locust_ext.thresholds.grading import MetricResult, Observation, Verdict, evaluate
from locust_ext.thresholds.loader import load_thresholds, parse_thresholds
from locust_ext.thresholds.locust_hooks import ThresholdGate, graded_event
from locust_ext.thresholds.model import ThresholdsError, ThresholdsFileError, ThresholdsSpec
from locust_ext.thresholds.reports import SCHEMA, render_report

__all__ = [
    "SCHEMA",
    "MetricResult",
    "Observation",
    "ThresholdGate",
    "ThresholdsError",
    "ThresholdsFileError",
    "ThresholdsSpec",
    "Verdict",
    "evaluate",
    "graded_event",
    "load_thresholds",
    "parse_thresholds",
    "render_report",
]
