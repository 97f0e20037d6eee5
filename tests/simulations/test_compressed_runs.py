"""Compressed runs end to end: the replies on the wire are smaller by what the compressor
keeps, the run still learns, and robust aggregation takes compressed updates."""

from __future__ import annotations

import pandas as pd

from stamen.simulations.inline_engine import run_inline
from stamen.simulations.results import RunRecorder


def traffic_and_accuracy(experiment, out):
    run_inline(experiment, RunRecorder(out, experiment))
    metrics = pd.read_csv(out / "metrics.csv")
    mean = metrics.groupby("metric").value.mean()
    accuracy = metrics[metrics.metric == "accuracy"].sort_values("round").value
    return mean["bytes-up"], mean["bytes-down"], accuracy.iloc[0], accuracy.iloc[-1]


def test_compressed_replies_are_smaller_on_the_wire_and_the_run_learns(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_server_rounds=4, eval_every=4)
    dense_up, dense_down, _, _ = traffic_and_accuracy(experiment, tmp_path / "dense")
    sparse = experiment.replace(uplink="ef | top-k(ratio=0.05)")
    up, down, first, last = traffic_and_accuracy(sparse, tmp_path / "sparse")
    # 5% of the values plus as many one- or two-byte indices, and npy headers
    assert up < 0.1 * dense_up and down == dense_down
    assert last > first + 0.1


def test_robust_aggregation_of_compressed_updates_with_a_byzantine_client(
    tiny_experiment, tmp_path
):
    experiment = tiny_experiment.replace(
        strategy="robust",
        aggregator="median",
        attack="sign-flip",
        num_byzantine=1,
        num_server_rounds=4,
        eval_every=4,
        uplink="ef | random-block(ratio=0.2)",
    )
    up, _, first, last = traffic_and_accuracy(experiment, tmp_path / "run")
    assert last > first + 0.1
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert (metrics[metrics.metric == "replies"].value == 4).all()
    assert "excluded-compressed" not in set(metrics.metric)


def test_warmup_rounds_travel_dense_then_compressed(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(
        num_server_rounds=4, uplink="ef | random-block(ratio=0.05)", uplink_warmup=2
    )
    run_inline(experiment, RunRecorder(tmp_path / "run", experiment))
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    up = metrics[metrics.metric == "bytes-up"].sort_values("round").value.to_numpy()
    down = metrics[metrics.metric == "bytes-down"].value.to_numpy()
    assert (up[:2] == down[:2]).all() and (up[2:] < 0.1 * down[2:]).all()
