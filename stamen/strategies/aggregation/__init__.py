"""Robust aggregation: rules and pre-aggregators over stacked updates (n, d), composed by string.

Importing this package registers every rule in ``AGGREGATORS`` and every pre-aggregator in
``PRE_AGGREGATORS``.
"""

from stamen.strategies.aggregation.base import (
    AGGREGATORS,
    PRE_AGGREGATORS,
    AggregationRule,
    PreAggregator,
)
from stamen.strategies.aggregation.bulyan import Bulyan
from stamen.strategies.aggregation.centered_clip import CLIP_SCALINGS, CenteredClip
from stamen.strategies.aggregation.coordinatewise import (
    Mean,
    Median,
    TrimmedMean,
    coordinate_median,
)
from stamen.strategies.aggregation.geomed import GeometricMedian
from stamen.strategies.aggregation.krum import Krum, MultiKrum, krum_scores
from stamen.strategies.aggregation.pipeline import Pipeline, parse_pipeline
from stamen.strategies.aggregation.pre_aggregators import Bucketing, Resampling

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
