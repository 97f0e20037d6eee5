"""Every strategy runs with its own defaults: a user who picks one sets nothing else."""

from __future__ import annotations

import pandas as pd
import pytest

from stamen.experiment import Experiment
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.results import RunRecorder
from stamen.strategies import STRATEGIES


def test_a_strategy_default_fills_only_a_key_left_at_its_global_default():
    assert Experiment(strategy="feddf").server_holdout == 0.1
    assert Experiment(strategy="feddf", server_holdout=0.2).server_holdout == 0.2
    assert Experiment(strategy="secure").aggregator == "krum"
    chosen = "bucketing(s=2) | krum"
    assert Experiment(strategy="secure", aggregator=chosen).aggregator == chosen
    assert Experiment(strategy="fedavg").server_holdout == 0.0
    # The run config path (flwr run, stamen run --set) gets the same.
    assert Experiment.from_run_config({"strategy": "feddf"}).server_holdout == 0.1


@pytest.mark.parametrize("name", sorted(STRATEGIES.names()))
def test_every_strategy_runs_with_no_setting_of_its_own(name, tiny_experiment, tmp_path):
    """One short round on tiny data; nothing strategy-specific is set."""
    # distill-steps only keeps the test short: FedDF runs with its default of 10,000 too
    experiment = tiny_experiment.replace(strategy=name, num_server_rounds=1, distill_steps=50)
    run_inline(experiment, RunRecorder(tmp_path / name, experiment))
    metrics = pd.read_csv(tmp_path / name / "metrics.csv")
    assert (metrics["metric"] == "accuracy").any()
    assert not (metrics["metric"] == "skipped").any()
