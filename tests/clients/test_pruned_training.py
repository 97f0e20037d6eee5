"""A node's local training at the pruned model it was sent (Lin et al., ICLR 2020), against
a hand-written loop (batched: tests/clients/test_batched_training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stamen.clients.pruned_training import PrunedTraining
from stamen.clients.training import TrainSettings, minibatches, train
from stamen.models import create_model

STEPS, BATCH, LR, MOMENTUM, DECAY = 4, 8, 0.1, 0.9, 1e-3
SETTINGS = TrainSettings(
    local_steps=STEPS, batch_size=BATCH, lr=LR, momentum=MOMENTUM, weight_decay=DECAY
)


def by_hand(model, data, indices, masks, feedback):  # noqa: ANN001, ANN201
    """Heavy-ball SGD with weight decay (torch's SGD), each gradient taken at ``m * w``: applied
    to every weight with feedback; without, a pruned weight's gradient is dropped."""
    w = {name: p.detach().clone() for name, p in model.named_parameters()}
    m = {name: torch.from_numpy(mask).float() for name, mask in masks.items()}
    velocity = {}
    for step, batch in enumerate(minibatches(indices, SETTINGS, np.random.default_rng(2))):
        at = {name: x * m[name] if name in m else x for name, x in w.items()}
        model.load_state_dict({**model.state_dict(), **at})
        model.zero_grad()
        x, y = data.to_tensors(data.train, batch)
        F.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            g = p.grad if feedback or name not in m else p.grad * m[name]
            g = g + DECAY * w[name]
            velocity[name] = g if step == 0 else MOMENTUM * velocity[name] + g
            w[name] = w[name] - LR * velocity[name]
    return w


@pytest.mark.parametrize("feedback", [True, False], ids=["dpf", "no-feedback"])
def test_local_steps_are_taken_at_the_pruned_model(feedback, tiny_images, prune_half):
    data, indices = tiny_images(3 * STEPS * BATCH), np.arange(3 * STEPS * BATCH)
    model = create_model("mlp", data.input_shape, data.num_classes, seed=0)
    masks = prune_half(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = PrunedTraining.of(masks, feedback, torch.device("cpu"))
    train(
        model, data, indices, SETTINGS, np.random.default_rng(2), torch.device("cpu"), pruned=pruned
    )

    reference = create_model("mlp", data.input_shape, data.num_classes, seed=0)
    reference.load_state_dict(start)
    expected = by_hand(reference, data, indices, masks, feedback)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], atol=1e-6, rtol=1e-5)
    first = next(iter(masks))
    moved = model.state_dict()[first][torch.from_numpy(~masks[first])]
    # with feedback the pruned weights learn (from zero); without they stay zero
    assert bool((moved != 0).any()) == feedback


def test_the_dense_first_round_trains_as_without_pruning():
    assert PrunedTraining.of({}, True, torch.device("cpu")) is None
