"""Generator health: is the load generator itself distorting the numbers? Hub lag, CPU, memory, open files and
greenlets per process, gathered on the master, shown live, mirrored to StatsD and gradable by the thresholds gate.

See the README section "Generator health" for what each figure means and how to act on it.
"""

from locust_ext.health.monitor import HealthMonitor, totals
from locust_ext.health.sampler import HealthSampler

__all__ = ["HealthMonitor", "HealthSampler", "totals"]
