"""The ``hf:<name>`` source: an image-classification data set from the Hugging Face Hub.

For users who are online (e.g. ``hf:ylecun/mnist``, ``hf:uoft-cs/cifar10``). The set is read
through flwr-datasets' ``FederatedDataset``; its
image column becomes ``uint8 (N, C, H, W)`` and its class-label column ``int64`` labels.
Partitioning is left to `stamen.datasets.partition`. Offline (``HF_HUB_OFFLINE`` or
``HF_DATASETS_OFFLINE`` set, or no connection) the source fails at once with one line.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import numpy as np

from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.loading import DATASETS, Source
from stamen.errors import ConfigError, DatasetUnavailable

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _unavailable(name: str, reason: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"hf:{name} needs internet access to the Hugging Face Hub ({reason}); run where the "
        "Hub is reachable, or save the arrays and use dataset=npz:<path>"
    )


def _columns(features: dict, name: str) -> tuple[str, str]:
    """Names of the image column and the class-label column."""
    import datasets

    images = [k for k, v in features.items() if isinstance(v, datasets.Image)]
    labels = [k for k, v in features.items() if isinstance(v, datasets.ClassLabel)]
    if not images or not labels:
        raise ConfigError(
            f"hf:{name} has columns {', '.join(features)}: "
            "expected an Image and a ClassLabel column"
        )
    return images[0], labels[0]


def _to_split(table, image: str, label: str) -> Split:  # noqa: ANN001 (datasets.Dataset)
    arrays = table.with_format("numpy")
    x = np.stack([np.asarray(img, dtype=np.uint8) for img in arrays[image]])
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return Split(np.ascontiguousarray(x), np.asarray(arrays[label], dtype=np.int64))


def load_hf(name: str, seed: int = 0) -> FederatedDataset:
    """The ``train`` and ``test`` splits of Hub data set ``name`` as images."""
    truthy = ("1", "true", "yes", "on")
    flagged = [v for v in OFFLINE_VARIABLES if os.environ.get(v, "").lower() in truthy]
    if flagged:
        raise _unavailable(name, f"{flagged[0]} is set")
    if not _hub_reachable():
        raise _unavailable(name, "the Hub cannot be reached")
    try:
        import datasets
        from flwr_datasets import FederatedDataset as HubDataset

        hub = HubDataset(dataset=name, partitioners={"train": 1})
        loaded = {split: hub.load_split(split) for split in hub.dataset}
    except datasets.exceptions.DatasetNotFoundError:
        raise DatasetUnavailable(
            f"hf:{name} was not found on the Hugging Face Hub: check the name, or log in if it "
            "is gated"
        ) from None
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise _unavailable(name, type(exc).__name__) from None
    except Exception as exc:  # the Hub client raises many types; all mean "not here"
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DatasetUnavailable(f"hf:{name} could not be loaded: {first_line}") from None
    missing = [s for s in ("train", "test") if s not in loaded]
    if missing:
        raise ConfigError(f"hf:{name} has splits {', '.join(loaded)}: expected train and test")
    image, label = _columns(loaded["train"].features, name)
    train, test = _to_split(loaded["train"], image, label), _to_split(loaded["test"], image, label)
    return FederatedDataset(
        name=f"hf:{name}",
        train=train,
        test=test,
        num_classes=loaded["train"].features[label].num_classes,
        input_shape=tuple(train.x.shape[1:]),
        kind="image",
    )


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hub's host answers, so that offline use fails at once, not after retries."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


DATASETS.register("hf:", Source(load_hf))
