"""The StatsD mirror: Locust request events and run gauges, sent to StatsD for Graphite and Grafana.

``naming`` builds metric names and lines, ``sender`` batches them into UDP datagrams, ``mirror`` is the
listener bound to one Locust Environment and ``locust_hooks`` its flags and wiring. The gauges it sends besides
Locust's own come from :mod:`locust_ext.run_gauges`, where any feature publishes them.
"""

from locust_ext.statsd.mirror import MirrorConfig, StatsdMirror

__all__ = ["MirrorConfig", "StatsdMirror"]
