"""Robust rules that S2 runs on squared distances alone: bucketing, then Krum or Multi-Krum.

S2 sees the pairwise squared distances ``D`` of the valid updates, never the updates. A
rule here returns per-client weights ``w`` (the aggregate is ``sum_i w_i x_i``, formed on
shares). Bucketing is linear: bucket means are ``B x`` for a row-stochastic ``B``, so their
Gram matrix is ``B G B^T`` with ``G = -1/2 J D J`` the centred Gram matrix recovered from
the distances (``J = I - 11^T / n``; distances do not depend on the centre). Krum and
Multi-Krum then score the buckets (Karimireddy, He, Jaggi, arXiv 2006.09365; Blanchard et
al., NeurIPS 2017), and the chosen buckets' weights flow back to their members.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from stamen.algorithms.aggregation.base import RandomGenerator
from stamen.algorithms.aggregation.krum import Krum, MultiKrum, krum_scores
from stamen.algorithms.aggregation.pipeline import parse_pipeline
from stamen.algorithms.aggregation.pre_aggregators import Bucketing
from stamen.errors import ConfigError

SUPPORTED = "bucketing(s) before krum or multi-krum(m)"


def distance_rule(
    spec: str, num_clients: int, num_byzantine: int, generator: RandomGenerator
) -> Callable[[np.ndarray], np.ndarray]:
    """The weights rule of pipeline ``spec`` (checked like the plaintext pipeline)."""
    pipeline = parse_pipeline(spec, num_clients, num_byzantine)
    buckets = pipeline.pre_aggregators
    rule = pipeline.rule
    if not isinstance(rule, Krum | MultiKrum) or not all(isinstance(b, Bucketing) for b in buckets):
        raise ConfigError(f"secure aggregation runs on distances only: {SUPPORTED}, got {spec!r}")
    chosen = 1 if isinstance(rule, Krum) else rule.m

    def weights(distances: np.ndarray) -> np.ndarray:
        n = len(distances)
        mixing = np.eye(n)
        for stage in buckets:  # Bucketing.apply's matrix, drawn from the same generator
            mixing = stage.mixing(mixing.shape[0], generator).numpy() @ mixing
        centring = np.eye(n) - 1.0 / n
        gram = mixing @ (-0.5 * centring @ distances @ centring) @ mixing.T
        diagonal = np.diag(gram)
        mixed = diagonal[:, None] + diagonal[None, :] - 2 * gram
        scores = krum_scores(torch.from_numpy(mixed), rule.f, getattr(rule, "power", 2))
        best = torch.sort(scores, stable=True).indices[: min(chosen, len(mixed))].numpy()
        return mixing[best].sum(axis=0) / len(best)

    return weights
