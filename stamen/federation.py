"""A client's share of the data: index arrays into the one copy its process holds.

Every process (a Ray actor, the in-process engine, a SuperNode) loads the data set once and
computes the seeded partition once; each client is then only an index array, so memory does
not grow with the number of virtual clients.
"""

from __future__ import annotations

import functools

import numpy as np

from stamen.attacks import byzantine_clients
from stamen.datasets import FederatedDataset, load_dataset, partition
from stamen.experiment import Experiment
from stamen.seeding import RunStream, run_rng


def dataset_of(experiment: Experiment) -> FederatedDataset:
    return load_dataset(experiment.dataset, seed=experiment.seed)


@functools.lru_cache(maxsize=8)
def train_partitions(experiment: Experiment, num_partitions: int) -> tuple[np.ndarray, ...]:
    """One index array into the train split per client, seeded by the run seed.

    With ``byzantine-data = "iid"`` (the bucketing paper's setting) the honest clients split
    the train set by ``partition`` among themselves, and each Byzantine client gets a seeded
    iid sample of ``len(train) / num_partitions`` indices from the whole train set.
    """
    data = dataset_of(experiment)
    pool = np.setdiff1d(np.arange(len(data.train)), server_holdout(experiment))
    labels = data.train.y[pool]
    groups = None if data.train.groups is None else data.train.groups[pool]
    if experiment.byzantine_data == "same" or experiment.num_byzantine == 0:
        return tuple(pool[p] for p in _split(experiment, labels, groups, num_partitions))
    byzantine = set(byzantine_clients(num_partitions, experiment.num_byzantine, experiment.seed))
    honest = iter(_split(experiment, labels, groups, num_partitions - len(byzantine)))
    rng = run_rng(experiment.seed, RunStream.BYZANTINE_DATA)
    size = len(labels) // num_partitions
    return tuple(
        pool[
            np.sort(rng.choice(len(labels), size, replace=False))
            if p in byzantine
            else next(honest)
        ]
        for p in range(num_partitions)
    )


@functools.lru_cache(maxsize=8)
def server_holdout(experiment: Experiment) -> np.ndarray:
    """The train indices the server keeps (``server-holdout``, a fraction): no client gets
    them. FedDF takes its labeled validation and unlabeled distillation data from them."""
    size = len(dataset_of(experiment).train)
    count = round(experiment.server_holdout * size)
    rng = run_rng(experiment.seed, RunStream.SERVER_HOLDOUT)
    return np.sort(rng.choice(size, count, replace=False))


@functools.lru_cache(maxsize=8)
def test_partitions(experiment: Experiment, num_partitions: int) -> tuple[np.ndarray, ...]:
    """Each client's share of the test split, for client-side evaluation.

    With ``partition=natural`` a client is tested on its own groups' held-out samples;
    otherwise the test split is partitioned by the same rule and seed as the train split.
    """
    data = dataset_of(experiment)
    if experiment.partition == "natural" and data.test.groups is not None:
        train_groups = data.train.groups
        return tuple(
            np.flatnonzero(np.isin(data.test.groups, np.unique(train_groups[part])))
            for part in train_partitions(experiment, num_partitions)
        )
    return tuple(_split(experiment, data.test.y, data.test.groups, num_partitions))


def _split(
    experiment: Experiment, labels: np.ndarray, groups: np.ndarray | None, num_partitions: int
) -> list[np.ndarray]:
    return partition(
        labels,
        num_partitions,
        experiment.partition,
        groups=groups,
        alpha=experiment.alpha,
        min_size=experiment.min_partition_size,
        classes_per_client=experiment.classes_per_client,
        seed=experiment.seed,
    )
