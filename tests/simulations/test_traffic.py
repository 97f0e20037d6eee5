"""Training traffic per client and round, counted by the grid."""

from __future__ import annotations

import pandas as pd
from flwr.app import ArrayRecord, Message, RecordDict

from stamen.federation import dataset_of
from stamen.models import create_model
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.results import RunRecorder
from stamen.simulations.traffic import payload_bytes


def traffic(experiment, out_dir):
    run_inline(experiment, RunRecorder(out_dir, experiment))
    metrics = pd.read_csv(out_dir / "metrics.csv")
    rows = metrics[metrics.metric.isin(["bytes-down", "bytes-up"])]
    return rows.pivot(index="round", columns="metric", values="value")


def test_fedavg_sends_and_receives_one_model_per_client_and_round(tiny_experiment, tmp_path):
    data = dataset_of(tiny_experiment)
    model = create_model("mlp", data.input_shape, data.num_classes, 0)
    found = traffic(tiny_experiment.replace(fraction_train=0.5), tmp_path)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict())})
    size = payload_bytes(Message(content, dst_node_id=1, message_type="train"))
    assert list(found["bytes-down"]) == [size, size] and list(found["bytes-up"]) == [size, size]


def test_mime_traffic_counts_its_gradient_phase_state_and_control_variate(
    tiny_experiment, tmp_path
):
    fedavg = traffic(tiny_experiment, tmp_path / "fedavg")
    mime = traffic(tiny_experiment.replace(strategy="mime"), tmp_path / "mime")
    lite = traffic(tiny_experiment.replace(strategy="mimelite"), tmp_path / "lite")
    model = fedavg["bytes-down"].iloc[0]
    # round 2 (the state exists): Mime sends x twice, s and c, receives grad f_i(x) and y_i;
    # MimeLite sends x and s, receives y_i and grad f_i(x). Flat vectors have smaller headers.
    assert abs(mime["bytes-down"].iloc[1] / model - 4) < 0.01
    assert abs(mime["bytes-up"].iloc[1] / model - 2) < 0.01
    assert abs(lite["bytes-down"].iloc[1] / model - 2) < 0.01
    assert abs(lite["bytes-up"].iloc[1] / model - 2) < 0.01
