"""Checkpoint and resume: a run stopped after any round and resumed ends exactly as the same
run without a stop (model, metrics), for strategies with server and client state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from stamen.errors import StamenError
from stamen.simulations.checkpoint import load_checkpoint
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.ray_engine import run_ray
from stamen.simulations.results import RunRecorder, read_metrics

STATEFUL = {
    # centered clipping (its centre), server momentum, worker momentum at the clients
    "robust-cclip-worker-momentum": dict(
        strategy="robust",
        aggregator="cclip(tau=1, iters=1)",
        server_momentum=0.9,
        worker_momentum=0.9,
        local_steps=1,
        lr=1.0,
        momentum=0.0,
        server_lr=0.1,
        fraction_train=0.5,
    ),
    "mime-adam": dict(strategy="mime", base_optimizer="adam", lr=0.01, gradient_batches=2),
    "fedavgm": dict(strategy="fedavgm", server_momentum=0.9, server_lr=0.5),
    # compressed replies: error-feedback memory and PowerSGD's warm start at the nodes
    "uplink-ef-powersgd": dict(uplink="ef | powersgd(rank=1)", fraction_train=0.5),
    "uplink-ef-qsgd-robust": dict(
        strategy="robust",
        aggregator="median",
        uplink="ef | qsgd(levels=2)",
        worker_momentum=0.5,
        fraction_train=0.5,
    ),
    # two-phase PowerSGD: the server's warm-start Q, the clients' error memory
    "powersgd-two-phase": dict(strategy="powersgd", powersgd_rank=1, fraction_train=0.5),
    # one student per architecture
    "feddf-heterogeneous": dict(
        strategy="feddf",
        server_holdout=0.2,
        distill_validation=50,
        client_models="mlp:0.5, logreg:0.5",
        distill_steps=10,
        distill_eval_every=5,
        distill_batch_size=32,
    ),
}


def comparable(out_dir):
    """The run's metrics without wall-clock timings (e.g. FedDF's distill-seconds)."""
    metrics = read_metrics(out_dir)
    metrics = metrics[~metrics.metric.str.contains("seconds")]
    return metrics.sort_values(["round", "scope", "metric"]).reset_index(drop=True)


@pytest.mark.parametrize("name", list(STATEFUL))
def test_a_resumed_run_ends_as_the_uninterrupted_run(tiny_experiment, tmp_path, name):
    experiment = tiny_experiment.replace(num_server_rounds=6, eval_every=2, **STATEFUL[name])
    whole = experiment.replace(out_dir=str(tmp_path / "whole"))
    run_inline(whole, RunRecorder(tmp_path / "whole", whole))

    # "stopped" after round 4: the same run with 4 rounds, then resumed to 6
    stopped = experiment.replace(out_dir=str(tmp_path / "stopped"), num_server_rounds=4)
    run_inline(stopped, RunRecorder(tmp_path / "stopped", stopped))
    assert load_checkpoint(tmp_path / "stopped").round == 4
    resumed = experiment.replace(out_dir=str(tmp_path / "stopped"), resume=True)
    run_inline(resumed, RunRecorder(tmp_path / "stopped", resumed))

    a, b = (torch.load(tmp_path / run / "model.pt") for run in ("whole", "stopped"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    pd.testing.assert_frame_equal(comparable(tmp_path / "whole"), comparable(tmp_path / "stopped"))


def test_rows_of_a_round_cut_short_are_dropped_on_resume(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_server_rounds=3)
    run_inline(experiment, RunRecorder(tmp_path / "run", experiment))
    before = comparable(tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv", "a") as file:
        file.write("4,clients,train-loss,9.0\n")  # the start of a round that never finished
    resumed = experiment.replace(resume=True)
    run_inline(resumed, RunRecorder(tmp_path / "run", resumed))
    pd.testing.assert_frame_equal(comparable(tmp_path / "run"), before)


def test_resume_without_a_checkpoint_says_so(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(resume=True, out_dir=str(tmp_path / "empty"))
    with pytest.raises(StamenError, match="nothing to resume"):
        run_inline(experiment, RunRecorder(tmp_path / "empty", experiment))


def test_a_killed_run_resumes_from_the_cli_to_the_same_result(tmp_path):
    """SIGKILL mid-run (no clean-up of any kind), then ``stamen run --resume``."""
    settings = [
        "dataset=synthetic",
        "model=mlp",
        "num-clients=4",
        "partition=iid",
        "local-steps=1",
        "strategy=robust",
        "aggregator=bucketing(s=2) | cclip(tau=1, iters=1)",
        "worker-momentum=0.9",
        "server-momentum=0.9",
        "num-server-rounds=30",
        "eval-every=5",
    ]
    command = [sys.executable, "-m", "stamen", "run"]
    for setting in settings:
        command += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(
        [*command, "--out", str(tmp_path / "whole")], env=env, capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr
    process = subprocess.Popen(
        [*command, "--out", str(tmp_path / "killed")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    stopped_after = load_checkpoint(tmp_path / "killed").round
    assert stopped_after < 30 and not (tmp_path / "killed" / "summary.json").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "stamen", "run", "--resume", str(tmp_path / "killed")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(tmp_path / run / "model.pt") for run in ("whole", "killed"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    pd.testing.assert_frame_equal(comparable(tmp_path / "whole"), comparable(tmp_path / "killed"))


def test_a_run_stopped_in_process_resumes_on_the_ray_engine(tiny_experiment, tmp_path):
    """Server state from the checkpoint, worker momentum from the nodes' files."""
    experiment = tiny_experiment.replace(
        num_server_rounds=4, **STATEFUL["robust-cclip-worker-momentum"]
    )
    whole = experiment.replace(out_dir=str(tmp_path / "whole"))
    run_inline(whole, RunRecorder(tmp_path / "whole", whole))
    stopped = experiment.replace(out_dir=str(tmp_path / "stopped"), num_server_rounds=2)
    run_inline(stopped, RunRecorder(tmp_path / "stopped", stopped))
    run_ray(experiment.replace(resume=True), tmp_path / "stopped")
    a, b = (torch.load(tmp_path / run / "model.pt") for run in ("whole", "stopped"))
    assert all(torch.allclose(a[key], b[key], atol=1e-6, rtol=0) for key in a)
    rounds = comparable(tmp_path / "stopped")["round"]
    assert rounds.tolist() == comparable(tmp_path / "whole")["round"].tolist()
