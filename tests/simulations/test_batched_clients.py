"""``batch-clients``: the in-process engine trains a round's clients together, with the
same results as one by one, and falls back (saying why, once) where it cannot."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch

from stamen.simulations.inline_engine import run_inline
from stamen.simulations.results import RunRecorder

SETTINGS = {
    # the robustness regime: one gradient per round, a client attack, worker momentum
    "robust-one-step": dict(
        strategy="robust",
        aggregator="bucketing(s=2) | cclip(tau=1, iters=3)",
        attack="sign-flip",
        num_byzantine=1,
        worker_momentum=0.9,
        local_steps=1,
        lr=1.0,
        momentum=0.0,
        server_lr=0.1,
    ),
    # FedAvg-style local training: several steps with momentum, sampled clients
    "fedavg-local-steps": dict(local_steps=3, momentum=0.9, fraction_train=0.5),
    "label-flip": dict(attack="label-flip", num_byzantine=2, local_steps=2),
    # compressed replies with error-feedback memory in the node state
    "uplink-ef-random-block": dict(
        uplink="ef | random-block(ratio=0.25)", local_steps=3, fraction_train=0.5
    ),
    # local steps at the pruned model: onto the dense weights (DPF) or the kept ones only
    "pruned-dpf": dict(pruning="dpf(sparsity=0.8)", local_steps=3, momentum=0.9),
    "pruned-gradual": dict(pruning="gradual(sparsity=0.8)", local_steps=3, momentum=0.9),
}


def run(experiment, out):
    run_inline(experiment, RunRecorder(out, experiment))
    return torch.load(out / "model.pt"), pd.read_csv(out / "metrics.csv")


@pytest.mark.parametrize("name", list(SETTINGS))
def test_batched_clients_give_the_one_by_one_results(tiny_experiment, tmp_path, name, caplog):
    experiment = tiny_experiment.replace(
        num_clients=6, min_available_clients=6, num_server_rounds=3, **SETTINGS[name]
    )
    alone, alone_metrics = run(experiment.replace(batch_clients="off"), tmp_path / "off")
    with caplog.at_level(logging.WARNING, logger="flwr"):
        batched, metrics = run(experiment.replace(batch_clients="on"), tmp_path / "on")
    assert "one by one" not in caplog.text  # it did batch
    for key in alone:
        torch.testing.assert_close(batched[key], alone[key], atol=1e-5, rtol=1e-4)
    pd.testing.assert_frame_equal(
        metrics[["round", "scope", "metric"]], alone_metrics[["round", "scope", "metric"]]
    )
    assert (metrics.value - alone_metrics.value).abs().max() < 1e-4


def test_what_cannot_be_batched_runs_one_by_one_and_says_so_once(tiny_experiment, tmp_path, caplog):
    experiment = tiny_experiment.replace(local_steps=0, local_epochs=1, num_server_rounds=3)
    alone, _ = run(experiment.replace(batch_clients="off"), tmp_path / "off")
    with caplog.at_level(logging.WARNING, logger="flwr"):
        fallback, _ = run(experiment.replace(batch_clients="on"), tmp_path / "on")
    assert caplog.text.count("Training clients one by one: only fixed local-steps") == 1
    assert all(torch.equal(fallback[key], alone[key]) for key in alone)


@pytest.mark.parametrize("pruning", ["none", "dpf(sparsity=0.5)"])  # each run its masks
def test_runs_in_one_process_train_together_with_their_results_alone(
    tiny_experiment, tmp_path, caplog, pruning
):
    from stamen.simulations.bench import _run_cells

    base = tiny_experiment.replace(
        num_clients=6, min_available_clients=6, num_server_rounds=3, batch_clients="on",
        pruning=pruning, **SETTINGS["robust-one-step"],
    )  # fmt: skip
    experiments = [base, base.replace(seed=1, aggregator="median"), base.replace(seed=2)]
    alone = [run(e, tmp_path / f"alone-{i}") for i, e in enumerate(experiments)]
    runs = [(e, tmp_path / f"together-{i}") for i, e in enumerate(experiments)]
    with caplog.at_level(logging.INFO, logger="stamen"):
        assert _run_cells(runs, threads=1, engine="inline") == [None] * 3
    assert "up to 3 rounds trained together" in caplog.text
    for (model, metrics), (_, out) in zip(alone, runs, strict=True):
        together = torch.load(out / "model.pt")
        for key in model:
            torch.testing.assert_close(together[key], model[key], atol=1e-5, rtol=1e-4)
        found = pd.read_csv(out / "metrics.csv")
        assert (found.value - metrics.value).abs().max() < 1e-4


def test_an_action_without_a_batched_step_runs_one_by_one(tiny_experiment, tmp_path, caplog):
    """Mime's train messages (action ``train.mime``) are never batched as plain SGD: the
    batched run equals the one-by-one run exactly, and the engine says why once."""
    experiment = tiny_experiment.replace(strategy="mimelite", local_steps=2, num_server_rounds=2)
    alone, _ = run(experiment.replace(batch_clients="off"), tmp_path / "off")
    with caplog.at_level(logging.WARNING, logger="flwr"):
        fallback, _ = run(experiment.replace(batch_clients="on"), tmp_path / "on")
    assert caplog.text.count("train.mime has no batched step") == 1
    assert all(torch.equal(fallback[key], alone[key]) for key in alone)


def test_secure_train_messages_are_batched_by_their_registered_step():
    from flwr.app import MessageType

    from stamen.clients.batched_round import BATCHED_STEPS
    from stamen.messages.keys import MIME_TRAIN, SECURE_TRAIN

    assert set(BATCHED_STEPS) == {MessageType.TRAIN, SECURE_TRAIN}
    assert MIME_TRAIN not in BATCHED_STEPS
