"""The repository itself is a Flower App: ``flwr run <repo>`` runs a simulation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stamen.simulations.ray_engine import (
    flower_env,
    flwr_json,
    flwr_text,
    superlink,
    wait_finished,
    write_connection,
)

REPO = Path(__file__).parents[2]


def test_flwr_run_of_the_repository_runs_a_simulation(tmp_path):
    home = tmp_path / "flwr-home"
    home.mkdir()
    env = flower_env(home)
    out = tmp_path / "out"
    run_config = (
        f"num-server-rounds=2 dataset='synthetic' model='mlp' partition='iid' num-clients=3 "
        f"local-steps=2 out-dir='{out}'"
    )
    with superlink(home, env) as address:
        write_connection(home, address)
        submitted = flwr_json(
            [
                "run",
                str(REPO),
                "stamen",
                "--run-config",
                run_config,
                "--federation-config",
                "num-supernodes=3",
            ],
            env,
        )
        status = wait_finished(submitted["run-id"], env)
        logs = flwr_text(["log", str(submitted["run-id"]), "stamen", "--show"], env)
    assert status == "finished:completed", logs[-4000:]
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics[metrics.metric == "replies"].value) == [3.0, 3.0]
    assert (out / "summary.json").exists()
