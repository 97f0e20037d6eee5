"""The run-config keys of robust aggregation (strategy ``robust``): the pipeline of
pre-aggregators and a rule, the clients' worker momentum, and how a centred-clipping radius
is scaled for that momentum."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from stamen.algorithms.aggregation.centered_clip import CLIP_SCALINGS, CenteredClip
from stamen.algorithms.aggregation.pipeline import Pipeline, parse_pipeline
from stamen.errors import ConfigError
from stamen.sections import Section


@dataclass(frozen=True)
class AggregationSettings(Section):
    aggregator: str = "mean"
    worker_momentum: float = 0.0
    clip_scaling: str = "none"

    UNIT_INTERVAL = ("worker_momentum",)
    STRATEGIES = ("robust",)

    def check(self) -> None:
        if self.clip_scaling not in CLIP_SCALINGS:
            raise ConfigError(
                f"unknown clip-scaling {self.clip_scaling!r}: expected one of "
                f"{', '.join(CLIP_SCALINGS)}"
            )
        if self.clip_scaling != "none" and self.worker_momentum == 1:
            raise ConfigError("clip-scaling needs worker-momentum < 1 (it divides by 1 - beta)")
        if self.strategy == "robust":
            pipeline_of(self)


def pipeline_of(experiment: Any) -> Pipeline:
    """The ``aggregator`` pipeline of an experiment, checked against the clients sampled per
    round. A centred-clipping radius is scaled for worker momentum by ``clip-scaling``; rules
    without a radius ignore it."""
    per_round = max(int(experiment.num_clients * experiment.fraction_train), 1)
    pipeline = parse_pipeline(experiment.aggregator, per_round, experiment.num_byzantine)
    if isinstance(pipeline.rule, CenteredClip):
        rule = pipeline.rule.scaled_for_momentum(
            experiment.clip_scaling, experiment.worker_momentum
        )
        pipeline = replace(pipeline, rule=rule)
    return pipeline
