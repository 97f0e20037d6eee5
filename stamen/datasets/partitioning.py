"""`partition`: split a training set's sample indices among simulated clients.

Every partitioner is registered in ``PARTITIONERS`` as a function
``(labels, request) -> list of index arrays`` and receives a validated `PartitionRequest`.
The flwr-datasets partitioners (re-done in NumPy) live in ``partition_standard``, the two
non-iid splits of the bucketing paper (arXiv 2006.09365) in ``partition_bucketing``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stamen.errors import ConfigError
from stamen.registry import Registry


@dataclass(frozen=True)
class PartitionRequest:
    """Validated options of one partitioning.

    Attributes
    ----------
    num_clients : int
        Number of clients, >= 1.
    groups : np.ndarray or None
        Natural id per sample (``natural`` only).
    alpha : float
        Dirichlet concentration, > 0 (``dirichlet`` only).
    min_size : int
        Fewest samples a client may get (``dirichlet`` only), >= 0.
    classes_per_client : int
        Classes per client (``shards`` only), >= 1.
    seed : int
    """

    num_clients: int
    groups: np.ndarray | None = None
    alpha: float = 0.5
    min_size: int = 10
    classes_per_client: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.num_clients) != self.num_clients or self.num_clients < 1:
            raise ConfigError(f"num_clients must be an integer >= 1, got {self.num_clients}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha}")
        if self.min_size < 0:
            raise ConfigError(f"min_size must be >= 0, got {self.min_size}")
        if self.classes_per_client < 1:
            raise ConfigError(f"classes_per_client must be >= 1, got {self.classes_per_client}")


Partitioner = Callable[[np.ndarray, PartitionRequest], list[np.ndarray]]
PARTITIONERS: Registry[Partitioner] = Registry("partitioner")


def partition(
    labels: np.ndarray,
    num_clients: int,
    method: str = "iid",
    *,
    groups: np.ndarray | None = None,
    alpha: float = 0.5,
    min_size: int = 10,
    classes_per_client: int = 2,
    seed: int = 0,
) -> list[np.ndarray]:
    """Indices of each client's samples.

    Parameters
    ----------
    labels : np.ndarray, shape (n,)
        Integer labels of the training split.
    num_clients : int
    method : str
        A name in ``PARTITIONERS``: ``iid``, ``dirichlet``, ``shards``, ``natural``,
        ``sorted``, ``long-tail``.
    groups : np.ndarray, shape (n,), optional
        Natural id per sample, required by ``natural``.
    alpha, min_size, classes_per_client, seed
        See `PartitionRequest`.

    Returns
    -------
    list of np.ndarray
        ``num_clients`` sorted ``int64`` arrays of indices into ``labels``, pairwise disjoint.

    Raises
    ------
    ConfigError
        Unknown method, invalid value, or a client left without samples.
    """
    partitioner = PARTITIONERS.get(method)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if groups is not None and len(groups) != len(labels):
        raise ConfigError(f"groups has {len(groups)} entries but labels has {len(labels)}")
    request = PartitionRequest(num_clients, groups, alpha, min_size, classes_per_client, seed)
    parts = [np.sort(np.asarray(p, dtype=np.int64)) for p in partitioner(labels, request)]
    empty = [i for i, p in enumerate(parts) if p.size == 0]
    if len(parts) != num_clients or empty:
        raise ConfigError(
            f"{method} left {len(empty) or num_clients - len(parts)} of {num_clients} clients "
            f"without samples ({len(labels)} samples): use fewer clients or another method"
        )
    return parts
