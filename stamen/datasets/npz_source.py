"""The ``npz:<path>`` source: a user's own arrays in one ``.npz`` file.

Required keys ``x_train, y_train, x_test, y_test``; optional ``groups_train, groups_test``
(a natural id per sample). The kind follows from ``x_train``: ``uint8`` with 3 or 4
dimensions is an image set (``(N, H, W)`` gains a channel axis), a 2-D integer array is a
set of token sequences, a 2-D float array a set of feature vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.loading import DATASETS, Source
from stamen.errors import ConfigError, DatasetUnavailable

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def infer_kind(x: np.ndarray) -> str:
    """``"image"``, ``"sequence"`` or ``"vector"`` from the dtype and rank of ``x``."""
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        return "image"
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
        return "sequence"
    if x.ndim == 2 and np.issubdtype(x.dtype, np.floating):
        return "vector"
    raise ConfigError(
        f"cannot infer the kind of x with dtype {x.dtype} and shape {x.shape}: expected uint8 "
        "(N, H, W) or (N, C, H, W) images, integer (N, L) sequences or float (N, d) vectors"
    )


def _as_model_input(x: np.ndarray, kind: str) -> np.ndarray:
    return x[:, None] if kind == "image" and x.ndim == 3 else x


def load_npz(path: str | Path, *, name: str | None = None) -> FederatedDataset:
    """Load a user's ``.npz`` file as a source (see the module docstring for its keys)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetUnavailable(
            f"{path} does not exist: dataset=npz:<path> needs a .npz with keys "
            f"{', '.join(REQUIRED)}"
        )
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in REQUIRED if key not in data.files]
        if missing:
            raise ConfigError(
                f"{path} lacks {', '.join(missing)}: expected keys {', '.join(REQUIRED)}"
            )
        arrays = {key: data[key] for key in data.files}
    kind = infer_kind(arrays["x_train"])
    splits = {}
    for split in ("train", "test"):
        x = _as_model_input(arrays[f"x_{split}"], kind)
        groups = arrays.get(f"groups_{split}")
        splits[split] = Split(
            x,
            arrays[f"y_{split}"].astype(np.int64),
            None if groups is None else groups.astype(np.int64),
        )
    if splits["train"].x.shape[1:] != splits["test"].x.shape[1:]:
        raise ConfigError(
            f"{path}: x_train samples have shape {splits['train'].x.shape[1:]} but x_test "
            f"samples {splits['test'].x.shape[1:]}"
        )
    labels = np.concatenate([splits["train"].y, splits["test"].y])
    if labels.size and labels.min() < 0:
        raise ConfigError(f"{path}: labels must be integers >= 0, found {labels.min()}")
    return FederatedDataset(
        name=name or f"npz:{path}",
        train=splits["train"],
        test=splits["test"],
        num_classes=int(labels.max(initial=0)) + 1,
        input_shape=tuple(splits["train"].x.shape[1:]),
        kind=kind,
    )


def _load_npz_spec(path: str, seed: int) -> FederatedDataset:
    return load_npz(path, name=f"npz:{path}")


DATASETS.register("npz:", Source(_load_npz_spec))
