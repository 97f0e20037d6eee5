import numpy as np
import pytest
import torch

from stamen.clients.training import TrainSettings, evaluate, minibatches, train
from stamen.datasets import FederatedDataset, Split


def linear_data(n=256, seed=0) -> FederatedDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    split = Split(x=x, y=y)
    return FederatedDataset("toy", split, split, num_classes=2, input_shape=(2,), kind="vector")


def test_minibatches_epochs_cover_every_index_once_per_epoch():
    indices = np.arange(10, 20)
    batches = list(
        minibatches(indices, TrainSettings(local_epochs=2, batch_size=4), np.random.default_rng(0))
    )
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(np.concatenate(batches[:3])) == list(indices)


def test_minibatches_steps_take_precedence_and_wrap_around():
    indices = np.arange(5)
    settings = TrainSettings(local_epochs=3, local_steps=4, batch_size=2)
    batches = list(minibatches(indices, settings, np.random.default_rng(0)))
    assert len(batches) == 4
    assert sorted(np.concatenate(batches[:3])) == list(indices)


def test_train_lowers_loss_and_is_deterministic_for_a_generator():
    data = linear_data()
    indices = np.arange(256)
    settings = TrainSettings(local_epochs=5, batch_size=32, lr=0.5)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        before = evaluate(model, data, data.train, indices, 64, torch.device("cpu"))
        metrics = train(
            model, data, indices, settings, np.random.default_rng(3), torch.device("cpu")
        )
        after = evaluate(model, data, data.train, indices, 64, torch.device("cpu"))
        models.append(model.state_dict())
        assert metrics["num-examples"] == 256
        assert after["loss"] < before["loss"]
        assert after["accuracy"] > 0.95
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_one_sgd_step_matches_the_hand_computed_update():
    data = linear_data(n=4)
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    train(
        model,
        data,
        np.arange(4),
        TrainSettings(local_steps=1, batch_size=4, lr=1.0),
        np.random.default_rng(0),
        torch.device("cpu"),
    )
    # At zero weights softmax is uniform: grad W = (p - onehot)^T x / n with p = 1/2.
    x, y = torch.tensor(data.train.x), torch.tensor(data.train.y)
    grad = (torch.full((4, 2), 0.5) - torch.nn.functional.one_hot(y, 2)).T @ x / 4
    assert torch.allclose(model.weight, -grad, atol=1e-6)


def test_proximal_term_pulls_towards_the_start():
    data = linear_data()
    indices = np.arange(256)
    distances = []
    for mu in (0.0, 10.0):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        start = [p.detach().clone() for p in model.parameters()]
        train(
            model,
            data,
            indices,
            TrainSettings(local_epochs=3, batch_size=32, lr=0.1, proximal_mu=mu),
            np.random.default_rng(0),
            torch.device("cpu"),
        )
        distances.append(sum((p - s).norm() for p, s in zip(model.parameters(), start)))
    assert distances[1] < 0.5 * distances[0]


def test_evaluate_counts_accuracy_and_mean_loss():
    data = linear_data(n=8)
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    metrics = evaluate(model, data, data.test, np.arange(8), 3, torch.device("cpu"))
    assert metrics["accuracy"] == 1.0
    logits = torch.tensor(data.test.x) @ model.weight.T
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(data.test.y)).item()
    assert metrics["loss"] == pytest.approx(expected, rel=1e-6)
    assert metrics["num-examples"] == 8
