"""Vectorised building blocks shared by the rules: column sort and pairwise distances.

Distances come from a Gram matrix, ``||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij``, of the inputs
CENTRED on one of them, ``r``: ``G = (X - 1 r^T)(X - 1 r^T)^T`` (distances are
translation-invariant, so any reference gives them). Uncentred, ``G`` carries whatever offset
the inputs share (worker momentum, a model-sized shift): at norms 1e4 and distances 1 the
float32 product's rounding is as large as the distances. Centred, it scales with the inputs'
spread instead. Rules that move a centre ``v = sum_k c_k p_k`` with ``sum_k c_k = 1``
(Weiszfeld, centred clipping) work in this coefficient space: ``||p_i - v||^2 = G_ii - 2 (G c)_i
+ c^T G c`` holds for the centred Gram too, and ``v = r + sum_k c_k (p_k - r)`` is formed once
as ``sum_k c_k p_k`` (equal, as the coefficients sum to 1), with no centred copy of the inputs.
The n x n algebra runs in float64.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

_NUMPY_DTYPES = (torch.float32, torch.float64)
# Bytes of one centred column block: on CPU it stays in cache from centring to product.
# Elsewhere blocks are large so kernel launches stay few. Each block is a few parallel regions,
# and each one waits when other processes hold the cores, so blocks are not made smaller.
_CPU_BLOCK_BYTES = 1 << 23
_DEVICE_BLOCK_BYTES = 1 << 28
# MKL's float32 product is slow on a partial 16-row tile, and one triangle of the symmetric
# product is less work. n = 50, d = 1e6, idle 2-core host, uncentred ``X @ X.T`` against the
# centred Gram in 8 MiB blocks: one thread's CPU time 86.7 ms, 95.7 ms as one product per
# block, 80.9 ms as ``_gram_about``'s two; two threads' wall time 48.3, 56.4 and 51.0 ms.
_ROW_TILE = 16


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


def centred_gram(updates: Tensor, centre: Tensor | None = None) -> Tensor:
    """Gram matrix of the rows of ``updates`` (n, d), and of ``centre`` (d,) as row n if given,
    each minus one input ``x_k``; float64, shape (n, n) or (n + 1, n + 1).

    ``x_k`` is the input of median norm over the first column block: with fewer than n/2
    outliers its norm there is within the other inputs'. If its median distance to the inputs is
    still over 4 times the typical input's (an outlier in the other columns: centring on it would
    lose the precision centring is for), the product is redone about the medoid, the input of
    least median distance.
    """
    n = updates.shape[0]
    columns = _block_columns(updates, n if centre is None else n + 1)
    reference = int(torch.linalg.vector_norm(updates[:, :columns], dim=1).median(dim=0).indices)
    gram = _gram_about(updates, centre, reference, columns)
    medians = pairwise_squared_distances(gram[:n, :n]).median(dim=1).values
    if medians[reference] > 4.0 * medians.median():
        gram = _gram_about(updates, centre, int(medians.argmin()), columns)
    return gram


def _block_columns(updates: Tensor, rows: int) -> int:
    budget = _CPU_BLOCK_BYTES if updates.device.type == "cpu" else _DEVICE_BLOCK_BYTES
    return max(1, min(updates.shape[1], budget // (rows * updates.element_size())))


def _gram_about(updates: Tensor, centre: Tensor | None, reference: int, columns: int) -> Tensor:
    """The Gram matrix of the rows (and centre) minus row ``reference``, block by block: each
    block is centred into one reused (rows, columns) buffer, never an (n, d) copy, and its
    product (in the input dtype) is summed over blocks in float64.

    torch has no symmetric product (BLAS ``syrk``), so the rows go in two groups, Q the last
    whole 16-row tiles up to half of them and P the others: ``P (all)^T`` and ``Q Q^T`` are
    computed and ``Q P^T`` is the transpose of ``P Q^T``.
    """
    n, d = updates.shape
    rows = n if centre is None else n + 1
    split = rows - (rows // 2 - rows // 2 % _ROW_TILE)
    buffer = updates.new_empty(rows, columns)
    gram = torch.zeros(rows, rows, dtype=torch.float64, device=updates.device)
    for start in range(0, d, columns):
        block = updates[:, start : start + columns]
        centred = buffer[:, : block.shape[1]]
        torch.sub(block, block[reference], out=centred[:n])
        if centre is not None:
            torch.sub(centre[start : start + columns], block[reference], out=centred[n])
        gram[:split] += centred[:split] @ centred.T
        gram[split:, split:] += centred[split:] @ centred[split:].T
    gram[split:, :split] = gram[:split, split:].T
    return gram


def pairwise_squared_distances(gram: Tensor) -> Tensor:
    """Squared Euclidean distances, shape (n, n), from a Gram matrix (clamped at 0)."""
    norms = torch.diagonal(gram)
    return (norms[:, None] + norms[None, :] - 2.0 * gram).clamp_min(0.0)


def squared_distances_to(gram: Tensor, coefficients: Tensor) -> Tensor:
    """``||p_i - v||^2``, shape (rows,), for every row ``p_i`` of a Gram matrix (rows, rows) and
    ``v = sum_k coefficients[k] p_k``; the coefficients must sum to 1, so centring cancels."""
    projection = gram @ coefficients
    return (torch.diagonal(gram) - 2.0 * projection + coefficients @ projection).clamp_min(0.0)


def combine_rows(coefficients: Tensor, updates: Tensor) -> Tensor:
    """``sum_i coefficients[i] * updates[i]``, shape (d,), in the dtype of ``updates``."""
    return coefficients.to(updates.dtype) @ updates
