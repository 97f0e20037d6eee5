"""Mime and MimeLite: local steps with a frozen state, the server state, both engines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from stamen.algorithms.mime.base_optimizers import SGDMomentum
from stamen.clients.client_app import app as client_app
from stamen.clients.mime_training import full_batch_gradient, mime_steps, mime_train
from stamen.clients.training import TrainSettings
from stamen.errors import ConfigError
from stamen.experiment import Experiment
from stamen.federation import dataset_of, train_partitions
from stamen.messages.arrays import tensors_record
from stamen.messages.keys import GRADIENT_KEY
from stamen.models import create_model
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.ray_engine import run_ray
from stamen.simulations.results import RunRecorder
from stamen.strategies.mime import MimeState, MimeStrategy


def quadratic_round(x, m, lite, centres=(1.0, -3.0), beta=0.5, lr=0.1, steps=2):
    """One round of two clients with f_i(w) = (w - a_i)^2 / 2: returns the new x and m."""
    optimizer = SGDMomentum(beta=beta)
    state = {"momentum": torch.tensor([m])}
    full = [torch.tensor([x - a]) for a in centres]  # grad f_i(x)
    c = None if lite else sum(full) / 2
    ends = []
    for a in centres:
        y = {"w": torch.tensor([x])}
        gradient = lambda point, batch, a=a: (point["w"] - a, torch.zeros(()))  # noqa: E731
        mime_steps(y, range(steps), gradient, optimizer, state, c, {"w": torch.tensor([x])}, lr)
        ends.append(float(y["w"]))
    assert float(state["momentum"]) == m  # the client never changes the state
    new_state = optimizer.update_state(sum(full) / 2, state)
    return sum(ends) / 2, float(new_state["momentum"])


@pytest.mark.parametrize("lite", [False, True])
def test_two_clients_on_a_quadratic_by_hand(lite):
    # Round 1 from x = 0, m = 0: c = mean(-1, 3) = 1. Mime: both clients step d = 1, then
    # d = (y - x) + c = 0.9: y = -0.1 - 0.09 = -0.19. MimeLite: client 1 goes 0.1, 0.19;
    # client 2 goes -0.3, -0.57; the mean is -0.19 too. m = 0.5 * 0 + 1 = 1.
    x, m = quadratic_round(0.0, 0.0, lite)
    assert x == pytest.approx(-0.19) and m == pytest.approx(1.0)
    # Round 2: c = mean(-1.19, 2.81) = 0.81; Mime: U = 0.81 + 0.5 = 1.31 -> -0.321, then
    # d = -0.131 + 0.81 = 0.679, U = 1.179 -> -0.4389. m = 0.5 * 1 + 0.81 = 1.31.
    x, m = quadratic_round(x, m, lite)
    assert x == pytest.approx(-0.4389) and m == pytest.approx(1.31)


def test_mime_control_variate_removes_client_drift():
    """With equal curvature, Mime's clients follow the same path whatever their data."""
    optimizer, state = SGDMomentum(beta=0.0), {"momentum": torch.zeros(1)}
    ends = []
    for a in (1.0, -3.0):
        y = {"w": torch.zeros(1)}
        gradient = lambda point, batch, a=a: (point["w"] - a, torch.zeros(()))  # noqa: E731
        mime_steps(y, range(5), gradient, optimizer, state, torch.ones(1), {"w": torch.zeros(1)})
        ends.append(float(y["w"]))
    assert ends[0] == pytest.approx(ends[1])


