"""FedDF: per-architecture students, group FedAvg then distillation, server data, engines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from stamen.algorithms.distill_data import ServerData, server_data
from stamen.algorithms.distillation import DistillSettings
from stamen.clients.client_app import app as client_app
from stamen.errors import ConfigError
from stamen.experiment import Experiment
from stamen.federation import dataset_of, server_holdout, train_partitions
from stamen.models import create_model
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.ray_engine import run_ray
from stamen.simulations.results import RunRecorder, read_metrics
from stamen.strategies.feddf import FedDFStrategy, distill_settings

SHAPE, CLASSES = (5,), 3
ARCHITECTURES = ("mlp", "mlp", "logreg", "logreg")  # of partitions 0..3 = nodes 1..4


def model(name, seed=0):
    return create_model(name, SHAPE, CLASSES, seed)


def record(name, seed=0):
    return ArrayRecord(model(name, seed).state_dict())


class FourNodes:
    def get_node_ids(self):
        return [1, 2, 3, 4]


def strategy(steps=0, keep_start=False):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, *SHAPE, generator=generator)
    server = ServerData(x[:100], (x[100:], (x[100:, 0] > 0).long()))
    return FedDFStrategy(
        ARCHITECTURES,
        lambda node: node - 1,
        lambda name: model(name, seed=7),
        server,
        DistillSettings(
            steps=steps, batch_size=32, eval_every=5, patience=steps, keep_start=keep_start
        ),
        torch.device("cpu"),
        min_available_nodes=4,
    )


def configured(feddf):
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    students = {"mlp": record("mlp"), "logreg": record("logreg")}
    arrays = ArrayRecord({f"{n}/{k}": r[k] for n, r in students.items() for k in r})
    return list(feddf.configure_train(1, arrays, ConfigRecord({"lr": 0.1}), FourNodes()))


def reply(node_id, arrays, examples=10):
    request = Message(RecordDict(), dst_node_id=node_id, message_type="train")
    metrics = MetricRecord({"num-examples": examples, "train-loss": 1.0})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=request)


def flat(arrays):
    return np.concatenate([arrays[k].numpy().ravel() for k in arrays])


def test_each_node_gets_the_student_of_its_architecture():
    messages = configured(strategy())
    assert sorted(m.metadata.dst_node_id for m in messages) == [1, 2, 3, 4]
    for message in messages:
        name = ARCHITECTURES[message.metadata.dst_node_id - 1]
        assert message.content["config"]["model"] == name
        assert message.content["config"]["lr"] == 0.1
        sent = message.content["arrays"]
        assert list(sent) == list(record(name)) and np.array_equal(flat(sent), flat(record(name)))


def test_without_distillation_each_group_is_fedavg_and_bad_replies_are_excluded():
    feddf = strategy(steps=0)
    configured(feddf)
    replies = [
        reply(1, record("mlp", 1), examples=10),
        reply(2, record("mlp", 2), examples=30),
        reply(3, record("logreg", 3)),
        reply(4, record("mlp", 4)),  # a logreg node sends an mlp: excluded
    ]
    arrays, metrics = feddf.aggregate_train(1, replies)
    students = feddf.state.students
    expected = 0.25 * flat(record("mlp", 1)) + 0.75 * flat(record("mlp", 2))
    assert np.allclose(flat(students["mlp"]), expected, atol=1e-6)
    assert np.allclose(flat(students["logreg"]), flat(record("logreg", 3)))
    assert metrics["excluded"] == 1
    assert sorted({key.split("/")[0] for key in arrays}) == ["logreg", "mlp"]
    for name in ("mlp", "logreg"):  # shapes never mix
        assert [students[name][k].shape for k in students[name]] == [
            record(name)[k].shape for k in record(name)
        ]


def test_a_group_without_replies_keeps_its_student():
    feddf = strategy(steps=0)
    configured(feddf)
    feddf.aggregate_train(1, [reply(1, record("mlp", 1))])
    assert np.array_equal(flat(feddf.state.students["logreg"]), flat(record("logreg")))


@pytest.mark.parametrize("keep_start", [False, True])
def test_distillation_runs_per_architecture_towards_all_teachers(keep_start):
    feddf = strategy(steps=20, keep_start=keep_start)
    configured(feddf)
    replies = [reply(n, record(ARCHITECTURES[n - 1], n)) for n in (1, 2, 3, 4)]
    _, metrics = feddf.aggregate_train(1, replies)
    fedavg = strategy(steps=0)
    configured(fedavg)
    fedavg.aggregate_train(1, replies)
    for name in ("mlp", "logreg"):
        assert metrics[f"teachers/{name}"] == 4  # the ensemble of all received models
        assert 5 <= metrics[f"distill-steps/{name}"] <= 20
        if keep_start:  # never worse on validation than the FedAvg start
            assert metrics[f"validation-distilled/{name}"] >= metrics[f"validation-fedavg/{name}"]
        else:  # a distilled checkpoint, never the untouched FedAvg start
            assert not np.array_equal(
                flat(feddf.state.students[name]), flat(fedavg.state.students[name])
            )


def test_the_run_config_reaches_the_distillation_with_the_authors_defaults():
    assert distill_settings(Experiment()) == DistillSettings(clip_norm=5.0, keep_start=False)
    changed = Experiment.from_run_config({"distill-clip-norm": 0.0, "distill-keep-start": True})
    settings = distill_settings(changed)
    assert settings.clip_norm == 0.0 and settings.keep_start is True


def test_no_valid_reply_keeps_the_models():
    feddf = strategy()
    configured(feddf)
    arrays, metrics = feddf.aggregate_train(1, [reply(1, record("logreg"))])
    assert arrays is None and metrics["excluded"] == 1


def test_the_server_holdout_never_reaches_a_client(tiny_experiment):
    experiment = tiny_experiment.replace(server_holdout=0.2)
    held = server_holdout(experiment)
    size = len(dataset_of(experiment).train)
    assert len(held) == round(0.2 * size)
    parts = train_partitions(experiment, 4)
    assert not np.intersect1d(np.concatenate(parts), held).size
    assert sum(map(len, parts)) == size - len(held)
    # no holdout: every train sample goes to a client, as before the option existed
    assert sum(map(len, train_partitions(tiny_experiment, 4))) == size


def test_server_data_sources(tiny_experiment, tmp_path):
    data = dataset_of(tiny_experiment)
    held = np.arange(300)
    own = server_data(data, held, "holdout", 100, 0, seed=0)
    assert len(own.validation[0]) == 100 and own.unlabeled.shape == (200, *data.input_shape)
    assert torch.equal(own.validation[1].unique(), torch.from_numpy(np.unique(data.train.y[held])))
    noise = server_data(data, held, "noise", 100, 50, seed=0)
    assert noise.unlabeled.shape == (50, *data.input_shape)
    other = server_data(data, held, "synthetic(alpha=0.5,beta=0.5)", 100, 70, seed=0)
    assert other.unlabeled.shape == (70, *data.input_shape)
    with pytest.raises(ConfigError, match="too few for distill-validation"):
        server_data(data, held, "holdout", 300, 0, seed=0)
    path = tmp_path / "small.npz"
    arrays = {
        f"{k}_{s}": v
        for s in ("train", "test")
        for k, v in (("x", np.zeros((4, 3), np.float32)), ("y", np.zeros(4, np.int64)))
    }
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=r"shape \(3,\)"):
        server_data(data, held, f"npz:{path}", 100, 0, seed=0)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"strategy": "feddf", "server-holdout": 0.1, "distill-data": "nope"},
            "unknown distill-data",
        ),
        ({"client-models": "mlp:0.5, cnn:0.5", "model": "mlp"}, "needs strategy=feddf"),
        ({"strategy": "feddf", "server-holdout": 0.1, "client-models": "mlp:1"}, "must be one of"),
        ({"distill-temperature": 0.0}, "distill-temperature must be > 0"),
        ({"distill-clip-norm": -1.0}, r"distill-clip-norm must be >= 0 \(0: no clipping\)"),
        ({"server-holdout": 1.0}, r"server-holdout must be in \[0, 1\)"),
    ],
)
def test_bad_feddf_settings_are_refused(settings, expected):
    with pytest.raises(ConfigError, match=expected):
        Experiment.from_run_config(settings)


def heterogeneous(tiny_experiment, **changes):
    return tiny_experiment.replace(
        strategy="feddf",
        server_holdout=0.2,
        distill_validation=50,
        client_models="mlp:0.5, logreg:0.5",
        distill_steps=10,
        distill_eval_every=5,
        distill_batch_size=32,
        **changes,
    )


def test_heterogeneous_run_agrees_across_engines_and_reports_each_architecture(
    tiny_experiment, tmp_path
):
    experiment = heterogeneous(tiny_experiment)
    run_inline(experiment, RunRecorder(tmp_path / "inline", experiment))
    run_ray(experiment, tmp_path / "ray")
    inline, ray = (torch.load(tmp_path / d / "model.pt") for d in ("inline", "ray"))
    assert list(inline) == list(model("mlp").state_dict())  # model.pt holds `model`
    for key in inline:
        assert torch.allclose(inline[key], ray[key], atol=1e-5, rtol=0), key
    metrics = read_metrics(tmp_path / "inline")
    server = metrics[metrics.scope == "server"]
    assert {"accuracy/mlp", "accuracy/logreg"} <= set(server.metric)
    last = server[server["round"] == experiment.num_server_rounds].set_index("metric").value
    assert last["accuracy"] == last["accuracy/mlp"]
    assert {"distill-steps/mlp", "distill-seconds/logreg"} <= set(metrics.metric)
