"""The non-iid splits of the bucketing paper that flwr-datasets lacks.

Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
Bucketing", ICLR 2022, arXiv 2006.09365.

- ``sorted``: sort the samples by label (stably) and give each client a contiguous chunk of
  nearly equal size, so that each client sees one or two classes.
- ``long-tail``: keep a seeded random fraction ``0.5 ** i`` of class ``i`` (class 0 whole,
  class 1 half, ...), then split the kept samples iid among the clients.
"""

from __future__ import annotations

import numpy as np

from stamen.datasets.partitioning import PARTITIONERS, PartitionRequest

LONG_TAIL_RATIO = 0.5


def sorted_partition(labels: np.ndarray, request: PartitionRequest) -> list[np.ndarray]:
    """Contiguous chunks of the label-sorted indices, one per client."""
    order = np.argsort(labels, kind="stable")
    return np.array_split(order, request.num_clients)


def long_tail_keep(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices kept when the ``i``-th smallest class is subsampled to
    ``max(1, round(0.5**i * n_i))`` samples."""
    kept = []
    for rank, label in enumerate(np.unique(labels)):
        members = np.flatnonzero(labels == label)
        size = max(1, round(len(members) * LONG_TAIL_RATIO**rank))
        kept.append(rng.choice(members, size=size, replace=False))
    return np.sort(np.concatenate(kept))


def long_tail_partition(labels: np.ndarray, request: PartitionRequest) -> list[np.ndarray]:
    """A long-tailed subsample of the data, split iid among the clients."""
    rng = np.random.default_rng(request.seed)
    kept = long_tail_keep(labels, rng)
    return np.array_split(rng.permutation(kept), request.num_clients)


PARTITIONERS.register("sorted", sorted_partition)
PARTITIONERS.register("long-tail", long_tail_partition)
