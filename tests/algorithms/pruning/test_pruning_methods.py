"""Magnitude masks, the cubic schedule and the pruning methods' specs."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.pruning import cubic, magnitude_masks, parse_pruning, sparsity_of
from stamen.errors import ConfigError
from stamen.experiment import Experiment


def test_unstructured_masks_prune_the_smallest_magnitudes_across_layers():
    weights = {
        "a": torch.tensor([[0.1, -5.0], [0.3, 2.0]]),
        "bias": torch.tensor([0.0, 0.0]),  # one dimension: never pruned
        "b": torch.tensor([[-0.2, 4.0, 0.05]]),
    }
    masks = magnitude_masks(weights, 0.5, structured=False)
    assert set(masks) == {"a", "b"}
    # 7 prunable weights, 3 pruned: 0.05, 0.1, -0.2
    assert masks["a"].tolist() == [[False, True], [True, True]]
    assert masks["b"].tolist() == [[False, True, False]]
    assert sparsity_of(masks) == pytest.approx(3 / 7)


def test_ties_at_the_threshold_prune_exactly_the_count():
    masks = magnitude_masks({"w": torch.ones(4, 5)}, 0.3, structured=False)
    assert int((~masks["w"]).sum()) == 6


def test_structured_masks_prune_whole_filters_by_norm():
    weights = {
        "conv": torch.stack([torch.full((2, 3, 3), v) for v in (1.0, 0.1, 3.0, 0.2)]),
        "fc": torch.tensor([[0.5, 0.5], [9.0, 9.0]]),
    }
    masks = magnitude_masks(weights, 0.4, structured=True)  # 76 weights: prune >= 30.4
    # smallest norms: conv filters 1 (0.1 * sqrt 18), 3 (0.2 * sqrt 18), then fc row 0
    kept = [bool(masks["conv"][f].all()) for f in range(4)]
    assert kept == [True, False, True, False]
    assert not masks["fc"][0].any() and masks["fc"][1].all()
    assert all(m.all() or not m.any() for m in masks["conv"])


def test_cubic_schedule_is_fast_first_and_reaches_the_target():
    assert cubic(0.9, 0, 10) == 0
    assert cubic(0.9, 10, 10) == pytest.approx(0.9)
    assert cubic(0.9, 5, 10) == pytest.approx(0.9 * (1 - 0.5**3))
    assert cubic(0.9, 1, 10) - cubic(0.9, 0, 10) > cubic(0.9, 10, 10) - cubic(0.9, 9, 10)


def test_when_each_method_recomputes_its_mask():
    dpf = parse_pruning("dpf(sparsity=0.8, every=4, until=1)")
    assert dpf.feedback and [t for t in range(1, 11) if dpf.target(t, 10) is not None] == [
        4,
        8,
        10,
    ]
    # by default the ramp ends at 3/4 of the run; the mask is fixed after it
    gradual = parse_pruning("gradual(sparsity=0.8, every=2)")
    assert not gradual.feedback
    assert [t for t in range(1, 21) if gradual.target(t, 20) is not None] == [
        2,
        4,
        6,
        8,
        10,
        12,
        14,
        15,
    ]
    assert gradual.target(6, 20) == pytest.approx(cubic(0.8, 6, 15))
    assert gradual.target(15, 20) == pytest.approx(0.8)
    one_shot = parse_pruning("one-shot(sparsity=0.8, at=0.3)")
    assert [t for t in range(1, 11) if one_shot.target(t, 10) is not None] == [3]
    assert one_shot.target(3, 10) == 0.8 and parse_pruning("none") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dpf(sparsity=1.0)", r"sparsity must be in \[0, 1\), got 1.0"),
        ("dpf(sparsity=-0.1)", r"sparsity must be in \[0, 1\)"),
        ("dpf(sparsity=0.9, every=0)", "every must be an integer >= 1"),
        ("gradual(sparsity=0.9, until=0)", r"until must be in \(0, 1\], got 0"),
        ("one-shot(sparsity=0.9, at=2)", r"at must be a fraction of the rounds in \[0, 1\]"),
        ("dpf", "needs sparsity=..."),
        ("snip(sparsity=0.9)", "expected one of dpf, gradual, one-shot"),
        ("dpf(sparsity=0.9, structured=1)", "structured must be true or false"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        Experiment(pruning=spec)


def test_pruning_refuses_strategies_without_one_model_and_a_compressed_downlink():
    with pytest.raises(ConfigError, match="not supported by strategy mime"):
        Experiment(strategy="mime", pruning="dpf(sparsity=0.5)")
    with pytest.raises(ConfigError, match="set downlink = 'none'"):
        Experiment(pruning="dpf(sparsity=0.5)", downlink="top-k(ratio=0.1)")
