"""Tests of locust_ext/statsd/: the StatsD mirror's naming, runs and the reference daemon."""
