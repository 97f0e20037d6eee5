"""IDX files (the MNIST format) and the ``idx:<folder>`` source.

An IDX file is two zero bytes, a type code (``0x08`` = unsigned byte), the number of
dimensions, one big-endian ``uint32`` per dimension, then the data in C order
(LeCun et al., http://yann.lecun.com/exdb/mnist/). Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.loading import DATASETS, Source
from stamen.errors import ConfigError, DatasetUnavailable

_UBYTE = 0x08
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The ``uint8`` array stored in an IDX file (``.gz`` or not)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ConfigError(f"{path} is not an IDX file: it must start with two zero bytes")
    type_code, ndim = data[2], data[3]
    if type_code != _UBYTE:
        raise ConfigError(f"{path}: IDX type 0x{type_code:02x} unsupported; expected 0x08 (uint8)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ConfigError(f"{path}: header says shape {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a ``uint8`` array as an IDX file, gzip-compressed if ``path`` ends in ``.gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def load_idx_folder(
    folder: str | Path, *, name: str, mean: float = 0.0, std: float = 1.0, hint: str = ""
) -> FederatedDataset:
    """Load the four MNIST-named IDX files of ``folder`` as an image source.

    Images become ``uint8 (N, 1, H, W)``; labels ``int64``. ``hint`` is the text of the
    error when a file is missing (by default it names the expected files).
    """
    folder = Path(folder).expanduser()
    splits = {}
    for split, (images_stem, labels_stem) in IDX_STEMS.items():
        images_path, labels_path = _find(folder, images_stem), _find(folder, labels_stem)
        if images_path is None or labels_path is None:
            raise DatasetUnavailable(
                hint
                or f"{folder} lacks {images_stem}[.gz] or {labels_stem}[.gz]: "
                "dataset=idx:<folder> needs the four MNIST-named IDX files"
            )
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ConfigError(
                f"{folder}: {split} images must be (N, H, W) and labels (N,), got "
                f"{images.shape} and {labels.shape}"
            )
        splits[split] = Split(images[:, None], labels.astype(np.int64))
    num_classes = int(max(splits["train"].y.max(initial=0), splits["test"].y.max(initial=0))) + 1
    return FederatedDataset(
        name=name,
        train=splits["train"],
        test=splits["test"],
        num_classes=num_classes,
        input_shape=tuple(splits["train"].x.shape[1:]),
        kind="image",
        mean=mean,
        std=std,
    )


def _load_idx_spec(folder: str, seed: int) -> FederatedDataset:
    return load_idx_folder(folder, name=f"idx:{folder}")


DATASETS.register("idx:", Source(_load_idx_spec))