def test_local_training_does_not_touch_the_received_state(tiny_experiment):
    data = dataset_of(tiny_experiment)
    model = create_model("mlp", data.input_shape, data.num_classes, seed=0)
    size = sum(p.numel() for p in model.parameters())
    state = {"momentum": torch.randn(size)}
    sent = {k: v.clone() for k, v in state.items()}
    control = torch.randn(size)
    before = [p.detach().clone() for p in model.parameters()]
    mime_train(
        model,
        data,
        train_partitions(tiny_experiment, 4)[0],
        TrainSettings(local_steps=3, batch_size=8, lr=0.1),
        SGDMomentum(beta=0.9),
        state,
        control,
        np.random.default_rng(0),
        torch.device("cpu"),
    )
    assert torch.equal(state["momentum"], sent["momentum"])
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_full_batch_gradient_over_all_data_or_some_batches(tiny_experiment):
    data = dataset_of(tiny_experiment)
    model = create_model("mlp", data.input_shape, data.num_classes, seed=0)
    indices = train_partitions(tiny_experiment, 4)[0]
    cpu = torch.device("cpu")

    def reference(rows):
        model.zero_grad()
        inputs, labels = data.to_tensors(data.train, rows)
        F.cross_entropy(model(inputs), labels).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    full = full_batch_gradient(model, data, indices, cpu, chunk_size=7)  # chunks don't matter
    assert torch.allclose(full, reference(indices), atol=1e-6)
    some = full_batch_gradient(
        model, data, indices, cpu, max_batches=2, batch_size=5, rng=np.random.default_rng(3)
    )
    drawn = np.random.default_rng(3).permutation(indices)[:10]
    assert torch.allclose(some, reference(drawn), atol=1e-6)
    assert not torch.allclose(some, full, atol=1e-3)


GLOBAL = ArrayRecord({"w": Array(np.zeros(2, np.float32))})


def reply(node_id, w, gradient=None, examples=10):
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    request = Message(RecordDict(), dst_node_id=node_id, message_type="train")
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.asarray(w, np.float32))}),
            "metrics": MetricRecord({"num-examples": examples, "train-loss": 1.0}),
        }
    )
    if gradient is not None:
        content[GRADIENT_KEY] = tensors_record({GRADIENT_KEY: torch.tensor(gradient)})
    return Message(content, reply_to=request)


def lite_strategy():
    strategy = MimeStrategy("sgdm(beta=0.5)", lite=True)
    strategy.state = MimeState(arrays=GLOBAL)
    return strategy


