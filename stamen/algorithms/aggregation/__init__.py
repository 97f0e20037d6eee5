"""Robust aggregation: rules and pre-aggregators over stacked updates (n, d), composed by string.

Importing this package imports every module in it, which registers every rule in
``AGGREGATORS`` and every pre-aggregator in ``PRE_AGGREGATORS``: a new rule is one new file.
"""

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    PRE_AGGREGATORS,
    AggregationRule,
    PreAggregator,
)
from stamen.algorithms.aggregation.bulyan import Bulyan
from stamen.algorithms.aggregation.centered_clip import CLIP_SCALINGS, CenteredClip
from stamen.algorithms.aggregation.coordinatewise import (
    Mean,
    Median,
    TrimmedMean,
    coordinate_median,
)
from stamen.algorithms.aggregation.geomed import GeometricMedian
from stamen.algorithms.aggregation.krum import Krum, MultiKrum, krum_scores
from stamen.algorithms.aggregation.pipeline import Pipeline, parse_pipeline
from stamen.algorithms.aggregation.pre_aggregators import Bucketing, Resampling
from stamen.registry import import_package_modules

import_package_modules(__name__, __path__)

__all__ = [
    "AGGREGATORS",
    "PRE_AGGREGATORS",
    "AggregationRule",
    "Bucketing",
    "Bulyan",
    "CLIP_SCALINGS",
    "CenteredClip",
    "GeometricMedian",
    "Krum",
    "Mean",
    "Median",
    "MultiKrum",
    "Pipeline",
    "PreAggregator",
    "Resampling",
    "TrimmedMean",
    "coordinate_median",
    "krum_scores",
    "parse_pipeline",
]
