"""Model pruning on the server: magnitude masks (``masks``) and the methods that schedule
them (``methods``: DPF, gradual magnitude pruning, one-shot). Pure torch."""

from stamen.algorithms.pruning.masks import Masks, magnitude_masks, prunable, sparsity_of
from stamen.algorithms.pruning.methods import PRUNING, Pruning, cubic, parse_pruning

__all__ = [
    "PRUNING",
    "Masks",
    "Pruning",
    "cubic",
    "magnitude_masks",
    "parse_pruning",
    "prunable",
    "sparsity_of",
]
