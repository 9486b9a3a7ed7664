"""The thresholds gate's grades as run gauges, published after every grading (the StatsD mirror sends them).

``thresholds.<rule>.<metric>.grade`` is the grade's index in the file's grades, best first (0 = the best
grade, the implicit "poor" = the last index); ``<rule>`` is the rule's type (when it has one) and its name
or pattern, ``<metric>`` its metric label (``response_time_p95``, ``error_rate``, ``throughput``), both
sanitised. A glob or regex rule grades several rows: the gauge shows the worst of them (rules whose names
sanitise alike share one gauge the same way). A rule x metric with no grade (no matching request,
insufficient data, no baseline value) sends no grade gauge. ``thresholds.failing`` counts the results whose
outcome is "fail", including ungraded ones that fail (strict mode, ``insufficient_data: fail``).
Published in :mod:`locust_ext.run_gauges` as one group, so a gauge whose rule lost its grade stops being sent.
"""

from __future__ import annotations

from locust.env import Environment

from locust_ext.run_gauges import gauge_segment, publish_gauges
from locust_ext.thresholds.grading import Verdict

__all__ = ["FAILING_GAUGE", "GAUGE_GROUP", "grade_gauges", "publish_grades"]

GAUGE_GROUP = "thresholds"
FAILING_GAUGE = f"{GAUGE_GROUP}.failing"


def grade_gauges(verdict: Verdict) -> dict[str, float]:
    """Gauge name below the prefix -> value, for one verdict (see the module docstring)."""
    all_grades = verdict.spec.all_grades
    gauges: dict[str, float] = {}
    for result in verdict.results:
        if result.grade is None:
            continue
        rule = f"{result.rule_type} {result.rule}" if result.rule_type else result.rule
        name = f"{GAUGE_GROUP}.{gauge_segment(rule)}.{gauge_segment(result.metric.label)}.grade"
        gauges[name] = max(gauges.get(name, 0.0), float(all_grades.index(result.grade)))
    gauges[FAILING_GAUGE] = float(verdict.counts["fail"])
    return gauges


def publish_grades(environment: Environment, verdict: Verdict) -> None:
    """Publish ``verdict``'s gauges for ``environment``, replacing the previous grading's."""
    publish_gauges(environment, GAUGE_GROUP, grade_gauges(verdict))
