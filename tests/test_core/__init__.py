"""Tests of the neutral modules at locust_ext/'s top level: recording, derived types, final reports, local IPs,
the test kit."""
