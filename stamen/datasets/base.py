"""The in-memory form of a loaded data source: a train and a test `Split`.

Images are kept as one compact ``uint8`` array of shape ``(N, C, H, W)`` per process and
are normalised batch by batch in `FederatedDataset.to_tensors`, so that a simulation with
many clients holds one copy of the pixels, not one float copy per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stamen.errors import ConfigError

KINDS = ("image", "sequence", "vector")


@dataclass(frozen=True)
class Split:
    """Samples of one split.

    Attributes
    ----------
    x : array-like, shape (n, ...)
        An ``np.ndarray`` or an object supporting ``len(x)`` and ``x[idx] -> np.ndarray``
        for an integer index array ``idx`` (e.g. `CharWindows`).
    y : np.ndarray, shape (n,)
        ``int64`` labels.
    groups : np.ndarray, shape (n,), optional
        Natural id per sample (writer, speaker, user), or None.
    """

    x: Any
    y: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ConfigError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        if self.groups is not None and len(self.groups) != len(self.y):
            raise ConfigError(f"groups has {len(self.groups)} entries but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FederatedDataset:
    """A loaded data source, before it is partitioned among clients.

    Attributes
    ----------
    name : str
        The spec it was loaded from, e.g. ``"mnist"`` or ``"npz:/data/x.npz"``.
    train, test : Split
    num_classes : int
    input_shape : tuple of int
        Shape of one sample as the model sees it, e.g. ``(1, 28, 28)`` or ``(80,)``.
    kind : {"image", "sequence", "vector"}
    mean, std : float
        Images only: the normalisation applied by `to_tensors` after scaling to [0, 1].
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    kind: str
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.std <= 0:
            raise ConfigError(f"std must be > 0, got {self.std}")

    def to_tensors(self, split: Split, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch as tensors.

        Parameters
        ----------
        split : Split
            ``self.train`` or ``self.test``.
        idx : np.ndarray, shape (b,)
            Integer sample indices into ``split``.

        Returns
        -------
        x : Tensor
            Images: ``float32 (b, C, H, W)`` equal to ``(x / 255 - mean) / std``, in
            channels-last memory layout;
            sequences: ``int64 (b, L)``; vectors: ``float32 (b, d)``.
        y : Tensor, shape (b,)
            ``int64`` labels.
        """
        idx = np.asarray(idx, dtype=np.int64)
        x = np.asarray(split.x[idx])
        y = torch.from_numpy(np.asarray(split.y[idx], dtype=np.int64))
        if self.kind == "image":
            # channels-last, asked for in the copy: a one-channel batch is contiguous in both
            # layouts, and torch picks the convolutions' layout from the strides, which would
            # follow the stored array's (NCHW for MNIST); NHWC is the faster on CPU
            # (benchmarks/cpu_layouts.py; max-pooling about 10x)
            pixels = torch.from_numpy(x).to(torch.float32, memory_format=torch.channels_last)
            pixels.div_(255.0)
            return pixels.sub_(self.mean).div_(self.std), y
        if self.kind == "sequence":
            return torch.from_numpy(x.astype(np.int64, copy=False)), y
        return torch.from_numpy(x.astype(np.float32, copy=False)), y
