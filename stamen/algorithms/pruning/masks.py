"""Magnitude masks over a model's weight tensors (those of two or more dimensions; biases and
normalisation parameters stay dense), ranked globally across layers.

Unstructured: the ``sparsity`` fraction of all prunable weights with the smallest magnitude.
Structured: whole filters (a tensor of shape (m, ...) has m filters, rows of the matrix
(m, n)) by ascending L2 norm, until at least that fraction of the prunable weights is pruned.
A mask is True where a weight is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

Masks = dict[str, Tensor]


def prunable(weights: dict[str, Tensor]) -> list[str]:
    """The names of the tensors that are pruned: two or more dimensions."""
    return [name for name, value in weights.items() if value.dim() >= 2]


def magnitude_masks(weights: dict[str, Tensor], sparsity: float, structured: bool) -> Masks:
    """The masks that prune ``sparsity`` of the prunable weights by magnitude."""
    names = prunable(weights)
    total = sum(weights[name].numel() for name in names)
    if not names or total == 0:
        return {}
    if structured:
        return _filter_masks({name: weights[name] for name in names}, sparsity, total)
    count = int(sparsity * total)
    if count == 0:
        return {name: torch.ones_like(weights[name], dtype=torch.bool) for name in names}
    magnitudes = torch.cat([weights[name].detach().abs().reshape(-1) for name in names])
    threshold = magnitudes.kthvalue(count).values
    # ties at the threshold: keep the later ones so that exactly `count` are pruned
    below = magnitudes < threshold
    ties = (magnitudes == threshold).nonzero().reshape(-1)[: count - int(below.sum())]
    pruned = below
    pruned[ties] = True
    masks, offset = {}, 0
    for name in names:
        size = weights[name].numel()
        masks[name] = ~pruned[offset : offset + size].view(weights[name].shape)
        offset += size
    return masks


def _filter_masks(weights: dict[str, Tensor], sparsity: float, total: int) -> Masks:
    norms, owners = [], []
    for name, value in weights.items():
        rows = value.detach().reshape(value.shape[0], -1)
        norms.append(rows.norm(dim=1))
        owners += [(name, row, rows.shape[1]) for row in range(rows.shape[0])]
    order = torch.cat(norms).argsort(stable=True)
    masks = {name: torch.ones_like(value, dtype=torch.bool) for name, value in weights.items()}
    pruned, goal = 0, sparsity * total
    for index in order.tolist():
        if pruned >= goal:
            break
        name, row, size = owners[index]
        masks[name][row] = False
        pruned += size
    return masks


def sparsity_of(masks: Masks) -> float:
    """The fraction of the masked weights that are pruned."""
    total = sum(mask.numel() for mask in masks.values())
    return 0.0 if total == 0 else sum(int((~m).sum()) for m in masks.values()) / total
