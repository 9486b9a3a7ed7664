"""Tests of locust_ext/health/: generator health, its sampler, its thresholds rules and its web UI tab."""
