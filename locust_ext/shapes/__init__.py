"""Load shapes: k6-style stages, ramps (linear, exponential, stepped), spike, wave and churn.

Use a shape in a locustfile by subclassing it with class attributes, or from the command line with
``--stages 30s:100,1m:100,30s:0`` or ``--shape NAME:key=value,...`` (Locust wiring: ``locust_hooks``).
Stage lists are :mod:`locust_ext.stages`'s, shared with the open model's ``--arrival-stages``.
"""

from locust_ext.shapes.classes import (
    SHAPES_BY_NAME,
    ChurnShape,
    ExponentialRampShape,
    LinearRampShape,
    ShapeError,
    SpikeShape,
    StagesShape,
    SteppedRampShape,
    SuiteShape,
    WaveShape,
    shape_from_options,
)
from locust_ext.stages import Stage, parse_stages

__all__ = [
    "SHAPES_BY_NAME",
    "ChurnShape",
    "ExponentialRampShape",
    "LinearRampShape",
    "ShapeError",
    "SpikeShape",
    "Stage",
    "StagesShape",
    "SteppedRampShape",
    "SuiteShape",
    "WaveShape",
    "parse_stages",
    "shape_from_options",
]
