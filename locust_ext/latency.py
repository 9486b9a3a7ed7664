"""Sub-millisecond response-time buckets for Locust's histogram, on by default.

Locust files response times under 100 ms in whole-millisecond buckets, so a 0.3 ms RPC has a median of 0.
``fine_bucket`` keeps two significant digits down to one microsecond (0.347 → 0.35, 4.26 → 4.3) and leaves
10 ms and above exactly as Locust does. :func:`install` replaces ``locust.stats.bucket_response_time`` (Locust's
documented hook for custom bucketing, process-wide) at Locust's ``init`` in every process — workers bucket, the
master merges the float keys they send; ``--latency-buckets locust`` keeps Locust's own function (wiring:
:mod:`locust_ext.locust_hooks`). An Environment built in code, with no ``init`` fired, gets Locust's own
bucketing unless the code calls :func:`install`.
"""

from __future__ import annotations

import locust.stats

__all__ = ["fine_bucket", "install"]

_locust_bucket = locust.stats.bucket_response_time


def fine_bucket(response_time: float) -> float:
    """Round to two significant digits below 10 ms (1 µs resolution at the bottom); Locust's rounding above."""
    if response_time >= 10:
        return _locust_bucket(response_time)
    if response_time >= 1:
        return round(response_time, 1)
    if response_time >= 0.1:
        return round(response_time, 2)
    if response_time >= 0.01:
        return round(response_time, 3)
    return round(response_time, 3) if response_time > 0 else 0


def install(fine: bool = True) -> None:
    """Make Locust bucket with :func:`fine_bucket` (``fine=True``) or with its own function."""
    locust.stats.bucket_response_time = fine_bucket if fine else _locust_bucket  # type: ignore[assignment]
