"""Load shapes: k6-style stages, ramps (linear, exponential, stepped), spike, wave and churn.

Use a shape in a locustfile by subclassing it with class attributes, or from the command line with
``--stages 30s:100,1m:100,30s:0`` or ``--shape NAME:key=value,...`` (see ``locust_hooks``).
"""

from locust_ext.shapes.classes import (
    ChurnShape,
    ExponentialRampShape,
    LinearRampShape,
    SpikeShape,
    StagesShape,
    SteppedRampShape,
    SuiteShape,
    WaveShape,
)
from locust_ext.shapes.locust_hooks import SHAPES_BY_NAME, add_arguments, on_init, shape_from_options
from locust_ext.shapes.stages import ShapeError, Stage, parse_stages

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
    "add_arguments",
    "on_init",
    "parse_stages",
    "shape_from_options",
]
