"""Parsing and running ``pre | ... | rule`` pipelines; impossible configurations refused early."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.aggregation import (
    AGGREGATORS,
    Bucketing,
    Bulyan,
    CenteredClip,
    Krum,
    MultiKrum,
    Resampling,
    TrimmedMean,
    parse_pipeline,
)
from stamen.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "n", "f", "pre", "rule"),
    [
        ("bucketing(s=2) | cclip(tau=10, iters=3)", 25, 5, (Bucketing(2),), CenteredClip(10, 3)),
        ("krum", 10, 2, (), Krum(f=2)),
        ("krum(f=1)", 10, 2, (), Krum(f=1)),
        ("multi-krum", 10, 2, (), MultiKrum(f=2, m=8)),
        ("trimmed-mean", 10, 2, (), TrimmedMean(b=2)),
        ("bucketing(s=2)|trimmed-mean", 25, 5, (Bucketing(2),), TrimmedMean(b=5)),
        ("resampling(s=2) | bulyan", 23, 2, (Resampling(2),), Bulyan(f=4)),
        ("  bucketing( s = 3 ) | bucketing(s=2) |mean ", 12, 1, (Bucketing(3), Bucketing(2)), None),
    ],
)
def test_good_pipelines(text, n, f, pre, rule) -> None:
    pipeline = parse_pipeline(text, n, f)
    assert pipeline.pre_aggregators == pre
    if rule is not None:
        assert pipeline.rule == rule


@pytest.mark.parametrize(
    ("text", "n", "f", "message"),
    [
        ("foo", 10, 0, "unknown aggregator 'foo': expected one of bulyan, cclip"),
        ("krum | mean", 10, 0, "'krum' is an aggregator"),
        ("bucketing | bucketing", 10, 0, "unknown aggregator 'bucketing'.*is a pre-aggregator"),
        ("krum(g=1)", 10, 0, "krum: unexpected argument g; allowed: f"),
        ("cclip(tau=ten)", 10, 0, "tau=ten must be a number"),
        ("cclip(10)", 10, 0, "must be written key=value"),
        ("cclip(tau=-1)", 10, 0, "tau must be a number > 0"),
        ("krum(", 10, 0, "cannot parse"),
        ("bucketing(s=2) |", 10, 0, "empty stage"),
        ("", 10, 0, "empty stage"),
        ("krum", 6, 2, "n > 2f \\+ 2.*n=6 with f=2"),
        ("bucketing(s=2) | krum", 21, 5, "n > 2f \\+ 2.*n=11 with f=5.*after bucketing"),
        ("bulyan", 10, 2, "n >= 4f \\+ 3"),
        ("median", 10, 5, "f < n/2"),
        ("trimmed-mean(b=5)", 10, 0, "2b < n"),
        ("multi-krum(m=20)", 10, 1, "m <= n"),
        ("mean", 10, 11, "num_byzantine must be an integer in \\[0, 10\\]"),
        ("cclip(tau=1, tau=2)", 10, 0, "given twice"),
    ],
)
def test_bad_pipelines(text, n, f, message) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_pipeline(text, n, f)
    assert "\n" not in str(error.value)


def test_bucketing_cclip_end_to_end_state_and_seed() -> None:
    x = torch.randn(25, 100, generator=torch.Generator().manual_seed(0))
    pipeline = parse_pipeline("bucketing(s=2) | cclip(tau=10, iters=3)", 25, 5)
    first, state = pipeline.aggregate(x, None, torch.Generator().manual_seed(1))
    again, _ = pipeline.aggregate(x, None, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and torch.equal(state, first)
    second, state2 = pipeline.aggregate(x, state, torch.Generator().manual_seed(2))
    assert second.shape == (100,) and torch.equal(state2, second)


def test_pre_aggregators_need_a_generator() -> None:
    with pytest.raises(ConfigError, match="generator"):
        parse_pipeline("bucketing | mean", 4).aggregate(torch.zeros(4, 2))


def test_every_registered_rule_parses_with_defaults() -> None:
    for name in AGGREGATORS:
        result, _ = parse_pipeline(name, 15, 3).aggregate(torch.randn(15, 6))
        assert result.shape == (6,)
