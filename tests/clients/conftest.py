"""Shared by the client tests: tiny random images and a model pruned at random."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from stamen.datasets import FederatedDataset, Split


@pytest.fixture
def tiny_images() -> Callable[[int], FederatedDataset]:
    """``tiny_images(n)``: n random MNIST-shaped 12x12 images (the same for train and test),
    so that the bucketing CNN (two dropout layers) applies."""

    def make(n: int) -> FederatedDataset:
        rng = np.random.default_rng(0)
        split = Split(rng.integers(0, 256, (n, 1, 12, 12), dtype=np.uint8), rng.integers(0, 10, n))
        return FederatedDataset("tiny", split, split, 10, (1, 12, 12), "image")

    return make


@pytest.fixture
def prune_half() -> Callable[[torch.nn.Module], dict[str, np.ndarray]]:
    """``prune_half(model)``: half of each weight matrix pruned at random, the masks as the
    server sends them (True: kept); the model set to ``m * w``, as sent."""

    def prune(model: torch.nn.Module) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(1)
        masks = {
            name: rng.random(tuple(p.shape)) < 0.5
            for name, p in model.named_parameters()
            if p.dim() >= 2
        }
        with torch.no_grad():
            for name, mask in masks.items():
                parameter = model.get_parameter(name)
                parameter.mul_(torch.from_numpy(mask).to(parameter.device, parameter.dtype))
        return masks

    return prune
