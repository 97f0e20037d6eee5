"""Inputs shared by the aggregation tests: honest points plus 1e6 outliers."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def honest_and_outliers() -> tuple[torch.Tensor, int]:
    """15 inputs of dimension 20: 12 standard normal, 3 (= f) at 1e6; returns (updates, f)."""
    generator = torch.Generator().manual_seed(0)
    honest = torch.randn(12, 20, generator=generator, dtype=torch.float64)
    outliers = torch.full((3, 20), 1e6, dtype=torch.float64)
    return torch.cat([outliers[:1], honest[:6], outliers[1:], honest[6:]]), 3
