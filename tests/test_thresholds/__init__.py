"""Tests of locust_ext/thresholds/: the gate's loader, grading, reports and runs."""
