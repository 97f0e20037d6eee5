"""This node's view of a run: the experiment of its run config, its data partition, its own
attack (a red-team node), where it mirrors its state, and its one model per architecture."""

from __future__ import annotations

import functools
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Context

from stamen.clients.round_memory import RoundMemory
from stamen.datasets import FederatedDataset, load_dataset
from stamen.devices import resolve_device
from stamen.experiment import Experiment
from stamen.federation import dataset_of, test_partitions, train_partitions
from stamen.messages.arrays import array_values
from stamen.messages.keys import NUM_PARTITIONS, PARTITION_ID
from stamen.models import create_model


def experiment_of(context: Context) -> Experiment:
    return _experiment(tuple(sorted(context.run_config.items())))


@functools.lru_cache(maxsize=8)
def _experiment(items: tuple) -> Experiment:
    return Experiment.from_run_config(dict(items))


def node_attack(context: Context) -> str | None:
    """The node config's ``attack``: a deployment's red-team node (client attacks only)."""
    attack = context.node_config.get("attack")
    return str(attack) if attack else None


def node_partition(context: Context) -> tuple[int, int]:
    """This node's ``partition-id`` and ``num-partitions`` from its node config."""
    return int(context.node_config[PARTITION_ID]), int(context.node_config[NUM_PARTITIONS])


def node_data(
    experiment: Experiment, context: Context, split: str
) -> tuple[FederatedDataset, np.ndarray]:
    """This node's data set and its samples of ``split`` (``"train"`` or ``"test"``): all of
    its own files when its node config names them (``data = "npz:/data/mine.npz"``, any data
    set spec, of the run's kind and shape), else its partition of the run's data set."""
    spec = context.node_config.get("data")
    if spec:
        data = load_dataset(str(spec), seed=experiment.seed)
        return data, np.arange(len(data.train if split == "train" else data.test))
    partition_id, num_partitions = node_partition(context)
    partitions = train_partitions if split == "train" else test_partitions
    return dataset_of(experiment), partitions(experiment, num_partitions)[partition_id]


def node_memory(context: Context, experiment: Experiment, key: str) -> RoundMemory:
    """The node's round-by-round state ``key``, mirrored to a file of ``node-state-dir`` in a
    simulation (``<partition-id>-<key>.pt``)."""
    store = None
    if experiment.node_state_dir:
        partition_id, _ = node_partition(context)
        store = Path(experiment.node_state_dir) / f"{partition_id}-{key}.pt"
    return RoundMemory(context.state, key, store)


def load_global_model(
    experiment: Experiment, arrays: ArrayRecord, name: str | None = None
) -> tuple[torch.nn.Module, torch.device]:
    """The process's one model object of architecture ``name`` (the message's ``"model"``;
    the run's ``model`` by default), loaded with ``arrays``."""
    device = resolve_device(experiment.device)
    model = _model(str(name or experiment.model), experiment.dataset, experiment.seed, str(device))
    with warnings.catch_warnings():  # the values are copied into the model at once
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        state = {key: torch.from_numpy(array_values(arrays[key])) for key in arrays}
    model.load_state_dict(state)
    return model, device


_models = threading.local()  # runs in threads of one process each load their own


def _model(name: str, dataset: str, seed: int, device: str) -> torch.nn.Module:
    """This thread's one model object of each architecture."""
    cache = _models.__dict__.setdefault("by_key", {})
    key = (name, dataset, seed, device)
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))  # the oldest
        data = load_dataset(dataset, seed=seed)
        cache[key] = create_model(name, data.input_shape, data.num_classes, seed).to(device)
    return cache[key]
