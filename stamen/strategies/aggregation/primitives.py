"""Vectorised building blocks shared by the rules: column sort and pairwise distances.

Distances come from ONE matrix product: ``||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij`` with the
Gram matrix ``G = X X^T``. Rules that move a centre ``v = a v0 + c^T X`` (Weiszfeld, centred
clipping) also work in this n-dimensional coefficient space and materialise ``v`` once.
Limit: the product is not centred first, so in float32 the distances lose precision when all
inputs share a large common offset (distances small next to norms); the n x n algebra after it
runs in float64.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

_NUMPY_DTYPES = (torch.float32, torch.float64)


def sorted_columns(updates: Tensor) -> Tensor:
    """Each coordinate's values sorted ascending; shape (n, d), a new tensor.

    On CPU numpy's sort along axis 0 is ~4x faster than ``torch.sort`` (n = 50, d = 1e6, 2 cores:
    176 ms vs 785 ms; ``torch.median`` 427 ms, ``np.median`` 668 ms), so CPU float32/float64
    tensors go through numpy, in column blocks on ``torch.get_num_threads()`` threads (numpy
    releases the GIL while sorting: 100 ms on 2 cores); other devices and dtypes use
    ``torch.sort``.
    """
    if updates.device.type != "cpu" or updates.dtype not in _NUMPY_DTYPES:
        return torch.sort(updates, dim=0).values
    source = updates.detach().numpy()
    workers = max(1, torch.get_num_threads())
    if workers == 1 or source.shape[1] < 65_536:
        return torch.from_numpy(np.sort(source, axis=0))
    result = np.empty_like(source)
    bounds = np.linspace(0, source.shape[1], 4 * workers + 1).astype(int)

    def sort_block(block: int) -> None:
        columns = slice(bounds[block], bounds[block + 1])
        result[:, columns] = np.sort(source[:, columns], axis=0)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(sort_block, range(len(bounds) - 1)))
    return torch.from_numpy(result)


def gram_matrix(updates: Tensor) -> Tensor:
    """``X X^T`` in float64, shape (n, n); the product itself runs in the input dtype."""
    return (updates @ updates.T).to(torch.float64)


def pairwise_squared_distances(gram: Tensor) -> Tensor:
    """Squared Euclidean distances, shape (n, n), from a Gram matrix (clamped at 0)."""
    norms = torch.diagonal(gram)
    return (norms[:, None] + norms[None, :] - 2.0 * gram).clamp_min(0.0)


def combine_rows(coefficients: Tensor, updates: Tensor) -> Tensor:
    """``sum_i coefficients[i] * updates[i]``, shape (d,), in the dtype of ``updates``."""
    return coefficients.to(updates.dtype) @ updates
