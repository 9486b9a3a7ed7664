"""The StatsD mirror: Locust request events and run gauges, sent to StatsD for Graphite and Grafana.

``naming`` builds metric names and lines, ``sender`` batches them into UDP datagrams, ``gauges`` is the
registry other features publish run gauges into, and ``mirror`` wires it all to one Locust Environment.
"""

from locust_ext.statsd.gauges import publish_gauge, published_gauges
from locust_ext.statsd.mirror import MirrorConfig, StatsdMirror, add_arguments, on_init

__all__ = ["MirrorConfig", "StatsdMirror", "add_arguments", "on_init", "publish_gauge", "published_gauges"]
