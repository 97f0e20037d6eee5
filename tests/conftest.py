"""Shared fixtures: small, fast experiments on LEAF's synthetic data."""

from __future__ import annotations

import pytest

from stamen.experiment import Experiment


@pytest.fixture
def tiny_experiment(tmp_path) -> Experiment:
    """4 clients, 2 rounds, an MLP on Synthetic(1, 1): seconds per run."""
    return Experiment(
        dataset="synthetic",
        model="mlp",
        partition="iid",
        num_clients=4,
        num_server_rounds=2,
        local_steps=5,
        eval_every=1,
        batch_size=16,
        lr=0.05,
        min_available_clients=4,
        out_dir=str(tmp_path / "run"),
    )
