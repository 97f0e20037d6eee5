"""Any standard Flower ClientApp works with Stamen's ServerApp, on both engines.

The ClientApp (``foreign_client_app``) has no query handler and returns its arrays as a list
(keys "0", "1", ...): its replies are aggregated as flwr's FedAvg would, it is never sent a
message it cannot handle (no error in the logs), and a reply of other shapes is still dropped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.config import get_project_dir
from flwr.supercore.run import Run

from stamen.clients.client_app import app as stamen_app
from stamen.datasets import load_dataset
from stamen.models import create_model
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.ordered_grid import (
    STAMEN_CLIENT_APP,
    PartitionOrderedGrid,
    named_client_app,
)
from stamen.simulations.ray_engine import (
    flower_env,
    flwr_json,
    flwr_text,
    superlink,
    wait_finished,
    write_app,
    write_connection,
)
from stamen.simulations.reply_screen import refusal, with_sent_keys
from stamen.simulations.results import RunRecorder

REPO = Path(__file__).parents[2]
FOREIGN_APP = "tests.simulations.foreign_client_app:app"
MISMATCHED_APP = "tests.simulations.foreign_client_app:mismatched_app"
NOT_ASKED = "not asked for a partition-id"


@pytest.fixture(autouse=True)
def flower_logs_reach_caplog():
    """An earlier test in this process may have run the CLI, whose progress display quiets
    flwr's logger to errors (``quiet_flower_logs``): these tests read its info lines."""
    flower = logging.getLogger("flwr")
    level = flower.level
    flower.setLevel(logging.DEBUG)
    yield
    flower.setLevel(level)


@pytest.fixture
def importable(monkeypatch):
    """The repository root on the import path, here and in the processes Flower starts."""
    monkeypatch.syspath_prepend(str(REPO))
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


def mean_step(partitions: list[int], weighted: bool = True) -> float:
    """The aggregate of the clients' steps ``0.01 (p + 1)``, by ``10 (p + 1)`` examples."""
    steps = np.array([0.01 * (p + 1) for p in partitions])
    weights = np.array([10.0 * (p + 1) for p in partitions]) if weighted else np.ones(len(steps))
    return float(steps @ weights / weights.sum())


def assert_model_moved_by(out_dir: Path, experiment, step: float) -> None:
    data = load_dataset(experiment.dataset)
    start = create_model(experiment.model, data.input_shape, data.num_classes, experiment.seed)
    final = torch.load(out_dir / "model.pt")
    for key, value in start.state_dict().items():
        torch.testing.assert_close(final[key], value + step, atol=1e-6, rtol=0)


def assert_no_errors(text: str) -> None:
    assert "Traceback" not in text and "ERROR" not in text, text[-4000:]


@pytest.fixture
def sent():
    InlineGrid(stamen_app, {}, 1)  # Message construction needs a run context
    model = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    arrays = ArrayRecord({key: Array(value) for key, value in model.items()})
    return Message(RecordDict({"arrays": arrays}), dst_node_id=1, message_type="train")


def listed_reply(sent: Message, values: list[np.ndarray]) -> Message:
    metrics = MetricRecord({"num-examples": 10})
    content = RecordDict({"arrays": ArrayRecord(numpy_ndarrays=values), "metrics": metrics})
    return Message(content, reply_to=sent)


def test_a_list_in_the_order_sent_passes_the_screen_under_the_keys_sent(sent):
    reply = listed_reply(sent, [np.ones((3, 2), np.float32), np.ones(2, np.float32)])
    assert refusal(sent, reply) is None
    keyed = with_sent_keys(sent, reply)
    assert list(keyed.content["arrays"].keys()) == ["w", "b"]
    assert keyed.metadata.src_node_id == reply.metadata.src_node_id
    assert list(reply.content["arrays"].keys()) == ["0", "1"]  # the reply received is kept


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([np.ones(2, np.float32), np.ones((3, 2), np.float32)], "shape"),
        ([np.ones((3, 2), np.float32)], "keys"),
        ([np.ones((3, 2), np.float32), np.ones(2, np.float32), np.ones(2, np.float32)], "keys"),
    ],
    ids=["other shapes", "too few", "too many"],
)
def test_a_list_that_does_not_fit_the_model_sent_is_refused(sent, values, reason):
    found = refusal(sent, listed_reply(sent, values))
    assert found is not None and reason in found


partly_app = ClientApp()


@partly_app.query()
def partly_query(msg: Message, context: Context) -> Message:
    """Partitions 0, 2, 3 tell 3 - p (node order reversed); partition 1 fails."""
    partition = int(context.node_config["partition-id"])
    if partition == 1:
        raise RuntimeError("cannot tell")
    content = RecordDict({"metrics": MetricRecord({"partition-id": 3 - partition})})
    return Message(content, reply_to=msg)


