"""Data sources and partitioners of Stamen.

``load_dataset(spec)`` loads a source once per process (``mnist``, ``fashion-mnist``,
``shakespeare``, ``synthetic``, ``hf:<name>``, ``npz:<path>``, ``idx:<folder>``);
``partition(labels, num_clients, method)`` splits its training indices among clients
(``iid``, ``dirichlet``, ``shards``, ``natural``, ``sorted``, ``long-tail``).
"""

from stamen.datasets import (  # noqa: F401  (imported to register the sources)
    fashion_mnist,
    hf_source,
    idx,
    mnist,
    npz_source,
    partition_bucketing,
    partition_standard,
    shakespeare,
    synthetic,
)
from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.cache import cache_dir
from stamen.datasets.loading import DATASETS, load_dataset
from stamen.datasets.partitioning import PARTITIONERS, partition
from stamen.datasets.stats import label_counts, plot_label_distribution

__all__ = [
    "DATASETS",
    "PARTITIONERS",
    "FederatedDataset",
    "Split",
    "cache_dir",
    "label_counts",
    "load_dataset",
    "partition",
    "plot_label_distribution",
]
