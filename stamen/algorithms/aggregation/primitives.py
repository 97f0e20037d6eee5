"""Vectorised building blocks shared by the rules: column sort and pairwise distances.

Distances come from a Gram matrix, ``||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij``. Its rounding in
float32 is proportional to the squared norms, so when the inputs share an offset large next to
their spread (worker momentum, a model-sized shift) the distances drown: at norms 1e4 and
distances 1 the rounding is as large as the distances. Distances are translation-invariant, so
then the Gram matrix is taken of the inputs CENTRED on one of them, ``r``: ``G = (X - 1 r^T)
(X - 1 r^T)^T``, whose rounding scales with the spread instead. Rules that move a centre
``v = sum_k c_k p_k`` with ``sum_k c_k = 1`` (Weiszfeld, centred clipping) work in this
coefficient space: ``||p_i - v||^2 = G_ii - 2 (G c)_i + c^T G c`` holds in either frame, and
``v = r + sum_k c_k (p_k - r)`` is formed once as ``sum_k c_k p_k`` (equal, as the coefficients
sum to 1), with no centred copy of the inputs. The n x n algebra runs in float64.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

_NUMPY_DTYPES = (torch.float32, torch.float64)
# The uncentred product is kept while no point's squared norm exceeds this many times its
# median squared distance to the inputs (see ``_gram``).
_OFFSET_RATIO = 4.0
# Bytes of one centred column block: on CPU it stays in cache from centring to product.
# Elsewhere blocks are large so kernel launches stay few. Each block is a few parallel regions,
# and each one waits when other processes hold the cores, so blocks are not made smaller.
_CPU_BLOCK_BYTES = 1 << 23
_DEVICE_BLOCK_BYTES = 1 << 28
# MKL's float32 product is slow on a partial 16-row tile, and one triangle of the symmetric
# product is less work. n = 50, d = 1e6, idle 2-core host: ``X @ X.T`` takes 86.7 ms of one
# thread's CPU time and 48.2 ms on two; ``_symmetric_product`` 76.3 and 44.1 ms; centred in
# 8 MiB blocks (``_centred_gram``) 80.9 and 51.0 ms, 95.7 and 56.4 ms as one product per block.
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


def gram_matrix(updates: Tensor) -> Tensor:
    """Gram matrix of the rows of ``updates`` (n, d), float64 (n, n), centred on an input when
    the inputs share a large offset (``_gram``)."""
    return _gram(updates, None, with_centre=False)


def gram_with_centre(updates: Tensor, centre: Tensor | None) -> Tensor:
    """Gram matrix (n + 1, n + 1) of the rows of ``updates`` (n, d) and of ``centre`` (d,) as
    row n (``None``: the origin), centred on an input when they share a large offset."""
    return _gram(updates, centre, with_centre=True)


def _gram(updates: Tensor, centre: Tensor | None, with_centre: bool) -> Tensor:
    """The uncentred product, kept when every point's squared norm is at most
    ``_OFFSET_RATIO`` times its median squared distance to the other inputs: its rounding is
    then within that factor of the centred product's, and centring would only cost a pass.
    Otherwise the product is redone centred on the medoid, the input of least median distance
    by the uncentred distances: with fewer than n/2 outliers it is one only if that outlier's
    distances are lost in the uncentred rounding, too small to cost the centred product much."""
    n = updates.shape[0]
    gram = _uncentred_gram(updates, centre, with_centre)
    distances = pairwise_squared_distances(gram)[:, :n].fill_diagonal_(float("inf"))
    medians = distances.median(dim=1).values
    if bool((torch.diagonal(gram) <= _OFFSET_RATIO * medians).all()):
        return gram
    return _centred_gram(updates, centre, with_centre, int(medians[:n].argmin()))


def _uncentred_gram(updates: Tensor, centre: Tensor | None, with_centre: bool) -> Tensor:
    gram = _symmetric_product(updates)
    if not with_centre:
        return gram
    n = updates.shape[0]
    full = torch.zeros(n + 1, n + 1, dtype=torch.float64, device=updates.device)
    full[:n, :n] = gram
    if centre is not None:
        full[n, :n] = full[:n, n] = (updates @ centre).to(torch.float64)
        full[n, n] = centre.double() @ centre.double()
    return full


def _centred_gram(
    updates: Tensor, centre: Tensor | None, with_centre: bool, reference: int
) -> Tensor:
    """The Gram matrix of the rows (and centre) minus row ``reference``, in column blocks: each
    is centred into one reused (rows, columns) buffer, never an (n, d) copy, and its product
    (in the input dtype) is summed in float64."""
    n, d = updates.shape
    rows = n + 1 if with_centre else n
    budget = _CPU_BLOCK_BYTES if updates.device.type == "cpu" else _DEVICE_BLOCK_BYTES
    columns = max(1, min(d, budget // (rows * updates.element_size())))
    buffer = updates.new_empty(rows, columns)
    gram = torch.zeros(rows, rows, dtype=torch.float64, device=updates.device)
    for start in range(0, d, columns):
        block = updates[:, start : start + columns]
        centred = buffer[:, : block.shape[1]]
        torch.sub(block, block[reference], out=centred[:n])
        if centre is not None:
            torch.sub(centre[start : start + columns], block[reference], out=centred[n])
        elif with_centre:
            torch.neg(block[reference], out=centred[n])
        gram += _symmetric_product(centred)
    return gram


def _symmetric_product(rows: Tensor) -> Tensor:
    """``rows rows^T`` (r, r) in float64 from (r, k). torch has no symmetric product (BLAS
    ``syrk``), so the rows go in two groups, Q the last whole 16-row tiles up to half of them
    and P the others: ``P (all)^T`` and ``Q Q^T`` are computed, ``Q P^T`` is transposed."""
    count = rows.shape[0]
    split = count - (count // 2 - count // 2 % _ROW_TILE)
    gram = torch.empty(count, count, dtype=torch.float64, device=rows.device)
    gram[:split] = rows[:split] @ rows.T
    gram[split:, split:] = rows[split:] @ rows[split:].T
    gram[split:, :split] = gram[:split, split:].T
    return gram


def pairwise_squared_distances(gram: Tensor) -> Tensor:
    """Squared Euclidean distances, shape (n, n), from a Gram matrix (clamped at 0)."""
    norms = torch.diagonal(gram)
    return (norms[:, None] + norms[None, :] - 2.0 * gram).clamp_min(0.0)


def squared_distances(updates: Tensor) -> Tensor:
    """Squared Euclidean distances (n, n), float64, between the rows of ``updates`` (n, d), from
    ``gram_matrix`` (centred when the rows share a large offset)."""
    return pairwise_squared_distances(gram_matrix(updates))


def squared_distances_to(gram: Tensor, coefficients: Tensor) -> Tensor:
    """``||p_i - v||^2``, shape (rows,), for every row ``p_i`` of a Gram matrix (rows, rows) and
    ``v = sum_k coefficients[k] p_k``; the coefficients must sum to 1, so centring cancels."""
    projection = gram @ coefficients
    return (torch.diagonal(gram) - 2.0 * projection + coefficients @ projection).clamp_min(0.0)


def combine_rows(coefficients: Tensor, updates: Tensor) -> Tensor:
    """``sum_i coefficients[i] * updates[i]``, shape (d,), in the dtype of ``updates``."""
    return coefficients.to(updates.dtype) @ updates
