"""Worker momentum and the distributed-SGD regime of the robustness papers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from flwr.app import RecordDict

from stamen.clients.round_memory import RoundMemory
from stamen.clients.training import TrainSettings, minibatches
from stamen.clients.worker_momentum import MOMENTUM_KEY, apply_worker_momentum
from stamen.datasets import load_dataset
from stamen.federation import train_partitions
from stamen.models import create_model
from stamen.seeding import client_rng
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.results import RunRecorder


def memory_of(state: RecordDict, store=None) -> RoundMemory:
    return RoundMemory(state, MOMENTUM_KEY, store)


def test_momentum_accumulates_in_the_node_state():
    state = memory_of(RecordDict())
    first = apply_worker_momentum(state, torch.tensor([1.0, 2.0]), beta=0.5, server_round=1)
    second = apply_worker_momentum(state, torch.tensor([1.0, 0.0]), beta=0.5, server_round=2)
    torch.testing.assert_close(first, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(second, torch.tensor([1.5, 1.0]))  # 0.5 * (1, 2) + (1, 0)


def test_momentum_decays_over_the_rounds_a_node_sat_out():
    state = memory_of(RecordDict())
    apply_worker_momentum(state, torch.tensor([1.0, 2.0]), beta=0.5, server_round=1)
    later = apply_worker_momentum(state, torch.tensor([1.0, 0.0]), beta=0.5, server_round=4)
    torch.testing.assert_close(later, torch.tensor([1.125, 0.25]))  # 0.5^3 * (1, 2) + (1, 0)


def test_a_round_run_again_after_a_resume_continues_the_momentum_from_before_it(tmp_path):
    """The node trained in rounds 1 and 3; the server stopped before finishing round 3 and
    runs it again: round 3 must continue round 1's momentum, not its own earlier attempt."""
    state, store = RecordDict(), tmp_path / "node.pt"
    memory = memory_of(state, store)
    apply_worker_momentum(memory, torch.tensor([1.0]), beta=0.5, server_round=1)
    apply_worker_momentum(memory, torch.tensor([10.0]), beta=0.5, server_round=3)
    again = apply_worker_momentum(memory_of(state), torch.tensor([2.0]), beta=0.5, server_round=3)
    torch.testing.assert_close(again, torch.tensor([2.25]))  # 0.5^2 * 1 + 2
    # a new process (empty state) finds round 3 (first attempt) in the store
    fresh = apply_worker_momentum(memory_of(RecordDict(), store), torch.tensor([2.0]), 0.5, 4)
    torch.testing.assert_close(fresh, torch.tensor([0.5 * (0.25 * 1.0 + 10.0) + 2.0]))


def test_sgd_regime_with_worker_momentum_is_centralised_heavy_ball_sgd(tiny_experiment, tmp_path):
    """One client, one gradient per round (local lr 1 sends -g), server applies lr 0.01:
    the run is torch's SGD with momentum 0.9 on the same batches."""
    experiment = tiny_experiment.replace(
        strategy="robust",
        num_clients=1,
        min_available_clients=1,
        partition="iid",
        local_steps=1,
        lr=1.0,
        momentum=0.0,
        server_lr=0.01,
        worker_momentum=0.9,
        num_server_rounds=3,
    )
    run_inline(experiment, RunRecorder(tmp_path / "run", experiment))
    federated = torch.load(tmp_path / "run" / "model.pt")

    data = load_dataset("synthetic")
    model = create_model("mlp", data.input_shape, data.num_classes, experiment.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    indices = train_partitions(experiment, 1)[0]
    settings = TrainSettings(local_steps=1, batch_size=experiment.batch_size)
    for server_round in range(1, 4):
        batch = next(
            iter(minibatches(indices, settings, client_rng(experiment.seed, server_round, 0)))
        )
        x, y = data.to_tensors(data.train, batch)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(federated[key], value, atol=1e-6, rtol=1e-5)
    initial = create_model("mlp", data.input_shape, data.num_classes, experiment.seed)
    assert any(not torch.allclose(federated[k], v) for k, v in initial.state_dict().items())
