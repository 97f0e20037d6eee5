"""A deployed node may train on its own files (node config ``data``) instead of a partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
from flwr.app import Context, RecordDict

from stamen.clients import client_app as stamen_client
from stamen.clients.client_app import node_data
from stamen.datasets import load_dataset
from stamen.simulations.inline_engine import InlineGrid
from stamen.simulations.results import RunRecorder
from stamen.simulations.server_app import run_experiment


def own_file(path, rng, train: int, test: int, features: int = 60) -> str:
    """A node's local data: vectors of the synthetic set's shape and labels 0-9."""
    np.savez(
        path,
        x_train=rng.normal(size=(train, features)).astype(np.float32),
        y_train=rng.integers(0, 10, train),
        x_test=rng.normal(size=(test, features)).astype(np.float32),
        y_test=rng.integers(0, 10, test),
    )
    return f"npz:{path}"


def context(node_config: dict, run_config: dict) -> Context:
    return Context(
        run_id=1, node_id=2, node_config=node_config, state=RecordDict(), run_config=run_config
    )


def test_a_node_with_its_own_files_uses_all_of_them(tiny_experiment, tmp_path):
    spec = own_file(tmp_path / "mine.npz", np.random.default_rng(0), train=37, test=11)
    config = tiny_experiment.to_run_config()
    mine = context({"partition-id": 0, "num-partitions": 4, "data": spec}, config)
    data, indices = node_data(tiny_experiment, mine, "train")
    assert len(data.train) == 37 and indices.tolist() == list(range(37))
    _, test_indices = node_data(tiny_experiment, mine, "test")
    assert len(test_indices) == 11
    shared = context({"partition-id": 0, "num-partitions": 4}, config)
    data, indices = node_data(tiny_experiment, shared, "train")
    assert data.name == load_dataset("synthetic").name and 0 < len(indices) < len(data.train)


def test_a_run_where_every_node_brings_its_own_data(tiny_experiment, tmp_path):
    rng = np.random.default_rng(1)
    grid = InlineGrid(stamen_client.app, tiny_experiment.to_run_config(), 4)
    for i, node in enumerate(grid.get_node_ids()):
        spec = own_file(tmp_path / f"node{i}.npz", rng, train=20 + 10 * i, test=5)
        grid._contexts[node].node_config["data"] = spec
    run_experiment(grid, tiny_experiment, RunRecorder(tmp_path / "run", tiny_experiment), "inline")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics[metrics.metric == "replies"].value) == [4.0, 4.0]
    assert "dropped.csv" not in {p.name for p in (tmp_path / "run").iterdir()}
