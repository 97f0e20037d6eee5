"""The run-config keys of the data: the data set, how it is split among the clients, and
the share of it the server holds back (``server-holdout``)."""

from __future__ import annotations

from dataclasses import dataclass

from stamen.datasets.loading import DATASETS, parse_spec
from stamen.datasets.partitioning import PARTITIONERS
from stamen.errors import ConfigError
from stamen.sections import Section


@dataclass(frozen=True)
class DataSettings(Section):
    dataset: str = "mnist"
    partition: str = "dirichlet"
    alpha: float = 0.5
    min_partition_size: int = 10
    classes_per_client: int = 2
    num_clients: int = 20
    server_holdout: float = 0.0

    POSITIVE = ("num_clients",)
    NON_NEGATIVE = ("min_partition_size",)

    def check(self) -> None:
        if self.alpha <= 0:
            raise ConfigError(f"alpha must be > 0 (Dirichlet concentration), got {self.alpha}")
        if not 0 <= self.server_holdout < 1:
            raise ConfigError(f"server-holdout must be in [0, 1), got {self.server_holdout}")
        # Each lookup raises a ConfigError naming the registered names.
        PARTITIONERS.get(self.partition)
        DATASETS.get(parse_spec(self.dataset)[0])
