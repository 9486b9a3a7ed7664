"""Tests of monitoring/: the image, compose and Kubernetes files, Graphite and the Grafana dashboards."""
