"""LEAF's Synthetic(alpha, beta) data (Li et al., FedProx, arXiv 1812.06127; LEAF,
Caldas et al., arXiv 1812.01097).

For user k: ``u_k ~ N(0, alpha)``, ``B_k ~ N(0, beta)``, ``W_k ~ N(u_k, 1)`` of shape
(10, 60), ``b_k ~ N(u_k, 1)``, ``v_k ~ N(B_k, 1)`` in R^60, ``x ~ N(v_k, Sigma)`` with
``Sigma = diag(j^-1.2)``, and ``y = argmax(W_k x + b_k)``. As in LEAF's generator, alpha and
beta are standard deviations and user k holds ``int(lognormal(4, 2)) + 50`` samples.
alpha controls how much the local models differ, beta how much the local inputs differ.
Each user's first 80% of samples are its train data, the rest its test data; ``groups``
holds the user id.
"""

from __future__ import annotations

import numpy as np

from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.loading import DATASETS, Source, parse_options
from stamen.errors import ConfigError

DIMENSION = 60
NUM_CLASSES = 10
TRAIN_FRACTION = 0.8
OPTIONS = {"alpha": float, "beta": float, "users": int}


def generate_synthetic(
    alpha: float = 1.0, beta: float = 1.0, users: int = 100, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples of all users.

    Returns
    -------
    x : np.ndarray, float32, shape (n, 60)
    y : np.ndarray, int64, shape (n,)
    groups : np.ndarray, int64, shape (n,)
        The user of each sample, users in order.
    """
    if alpha < 0 or beta < 0 or users < 1:
        raise ConfigError(
            f"synthetic needs alpha >= 0, beta >= 0, users >= 1; got {alpha}, {beta}, {users}"
        )
    rng = np.random.default_rng(seed)
    sizes = rng.lognormal(4, 2, users).astype(np.int64) + 50
    u = rng.normal(0.0, alpha, users)
    b_mean = rng.normal(0.0, beta, users)
    sigma = np.arange(1, DIMENSION + 1, dtype=np.float64) ** -1.2
    xs, ys = [], []
    for k in range(users):
        weights = rng.normal(u[k], 1.0, (NUM_CLASSES, DIMENSION))
        bias = rng.normal(u[k], 1.0, NUM_CLASSES)
        v = rng.normal(b_mean[k], 1.0, DIMENSION)
        x = v + np.sqrt(sigma) * rng.standard_normal((sizes[k], DIMENSION))
        xs.append(x.astype(np.float32))
        ys.append(np.argmax(x @ weights.T + bias, axis=1))
    groups = np.repeat(np.arange(users, dtype=np.int64), sizes)
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64), groups


def split_per_group(groups: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first ``fraction`` of each group's samples, and of the rest.

    ``groups`` must list each group's samples contiguously.
    """
    _, starts, counts = np.unique(groups, return_index=True, return_counts=True)
    position = np.arange(len(groups)) - np.repeat(starts, counts)
    is_train = position < np.repeat((counts * fraction).astype(np.int64), counts)
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def load_synthetic(options: str = "", seed: int = 0) -> FederatedDataset:
    """Synthetic(alpha, beta) from options such as ``"alpha=0.5,beta=0.5,users=30"``."""
    x, y, groups = generate_synthetic(**parse_options(options, OPTIONS), seed=seed)  # type: ignore
    train, test = split_per_group(groups, TRAIN_FRACTION)
    return FederatedDataset(
        name=f"synthetic({options})" if options else "synthetic",
        train=Split(x[train], y[train], groups[train]),
        test=Split(x[test], y[test], groups[test]),
        num_classes=NUM_CLASSES,
        input_shape=(DIMENSION,),
        kind="vector",
    )


DATASETS.register("synthetic", Source(load_synthetic, seeded=True, takes_options=True))
