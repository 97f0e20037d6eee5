"""The run-config keys of FedDF's ensemble distillation (Lin et al., arXiv 2006.07242): the
server's data, the distillation run, and its stopping rule. FedDF validates on data the
server holds back, so it brings ``server-holdout = 0.1`` unless the run sets it."""

from __future__ import annotations

from dataclasses import dataclass

from stamen.algorithms.distill_data import HOLDOUT, NOISE
from stamen.datasets.loading import DATASETS, parse_spec
from stamen.errors import ConfigError
from stamen.sections import Section, key_of


@dataclass(frozen=True)
class DistillationSettings(Section):
    distill_data: str = "holdout"
    distill_samples: int = 0
    distill_validation: int = 1000
    distill_steps: int = 10_000
    distill_batch_size: int = 128
    distill_lr: float = 1e-3
    distill_temperature: float = 1.0
    distill_eval_every: int = 100
    distill_patience: int = 1000
    distill_drop_weak: bool = False
    distill_clip_norm: float = 5.0
    distill_keep_start: bool = False

    POSITIVE = (
        "distill_validation",
        "distill_batch_size",
        "distill_eval_every",
        "distill_patience",
    )
    NON_NEGATIVE = ("distill_samples", "distill_steps")
    STRATEGIES = ("feddf",)
    STRATEGY_DEFAULTS = {"feddf": {"server-holdout": 0.1}}  # the validation split it distils with

    def check(self) -> None:
        for name in ("distill_lr", "distill_temperature"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key_of(name)} must be > 0, got {getattr(self, name)}")
        if self.distill_clip_norm < 0:
            raise ConfigError(
                f"distill-clip-norm must be >= 0 (0: no clipping), got {self.distill_clip_norm}"
            )
        if self.client_models and self.strategy != "feddf":
            raise ConfigError(f"client-models needs strategy=feddf, not {self.strategy}")
        if self.strategy != "feddf" or self.distill_data in (HOLDOUT, NOISE):
            return
        try:
            DATASETS.get(parse_spec(self.distill_data)[0])
        except ConfigError as exc:
            raise ConfigError(
                f"unknown distill-data {self.distill_data!r}: expected {HOLDOUT}, {NOISE} "
                f"or a data set ({', '.join(DATASETS.names())})"
            ) from exc
