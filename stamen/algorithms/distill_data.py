"""FedDF's server data: a labeled validation split and the unlabeled distillation inputs.

Both come from the training samples the server holds back from the clients
(``server-holdout``): ``distill-validation`` of them, drawn with the run seed, keep their
labels for validation. The distillation inputs (``distill-data``) are, as studied by Lin et
al. (arXiv 2006.07242, Section 4):

- ``holdout``: the rest of the held-back samples, labels dropped;
- a data set name with the same input shape, e.g. ``fashion-mnist`` images for MNIST clients
  (its train split, scaled with the client data's normalisation);
- ``noise``: standard Gaussian inputs in the normalised input space (uniform random tokens
  for sequence data).

``distill-samples > 0`` caps the number of distillation inputs (a seeded subset).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stamen.datasets import FederatedDataset, load_dataset
from stamen.errors import ConfigError
from stamen.seeding import RunStream, run_rng

HOLDOUT, NOISE = "holdout", "noise"


@dataclass(frozen=True)
class ServerData:
    unlabeled: Tensor  # (n, ...) inputs as the models take them
    validation: tuple[Tensor, Tensor]  # inputs and int64 labels


def server_data(
    data: FederatedDataset,
    holdout: np.ndarray,
    source: str,
    validation_size: int,
    max_samples: int,
    seed: int,
) -> ServerData:
    """Validation and distillation inputs from the held-back train indices ``holdout``."""
    if validation_size < 1 or len(holdout) <= validation_size * (source == HOLDOUT):
        raise ConfigError(
            f"server-holdout keeps {len(holdout)} samples: too few for distill-validation = "
            f"{validation_size}" + (" and distill-data = holdout" if source == HOLDOUT else "")
        )
    rng = run_rng(seed, RunStream.DISTILL_DATA)
    shuffled = rng.permutation(holdout)
    validation = data.to_tensors(data.train, shuffled[:validation_size])
    if source == HOLDOUT:
        rest = shuffled[validation_size:]
        unlabeled = data.to_tensors(data.train, _cap(rest, max_samples, rng))[0]
    elif source == NOISE:
        count = max_samples or len(holdout)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if data.kind == "sequence":
            unlabeled = torch.randint(
                data.num_classes, (count, *data.input_shape), generator=generator
            )
        else:
            unlabeled = torch.randn((count, *data.input_shape), generator=generator)
    else:
        other = load_dataset(source, seed=seed)
        if other.input_shape != data.input_shape or other.kind != data.kind:
            raise ConfigError(
                f"distill-data {source!r} has {other.kind} inputs of shape {other.input_shape}; "
                f"the clients' {data.name} has {data.kind} {data.input_shape}"
            )
        scaled = dataclasses.replace(other, mean=data.mean, std=data.std)
        indices = _cap(np.arange(len(other.train)), max_samples, rng)
        unlabeled = scaled.to_tensors(other.train, indices)[0]
    return ServerData(unlabeled, validation)


def _cap(indices: np.ndarray, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    if 0 < max_samples < len(indices):
        return np.sort(rng.choice(indices, max_samples, replace=False))
    return indices
