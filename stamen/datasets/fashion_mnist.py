"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv 1708.07747) from local IDX files.

The files come from Debian's ``dataset-fashion-mnist`` package or from a folder named by
``$STAMEN_FASHION_MNIST``; nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

from stamen.datasets.base import FederatedDataset
from stamen.datasets.idx import load_idx_folder
from stamen.datasets.loading import DATASETS, Source

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530


def fashion_mnist_folder() -> Path:
    """``$STAMEN_FASHION_MNIST`` if set, else the Debian package's folder."""
    return Path(os.environ.get("STAMEN_FASHION_MNIST") or DEBIAN_FOLDER)


def load_fashion_mnist(argument: str = "", seed: int = 0) -> FederatedDataset:
    """The 60,000 / 10,000 Fashion-MNIST images as ``uint8 (N, 1, 28, 28)``."""
    folder = fashion_mnist_folder()
    hint = (
        f"Fashion-MNIST is not available in {folder}: run `apt-get install dataset-fashion-mnist`, "
        "set STAMEN_FASHION_MNIST to a folder of its IDX files, or use dataset=idx:<folder>"
    )
    return load_idx_folder(folder, name="fashion-mnist", mean=MEAN, std=STD, hint=hint)


DATASETS.register("fashion-mnist", Source(load_fashion_mnist))