def test_server_state_moves_with_the_full_batch_gradients_only():
    strategy = lite_strategy()
    replies = [reply(1, [1, 1], [2.0, 0.0], examples=10), reply(2, [3, 5], [0.0, 4.0], examples=30)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays["w"].numpy() == pytest.approx([2.5, 4.0])  # example-weighted mean
    expected = torch.tensor([0.5, 3.0])  # V(g, 0) = g, g the weighted mean gradient
    assert torch.allclose(strategy.state.optimizer_state["momentum"], expected)
    other = lite_strategy()
    other.aggregate_train(1, [reply(1, [9, -9], [2.0, 0.0], 10), reply(2, [0, 7], [0.0, 4.0], 30)])
    assert torch.equal(other.state.optimizer_state["momentum"], expected)  # models don't enter s
    assert metrics["excluded"] == 0


def test_malformed_replies_are_excluded_and_counted():
    strategy = lite_strategy()
    replies = [
        reply(1, [1, 1], [1.0, 1.0]),
        reply(2, [5, 5], [float("nan"), 1.0]),  # NaN gradient
        reply(3, [5, 5]),  # no gradient
        reply(4, [5, 5, 5], [1.0, 1.0]),  # wrong model shape
        reply(5, [5, 5], [1.0, 1.0, 1.0]),  # wrong gradient size
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays["w"].numpy() == pytest.approx([1.0, 1.0])
    assert metrics["excluded"] == 4


def test_no_valid_reply_keeps_the_model():
    arrays, metrics = lite_strategy().aggregate_train(1, [reply(1, [1, 1])])
    assert arrays is None and metrics["excluded"] == 1


class GradientGrid:
    """Answers Mime's gradient phase: node 1 with a valid gradient, node 2 with NaN."""

    def get_node_ids(self):
        return [1, 2]

    def send_and_receive(self, messages, timeout=None):
        assert {m.metadata.message_type for m in messages} == {"query.gradient"}
        gradients = {1: [3.0, 1.0], 2: [float("nan"), 0.0]}
        nodes = [m.metadata.dst_node_id for m in messages]
        return [reply(node, [0, 0], gradients[node]) for node in nodes]


def test_gradient_phase_gives_the_control_variate_and_excludes_bad_gradients():
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    strategy = MimeStrategy("sgdm", lite=False, min_available_nodes=2)
    messages = list(strategy.configure_train(1, GLOBAL, ConfigRecord(), GradientGrid()))
    assert {m.metadata.dst_node_id for m in messages} == {1, 2}
    assert torch.equal(strategy.state.control_variate, torch.tensor([3.0, 1.0]))
    assert messages[0].content["control-variate"]["control-variate"].numpy().tolist() == [3, 1]
    assert strategy.state.excluded_gradients == 1
    _, metrics = strategy.aggregate_train(1, [reply(1, [1, 1]), reply(2, [3, 3])])
    assert metrics["excluded-gradients"] == 1 and metrics["excluded"] == 0
    assert torch.equal(strategy.state.optimizer_state["momentum"], torch.tensor([3.0, 1.0]))


def one_client(tiny_experiment, tmp_path, **changes):
    return tiny_experiment.replace(
        num_clients=1,
        min_available_clients=1,
        local_steps=1,
        batch_size=10**6,  # one batch of all the data: the local step is the full gradient
        eval_batch_size=10**6,  # and so is Mime's control variate
        num_server_rounds=3,
        eval_every=3,
        lr=0.01,
        out_dir=str(tmp_path),
        **changes,
    )


@pytest.mark.parametrize("strategy", ["mime", "mimelite"])
@pytest.mark.parametrize(
    ("spec", "reference"),
    [
        ("sgdm(beta=0.9)", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
        # eps well above float32 noise: Adam's g / sqrt(v) amplifies the rounding of tiny
        # gradients, which are summed in another order on each side
        (
            "adam(beta1=0.9, beta2=0.99, eps=1e-4)",
            lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-4),
        ),
    ],
)
def test_one_client_one_step_is_centralised_training(
    tiny_experiment, tmp_path, strategy, spec, reference
):
    experiment = one_client(tiny_experiment, tmp_path, strategy=strategy, base_optimizer=spec)
    run_inline(experiment, RunRecorder(tmp_path, experiment))
    ours = torch.load(tmp_path / "model.pt")
    data = dataset_of(experiment)
    model = create_model("mlp", data.input_shape, data.num_classes, experiment.seed)
    inputs, labels = data.to_tensors(data.train, train_partitions(experiment, 1)[0])
    optimizer = reference(model.parameters())
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    for key, value in model.state_dict().items():
        assert torch.allclose(ours[key], value, atol=1e-5), key


def test_mime_agrees_across_engines(tiny_experiment, tmp_path):
    """Both message phases (gradients, then training) run the same on Ray. (SGDm: Adam's
    g / sqrt(v) would magnify the engines' different float reduction orders.)"""
    experiment = tiny_experiment.replace(strategy="mime")
    run_inline(experiment, RunRecorder(tmp_path / "inline", experiment))
    run_ray(experiment, tmp_path / "ray")
    inline, ray = (torch.load(tmp_path / d / "model.pt") for d in ("inline", "ray"))
    for key in inline:
        assert torch.allclose(inline[key], ray[key], atol=1e-6, rtol=0), key


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"base-optimizer": "rmsprop"}, "expected one of adam, sgdm"),
        ({"weight-decay": 0.1}, "weight-decay is not supported by mime"),
        ({"attack": "sign-flip", "num-byzantine": 1}, "needs strategy=robust"),
    ],
)
def test_bad_mime_settings_are_refused(settings, expected):
    with pytest.raises(ConfigError, match=expected):
        Experiment.from_run_config({"strategy": "mime", **settings})
