"""Batched local SGD (torch.func) equals ``training.train`` run one client at a time, also
at a pruned model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stamen.clients.batched_training import BatchedSGD
from stamen.clients.pruned_training import PrunedTraining
from stamen.clients.training import TrainSettings, minibatches, train
from stamen.models import create_model

CLIENTS, STEPS, BATCH = 3, 2, 8
# CUDA where a machine has it: Stamen's dropout layers draw the same masks on every device
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("model_name", "momentum", "weight_decay"),
    [("cnn", 0.0, 0.0), ("cnn", 0.9, 1e-3), ("mlp", 0.5, 0.0)],
)
# a pruned model's clients step at m * w: onto every weight (DPF) or the kept ones only
@pytest.mark.parametrize("feedback", [None, True, False], ids=["dense", "dpf", "no-feedback"])
def test_each_client_ends_as_it_would_alone(
    model_name, momentum, weight_decay, device, feedback, tiny_images, prune_half
):
    device = torch.device(device)
    data = tiny_images(CLIENTS * STEPS * BATCH)
    global_model = create_model(model_name, data.input_shape, data.num_classes, seed=0)
    global_model.to(device)
    pruned = PrunedTraining.of(
        prune_half(global_model) if feedback is not None else {}, bool(feedback), device
    )
    masks = pruned.masks if pruned else {}
    start = {k: v.clone() for k, v in global_model.state_dict().items()}
    seeds = [11, 22, 33]
    # each client's batches, in order (local-steps mode draws them from its rng)
    settings = TrainSettings(
        local_steps=STEPS, batch_size=BATCH, lr=0.1, momentum=momentum, weight_decay=weight_decay
    )
    owned = np.arange(CLIENTS * STEPS * BATCH).reshape(CLIENTS, STEPS * BATCH)
    alone, inputs, labels = [], [], []
    for client, seed in enumerate(seeds):
        model = create_model(model_name, data.input_shape, data.num_classes, seed=0).to(device)
        model.load_state_dict(start)
        batches = []
        rng = np.random.default_rng(client)
        torch.manual_seed(seed)
        metrics = train(model, data, owned[client], settings, rng, device, pruned=pruned)
        alone.append(({k: v.detach() for k, v in model.named_parameters()}, metrics))
        for batch in minibatches(owned[client], settings, np.random.default_rng(client)):
            batches.append(data.to_tensors(data.train, batch))
        inputs.append(torch.stack([x for x, _ in batches]))
        labels.append(torch.stack([y for _, y in batches]))
    batched, losses = BatchedSGD(
        global_model, lr=0.1, momentum=momentum, weight_decay=weight_decay
    ).run(
        torch.stack(inputs).to(device),
        torch.stack(labels).to(device),
        seeds,
        masks={name: mask.expand(CLIENTS, *mask.shape) for name, mask in masks.items()},
        feedback=feedback is not False,
    )
    for client in range(CLIENTS):
        params, metrics = alone[client]
        for name, value in params.items():
            torch.testing.assert_close(batched[name][client], value, atol=1e-5, rtol=1e-4)
        assert float(losses[client]) == pytest.approx(metrics["train-loss"], rel=1e-5)
    # and the clients did differ (own batches, own dropout masks)
    first = next(iter(batched.values()))
    assert not torch.allclose(first[0], first[1])


def test_a_model_with_batch_norm_is_refused():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        BatchedSGD(model, lr=0.1)
