"""S2's rules on distances select what the plaintext pipeline selects on the updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stamen.algorithms.aggregation.pipeline import parse_pipeline
from stamen.errors import ConfigError
from stamen.secure.rules import distance_rule


@pytest.mark.parametrize(
    "spec", ["krum", "multi-krum(m=3)", "bucketing(s=2) | krum", "bucketing(s=2) | multi-krum(m=2)"]
)
def test_weights_from_distances_give_the_plaintext_aggregate(spec):
    rng = np.random.default_rng(0)
    updates = np.vstack([rng.normal(0, 1, (9, 20)), rng.normal(5, 1, (3, 20))])
    distances = ((updates[:, None] - updates[None]) ** 2).sum(-1)
    weights = distance_rule(spec, 12, 1, np.random.default_rng(7))(distances)
    plain, _ = parse_pipeline(spec, 12, 1).aggregate(
        torch.from_numpy(updates), generator=np.random.default_rng(7)
    )
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    np.testing.assert_allclose(weights @ updates, plain.numpy(), atol=1e-9)


@pytest.mark.parametrize("spec", ["median", "cclip(tau=1)", "resampling(s=2) | krum(f=1)"])
def test_rules_that_need_the_updates_are_refused(spec):
    with pytest.raises(ConfigError, match="runs on distances only"):
        distance_rule(spec, 12, 1, np.random.default_rng(0))
