"""Stamen's Flower ServerApp: build the experiment from the run config and run it.

``run_experiment`` is the whole server side and takes any Flower ``Grid``: the SuperLink's
(``flwr run``, Ray simulation or deployment) or the in-process engine's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from logging import INFO, WARNING
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from stamen.clients.training import evaluate
from stamen.datasets import FederatedDataset, load_dataset
from stamen.devices import resolve_device
from stamen.experiment import Experiment
from stamen.messages.multi_model import join_models, split_models
from stamen.models import create_model
from stamen.models.assignment import parse_client_models
from stamen.seeding import RunStream, run_rng
from stamen.simulations.checkpoint import (
    Checkpoint,
    CheckpointWriter,
    load_checkpoint,
    restore_strategy_state,
    restore_wrapper_states,
    strategy_state,
    wrapper_states,
)
from stamen.simulations.ordered_grid import (
    STAMEN_CLIENT_APP,
    PartitionOrderedGrid,
    named_client_app,
)
from stamen.simulations.recorded_strategy import RecordedStrategy
from stamen.simulations.results import RunRecorder, default_out_dir
from stamen.simulations.rounds import run_rounds
from stamen.simulations.secure_services import secure_services
from stamen.strategies import build_strategy
from stamen.strategies.compressed_traffic import with_compression
from stamen.strategies.pruned_model import with_pruning
from stamen.strategies.secure import SecureStrategy
from stamen.strategies.seeded_sampling import SeededSampling

app = ServerApp()

# Settings the server sends in each train message's ConfigRecord; clients fall back to the
# run config for anything missing, so standard Flower strategies work with our ClientApp.
TRAIN_KEYS = ("local-epochs", "local-steps", "batch-size", "lr", "momentum", "weight-decay")


@app.main()
def main(grid: Grid, context: Context) -> None:
    experiment = Experiment.from_run_config(dict(context.run_config))
    out_dir = Path(experiment.out_dir) if experiment.out_dir else default_out_dir(experiment)
    # Ask for partitions when the run's App names Stamen's ClientApp (or names none).
    ask = named_client_app(grid.run) in (None, STAMEN_CLIENT_APP)
    run_experiment(grid, experiment, RunRecorder(out_dir, experiment), "flower", ask)


def run_experiment(
    grid: Grid,
    experiment: Experiment,
    recorder: RunRecorder,
    engine: str,
    ask_partitions: bool = True,
) -> dict:
    """Run ``num-server-rounds`` rounds on ``grid``; write results; return the summary.
    ``ask_partitions``: the nodes run Stamen's ClientApp (``PartitionOrderedGrid``)."""
    data = load_dataset(experiment.dataset, seed=experiment.seed)
    names = architectures(experiment)
    models = {
        name: create_model(name, data.input_shape, data.num_classes, experiment.seed)
        for name in names
    }
    grid = PartitionOrderedGrid(grid, ask_partitions=ask_partitions)
    _check_node_count(grid, experiment)
    with secure_services(experiment, recorder.out_dir) as experiment:
        return _run(grid, experiment, recorder, engine, data, models)


def _run(
    grid: PartitionOrderedGrid,
    experiment: Experiment,
    recorder: RunRecorder,
    engine: str,
    data: FederatedDataset,
    models: dict,
) -> dict:
    built = build_strategy(experiment, grid.partition_id)
    served = with_pruning(with_compression(built, experiment), experiment)
    strategy = SeededSampling(served, experiment.seed)
    strategy = RecordedStrategy(strategy, recorder, grid, experiment.min_replies)
    config = experiment.to_run_config()
    initial_arrays = join_models({name: ArrayRecord(m.state_dict()) for name, m in models.items()})
    arrays, first_round = initial_arrays, 1
    if experiment.resume:
        checkpoint = load_checkpoint(recorder.out_dir)
        restore_strategy_state(built, checkpoint.strategy_state)
        restore_wrapper_states(served, checkpoint.wrapper_states)
        arrays, first_round = checkpoint.arrays, checkpoint.round + 1
        recorder.keep_rounds_through(checkpoint.round)
        log(INFO, "Resuming %s after round %d", recorder.out_dir, checkpoint.round)

    checkpoints = CheckpointWriter(recorder.out_dir)

    def round_done(server_round: int, arrays: ArrayRecord) -> None:
        state = strategy_state(built)
        checkpoints.save(Checkpoint(server_round, arrays, state, wrapper_states(served)))

    try:
        arrays = run_rounds(
            strategy,
            grid,
            arrays,
            experiment.num_server_rounds,
            ConfigRecord({key: config[key] for key in TRAIN_KEYS}),
            server_evaluation(experiment, data, recorder),
            round_done,
            first_round,
            experiment.round_timeout,
        )
    finally:
        checkpoints.close()
        if isinstance(built, SecureStrategy):
            built.close()  # its channels to S2 and the dealer
    final = split_models(arrays, list(models))[experiment.model]
    model = models[experiment.model]
    model.load_state_dict(final.to_torch_state_dict())
    return recorder.finish(model, engine)


def architectures(experiment: Experiment) -> list[str]:
    """The run's architectures (``client-models``; ``model`` alone by default), ``model``
    first: it is the one reported as ``accuracy`` and saved as ``model.pt``."""
    names = parse_client_models(experiment.client_models, experiment.model)
    return [experiment.model, *(name for name in names if name != experiment.model)]


def server_evaluation(
    experiment: Experiment, data: FederatedDataset, recorder: RunRecorder
) -> Callable[[int, ArrayRecord], MetricRecord | None]:
    """Centralised evaluation on the test split at round 0, every ``eval-every`` rounds
    and at the last round; ``eval-samples > 0`` evaluates on a fixed seeded subset. With
    several architectures each is evaluated (``accuracy/<architecture>``); ``accuracy`` and
    ``loss`` are those of ``model``."""
    device = resolve_device(experiment.device)
    names = architectures(experiment)
    models = {
        name: create_model(name, data.input_shape, data.num_classes, 0).to(device) for name in names
    }
    indices = np.arange(len(data.test))
    if 0 < experiment.eval_samples < len(indices):
        rng = run_rng(experiment.seed, RunStream.EVAL_SUBSET)
        indices = np.sort(rng.choice(indices, experiment.eval_samples, replace=False))

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        due = server_round % experiment.eval_every == 0
        if not (due or server_round == experiment.num_server_rounds):
            return None
        found = {}
        for name, record in split_models(arrays, names).items():
            models[name].load_state_dict(record.to_torch_state_dict())
            found[name] = evaluate(
                models[name], data, data.test, indices, experiment.eval_batch_size, device
            )
        metrics = found[experiment.model]
        rows = {k: metrics[k] for k in ("accuracy", "loss")}
        if len(names) > 1:
            rows.update({f"accuracy/{name}": found[name]["accuracy"] for name in names})
        recorder.add(server_round, "server", rows)
        return MetricRecord(metrics)

    return evaluate_fn


def _check_node_count(grid: Grid, experiment: Experiment) -> None:
    nodes = len(grid.get_node_ids())
    if nodes and nodes != experiment.num_clients:
        log(
            WARNING,
            "The federation has %d nodes but num-clients=%d; the data is split into %d "
            "partitions (in a simulation pass --federation-config 'num-supernodes=%d').",
            nodes,
            experiment.num_clients,
            nodes,
            experiment.num_clients,
        )


def quiet_flower_logs() -> None:
    """Silence flwr's per-round log lines (used when a progress display is shown)."""
    logging.getLogger("flwr").setLevel(logging.ERROR)