def test_nodes_are_asked_and_those_that_cannot_tell_are_numbered_after(caplog):
    inline = InlineGrid(partly_app, {}, 4)
    node = inline.get_node_ids()  # node[p] holds partition p
    grid = PartitionOrderedGrid(inline)
    assert grid.get_node_ids() == [node[3], node[2], node[0], node[1]]
    assert [grid.partition_id(n) for n in node] == [3, 4, 1, 0]
    assert "1 node(s) did not report a partition-id: numbered 4 to 4" in caplog.text


def test_nodes_not_asked_are_numbered_in_node_id_order(caplog):
    caplog.set_level(logging.INFO)
    inline = InlineGrid(partly_app, {}, 3)
    grid = PartitionOrderedGrid(inline, ask_partitions=False)
    nodes = grid.get_node_ids()
    assert nodes == sorted(inline.get_node_ids())
    assert [grid.partition_id(n) for n in nodes] == [0, 1, 2]
    assert_no_errors(caplog.text)  # no query: partition 1 would have failed
    assert caplog.text.count(NOT_ASKED) == 1


@pytest.mark.parametrize(("strategy", "weighted"), [("fedavg", True), ("robust", False)])
def test_inline_engine_aggregates_a_classic_flower_client_app(
    tiny_experiment, tmp_path, importable, caplog, strategy, weighted
):
    experiment = tiny_experiment.replace(strategy=strategy)
    caplog.set_level(logging.INFO)
    run_inline(experiment, RunRecorder(tmp_path / "run", experiment), client_app=FOREIGN_APP)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics[metrics.metric == "replies"].value) == [4.0, 4.0]
    assert list(metrics[metrics.metric == "failures"].value) == [0.0, 0.0]
    assert_model_moved_by(tmp_path / "run", experiment, 2 * mean_step([0, 1, 2, 3], weighted))
    assert_no_errors(caplog.text)
    assert caplog.text.count(NOT_ASKED) == 1


def test_a_list_of_other_shapes_is_still_dropped(tiny_experiment, tmp_path, importable, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "run"
    run_inline(tiny_experiment, RunRecorder(out, tiny_experiment), client_app=MISMATCHED_APP)
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics[metrics.metric == "replies"].value) == [3.0, 3.0]
    dropped = pd.read_csv(out / "dropped.csv")
    assert list(dropped["partition-id"]) == [0, 0] and dropped.reason.str.contains("shape").all()
    assert_model_moved_by(out, tiny_experiment, 2 * mean_step([1, 2, 3]))


def test_the_server_reads_which_client_app_the_flower_app_names(
    tiny_experiment, tmp_path, monkeypatch
):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path))
    run = Run.create_empty(1)
    assert named_client_app(run) is None  # no installed App (the in-process engine)
    run.fab_id, run.fab_version, run.fab_hash = "stamen/stamen-run", "1.0.0", "ab" * 32
    write_app(get_project_dir(run.fab_id, run.fab_version, run.fab_hash), tiny_experiment)
    assert named_client_app(run) == STAMEN_CLIENT_APP
    run.fab_hash = "cd" * 32
    project = get_project_dir(run.fab_id, run.fab_version, run.fab_hash)
    write_app(project, tiny_experiment, FOREIGN_APP)
    assert named_client_app(run) == FOREIGN_APP


def test_ray_engine_runs_a_classic_flower_client_app_without_errors(
    tiny_experiment, tmp_path, importable
):
    """Two clients, one round: the ServerApp sends them nothing but their train messages."""
    out = tmp_path / "out"
    experiment = tiny_experiment.replace(
        num_clients=2, min_available_clients=2, num_server_rounds=1, out_dir=str(out)
    )
    home = tmp_path / "flwr-home"
    home.mkdir()
    env = flower_env(home)
    app_dir = write_app(home / "app", experiment, FOREIGN_APP)
    with superlink(home, env) as address:
        write_connection(home, address)
        federation = "num-supernodes=2 client-resources-num-cpus=1"
        submitted = flwr_json(
            ["run", str(app_dir), "stamen", "--federation-config", federation], env
        )
        status = wait_finished(submitted["run-id"], env)
        logs = flwr_text(["log", str(submitted["run-id"]), "stamen", "--show"], env)
    assert status == "finished:completed", logs[-4000:]
    assert_no_errors(logs)
    assert logs.count(NOT_ASKED) == 1
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics[metrics.metric == "replies"].value) == [2.0]
    assert_model_moved_by(out, experiment, mean_step([0, 1]))
